"""The run report: one run folder, or a submission tree, as a self-contained HTML page with PNG figures.

    python -m tools.report RUN_DIR_OR_SUBMISSION_TREE [--output OUT_DIR]

The input is either

- a run folder written by ``run.py`` (it holds ``run.json`` and LoadGen's
  logs; a Server peak search holds one LoadGen run per probe under
  ``probes/``), or
- a submission tree (:mod:`tools.submission.layout`): its root (holding
  ``closed``/``open``) or one ``<division>/<submitter>`` folder, recognised by
  its ``results/<system>/seq2cnn/<scenario>/`` folders. Each scenario gets a
  section with its performance runs (``performance/run_*``), its accuracy run
  (``accuracy``), the verdicts of its compliance tests
  (``<scenario>/<TEST>/verify_*.txt``), and each system its description
  (``systems/<system>.json``); each run's ``run.json`` and ``sut_timings.npz``
  are read from ``documentation/runs/<system>/seq2cnn/<scenario>/<kind>/``.
  The page opens with the project's checker's verdict on the tree (the
  benchmark's rules, ``python -m tools.check_submission``) and every problem
  it found, and the overview gives each scenario's count beside LoadGen's
  verdicts: a tree of VALID quick runs still fails the checker.

For each run the page shows LoadGen's verdict (VALID/INVALID, with the failed
checks, the early-stopping hint and logged errors), whether it was a quick
run, the result as MLPerf defines it (the early-stopping latency estimate for
SingleStream and MultiStream, with the plain percentile beside it; samples per
second for Offline and Server, with Server's p99 and p99.9), the latency
distribution with LoadGen's percentiles and the latency target, completed
samples per second over time, accuracy and compliance verdicts, and the
settings: LoadGen's requested and effective values from its detail log (what
LoadGen used, after any ``audit.config``), the config files with their
sha256, overrides, backend, versions and machine from ``run.json``. A peak
search shows the peak as its result, one row per probe (rate, p99, verdict),
and the peak probe's figures; when no rate was VALID it says so.

Per-sample latencies come from ``sut_timings.npz`` (times taken by the SUT
around its LoadGen callbacks) and are labelled as such; the percentile lines
are LoadGen's own. Without that file the page shows LoadGen's percentile
points instead and says that throughput over time cannot be drawn.

The output folder (default ``<input>/report/``) must not exist or be empty. It
receives ``report.html`` and the PNG figures; the page embeds the same PNGs as
data URIs and its CSS inline, so it opens with no network. Everything is
written into a temporary folder beside the output and renamed into place at
the end, so a failure leaves no half-written report. Exit status: 0 written,
2 bad input (the message says what, where and what to do), 3 an error of this
program's own (its traceback is logged).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from collections import Counter
from pathlib import Path

from common.errors import run_command
from common.files import atomic_directory
from common.text import plain
from readback.benchmark import MODEL_NAME
from readback.loadgen_log import DETAIL_FILE
from readback.peak_search import PeakSearch
from readback.run_files import RUN_RECORD_FILE
from readback.run_record import RunRecord
from tools.report.folders import (
    ReportError,
    ScenarioResults,
    find_scenario_folders,
    read_record,
    read_run_folder,
    read_scenario,
)
from tools.report.markup import (
    STYLE,
    Page,
    badge,
    esc,
    mapping_table,
    note,
    slug,
    table,
    verdict_text,
)
from tools.report.run_section import (
    accuracy_verdict,
    format_result,
    overrides_note,
    render_compliance,
    render_record,
    render_run,
)
from tools.submission.checker import SubmissionChecker, check_tree
from tools.submission.layout import RULES_VERSION

log = logging.getLogger(__name__)

REPORT_FILE = "report.html"


def _read_json(path: Path) -> object:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ReportError(f"{path} is not readable JSON ({error}): restore it from the run, or remove it") from None


def probe_rows(search: PeakSearch) -> list[tuple[object, ...]]:
    """One row per probe of a peak search: rate, p99, completed rate, LoadGen's verdict and why, folder."""
    rows = []
    for number, probe in enumerate(search.probes, start=1):
        result = probe.result
        verdict = result.validity + (f" ({result.failed_checks_text()})" if result.failed_checks else "")
        if (more := result.more_queries_needed()) is not None:
            verdict += f" [early stopping needs {more:,} more queries]"
        rows.append((number, f"{probe.target_qps:,.1f}", result.percentile.text() if result.percentile else "n/a",
                     result.headline.text() if result.headline else "n/a",
                     verdict + (" - the peak" if probe is search.peak_probe else ""), probe.folder))
    return rows


def render_peak_search(run_dir: Path, record: RunRecord, page: Page) -> str:
    """A Server peak search: the peak as the result, one row per probe, then the peak probe's own section."""
    search = record.peak_search
    assert search is not None
    if search.peak_qps is not None:
        verdict = badge(f"PEAK {search.peak_qps:,.1f} queries/s", True)
    else:
        verdict = badge("NO VALID RATE", False)
    parts = [f'<div class="verdict">{verdict}</div>', f"<p>{esc(search.conclusion)}.</p>", overrides_note(record),
             note("Each probe is a complete LoadGen performance run at one arrival rate, judged VALID or INVALID by "
                  "LoadGen itself (latency bound, early stopping, minimum duration and queries); its logs are in "
                  "its folder."),
             table(probe_rows(search), ("probe", "rate (queries/s)", "p99 latency", "completed", "LoadGen verdict", "folder"))]
    peak = search.peak_probe
    if peak is not None:
        probe_record = dataclasses.replace(record, wall_seconds=peak.wall_seconds, samples=peak.samples)
        parts.append(render_run(read_run_folder(run_dir / peak.folder, probe_record), page, slug("peak", peak.folder),
                                f"The peak probe: {peak.target_qps:,.1f} queries/s", level=3))
    else:
        parts.append("<h4>Settings</h4>" + render_record(record))
    return f'<section id="peak-search"><h2>Server peak search</h2>{"".join(parts)}</section>'


def render_checker(checker: SubmissionChecker) -> str:
    """The project's checker's verdict on the tree (the benchmark's rules), with every problem it found: the
    verdict MLPerf's checker would give, beside each run's LoadGen verdict below."""
    verdict = badge("passes" if not checker.problems else "refuses the tree", not checker.problems)
    listed = ('<ul class="reasons">' + "".join(f"<li>{esc(problem)}</li>" for problem in checker.problems) + "</ul>"
              if checker.problems else "")
    return (f"<h2>Submission checker</h2><p>The project's checker (python -m tools.check_submission, the "
            f"{esc(RULES_VERSION)} rules): {verdict} {esc(checker.summary())}</p>{listed}")


def render_submission(root: Path, scenarios: list[ScenarioResults], page: Page) -> str:
    """The checker's verdict, an overview table, each system's description, then one section per scenario."""
    checker = check_tree(root)
    problems_of = Counter((problem.system, problem.scenario) for problem in checker.problems)
    overview, sections, systems_seen = [], [], set()
    for entry in scenarios:
        performance = [run for name, run in entry.runs if name.startswith("performance/")]
        accuracy = [run for name, run in entry.runs if name == "accuracy"]
        overview.append((
            f"{entry.division}/{entry.submitter}", entry.system, entry.scenario,
            ", ".join(run.result.validity for run in performance) or "missing",
            ", ".join(format_result(run.result) for run in performance) or "n/a",
            accuracy_verdict(accuracy[0])[1] if accuracy else "missing",
            ", ".join(f"{c.test} {verdict_text(c.passed)}" for c in entry.compliance) or "none",
            f"{count} problem(s)" if (count := problems_of[(entry.system, entry.scenario)]) else "OK",
        ))
        system_key = (entry.division, entry.submitter, entry.system)
        if system_key not in systems_seen:
            systems_seen.add(system_key)
            sections.append(render_system(entry))
        name = slug(entry.division, entry.submitter, entry.system, entry.scenario)
        parts = [f'<h2 id="{esc(name)}">{esc(entry.system)} / {esc(entry.scenario)}</h2>',
                 f"<p>{esc(entry.folder)}</p>"]
        if entry.missing:
            parts.append('<ul class="reasons">' + "".join(f"<li>missing: {esc(m)}</li>" for m in entry.missing) + "</ul>")
        parts += [render_run(run, page, slug(name, run_name), f"{entry.scenario}: {run_name}", level=3)
                  for run_name, run in entry.runs]
        parts.append(render_compliance(entry.compliance) or note("No compliance test results for this scenario."))
        sections.append(f"<section>{''.join(parts)}</section>")
    head = ("submission", "system", "scenario", "performance", "result", "accuracy", "compliance", "checker")
    return f"<p>{esc(root)}</p>" + render_checker(checker) + table(overview, head) + "".join(sections)


def render_system(entry: ScenarioResults) -> str:
    path = entry.folder.parents[3] / "systems" / f"{entry.system}.json"
    heading = f'<h2 id="{esc(slug("system", entry.system))}">System {esc(entry.system)}</h2>'
    if not path.is_file():
        return heading + note(f"{path} is missing: a submission describes each system there.")
    description = _read_json(path)
    if not isinstance(description, dict):
        raise ReportError(f"{path} should hold a JSON object of system fields: fix it, then run the report again")
    return f"<section>{heading}<p>{esc(path)}</p>{mapping_table(description)}</section>"


def build_page(source: Path) -> tuple[str, dict[str, bytes]]:
    """The HTML page for ``source`` (a run folder or a submission tree) and its figures by file name."""
    page = Page()
    record = read_record(source)
    if record is not None and record.peak_search is not None:
        title = f"Run report: {record.scenario} peak search"
        body = render_peak_search(source, record, page)
    elif record is not None or (source / DETAIL_FILE).is_file():
        run = read_run_folder(source, record)
        kind = record.kind if record is not None else run.mode
        title = f"Run report: {run.scenario} {kind}"
        body = render_run(run, page, slug(run.scenario, kind), f"{run.scenario} {kind}")
    elif scenario_folders := find_scenario_folders(source):
        title = "Submission report"
        body = render_submission(source, [read_scenario(folder) for folder in scenario_folders], page)
    else:
        raise ReportError(f"{source} is neither a run folder ({RUN_RECORD_FILE} and {DETAIL_FILE} are missing) nor a "
                          f"submission tree (no results/<system>/{MODEL_NAME}/<scenario>/ below it): pass a folder "
                          "written by 'python run.py --output-dir DIR', a submission root, or its <division>/<submitter> folder")
    document = (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>'
                f"<style>{STYLE}</style></head><body><h1>{esc(title)}</h1>{body}</body></html>\n")
    return document, page.figures


def check_output_free(output: Path) -> None:
    """Refuse an output folder that exists and is not empty (or is not a folder)."""
    if output.exists() and (not output.is_dir() or any(output.iterdir())):
        raise ReportError(f"output {output} already exists and is not an empty folder; reports never overwrite: "
                          "pass another --output, or move that one away first")


def write_report(source: Path, output: Path | None = None) -> Path:
    """Write the report for ``source`` into ``output`` (default ``<source>/report``); returns the page's path."""
    source = Path(source).resolve()
    if not source.is_dir():
        raise ReportError(f"{source} is not a folder: pass a run folder (from 'python run.py --output-dir DIR') "
                          "or a submission tree")
    output = Path(output) if output is not None else source / "report"
    check_output_free(output)
    document, figures = build_page(source)
    with atomic_directory(output) as staging:
        for file_name, png in figures.items():
            (staging / file_name).write_bytes(png)
        (staging / REPORT_FILE).write_text(document, encoding="utf-8")
        check_output_free(output)
    log.info("report with %d figure(s) written to %s", len(figures), output)
    return output / REPORT_FILE


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """The command line; ``prog`` names it in the usage line (default: the script's file name)."""
    parser = argparse.ArgumentParser(prog=prog, description=plain(__doc__),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", type=Path, metavar="RUN_DIR_OR_SUBMISSION_TREE")
    parser.add_argument("--output", type=Path, help="new folder for report.html and the figures (default: <input>/report)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return run_command(lambda: _write_and_say(args.source, args.output), log)


def _write_and_say(source: Path, output: Path | None) -> int:
    print(f"report: {write_report(source, output)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

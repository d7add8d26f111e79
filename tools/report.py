"""The run report: one run folder, or a submission tree, as a self-contained HTML page with PNG figures.

    python -m tools.report RUN_DIR_OR_SUBMISSION_TREE [--output OUT_DIR]

The input is either

- a run folder written by ``run.py`` (it holds ``run.json`` and LoadGen's
  logs; a Server peak search holds one LoadGen run per probe under
  ``probes/``), or
- a submission tree (:mod:`tools.submission_layout`): its root (holding
  ``closed``/``open``) or one ``<division>/<submitter>`` folder, recognised by
  its ``results/<system>/seq2cnn/<scenario>/`` folders. Each scenario gets a
  section with its performance runs (``performance/run_*``), its accuracy run
  (``accuracy``), the verdicts of its compliance tests
  (``<scenario>/<TEST>/verify_*.txt``), and each system its description
  (``systems/<system>.json``); each run's ``run.json`` and ``sut_timings.npz``
  are read from ``documentation/runs/<system>/seq2cnn/<scenario>/<kind>/``.

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
2 bad input (the message says what, where and what to do).
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import html
import json
import logging
import re
import shlex
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from common.errors import BadInputError
from common.files import atomic_directory
from readback.accuracy import AccuracyCheckError, read_accuracy_report, verdict_word
from readback.benchmark import MODEL_NAME
from readback.cluster import ClusterInfo
from readback.loadgen_log import (
    DETAIL_FILE,
    SUMMARY_FILE,
    LoadGenLogError,
    LoadGenResult,
    detail_values,
    read_result,
)
from readback.peak_search import PeakSearch
from readback.run_files import ACCURACY_REPORT_FILE, RUN_RECORD_FILE, SUT_TIMINGS_FILE
from readback.run_record import RunRecord, RunRecordError, read_run_record
from readback.test01 import ComplianceVerdicts, read_verdicts
from readback.timings import SutTimings, TimingsError, read_sut_timings
from tools import submission_layout as layout
from tools.report_figures import (
    Marker,
    latency_distribution_png,
    percentile_points_png,
    throughput_png,
)

log = logging.getLogger(__name__)

REPORT_FILE = "report.html"
#: the setting that holds the expected latency (ns) of the latency-bound single-query scenarios
EXPECTED_LATENCY_SETTING = {
    "SingleStream": "single_stream_expected_latency_ns",
    "MultiStream": "multi_stream_expected_latency_ns",
}


class ReportError(BadInputError):
    """The report cannot be made: the message says what is wrong, where, and what to do."""


@dataclass
class RunFolder:
    """What one LoadGen run folder holds: LoadGen's logs, the run record (None in a submission's accuracy
    folder or a probe), the accuracy report, the SUT's timings and any compliance verdicts."""

    path: Path
    result: LoadGenResult
    detail: dict[str, object]
    record: RunRecord | None
    accuracy_text: str | None
    timings: SutTimings | None
    compliance: ComplianceVerdicts | None

    @property
    def scenario(self) -> str:
        return self.result.scenario

    @property
    def mode(self) -> str:
        """``performance`` or ``accuracy``, as LoadGen ran it."""
        return self.result.mode

    def setting(self, name: str) -> object | None:
        """A LoadGen setting as LoadGen used it (detail log), else as ``run.json`` recorded it."""
        for key in (f"effective_{name}", f"requested_{name}"):
            if key in self.detail:
                return self.detail[key]
        return self.record.settings.effective.get(name) if self.record is not None else None


@dataclass
class ScenarioResults:
    """One scenario of one system in a submission tree, with the runs found for it."""

    division: str
    submitter: str
    system: str
    scenario: str
    folder: Path
    runs: list[tuple[str, RunFolder]]
    missing: list[str]
    compliance: list[ComplianceVerdicts]


# ---------------------------------------------------------------- reading


def _read_json(path: Path) -> object:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ReportError(f"{path} is not readable JSON ({error}): restore it from the run, or remove it") from None


def read_record(folder: Path) -> RunRecord | None:
    """The run's record, or None when the folder has no ``run.json``."""
    if not (folder / RUN_RECORD_FILE).is_file():
        return None
    try:
        return read_run_record(folder)
    except RunRecordError as error:
        raise ReportError(str(error)) from None


def read_run_folder(path: Path, record: RunRecord | None = None, records: Path | None = None) -> RunFolder:
    """Everything the report shows about the LoadGen run in ``path``; ``record`` when it lives elsewhere
    (a probe's is its search's); ``records`` the folder of the project's files of the run (``run.json``,
    ``sut_timings.npz``) when they are not beside LoadGen's logs (a submission tree)."""
    records = path if records is None else records
    record = record if record is not None else read_record(records)
    if not (path / DETAIL_FILE).is_file():
        if record is not None:
            raise ReportError(f"{path} has no {DETAIL_FILE}: the run ended before LoadGen wrote it "
                              f"(run.json: status {record.status!r}, {record.error or 'no error recorded'}); "
                              "run it again, or report on a finished run")
        raise ReportError(f"{path} is not a run folder ({DETAIL_FILE} is missing): pass a folder written by "
                          "'python run.py --output-dir DIR', or a submission tree")
    accuracy_path = path / ACCURACY_REPORT_FILE
    try:
        return RunFolder(
            path=path,
            result=read_result(path),
            detail=detail_values(path / DETAIL_FILE),
            record=record,
            accuracy_text=accuracy_path.read_text(encoding="utf-8", errors="replace") if accuracy_path.is_file() else None,
            timings=read_sut_timings(records / SUT_TIMINGS_FILE),
            compliance=read_verdicts(path),
        )
    except (LoadGenLogError, TimingsError) as error:
        raise ReportError(str(error)) from None


def find_scenario_folders(root: Path) -> list[Path]:
    """``results/<system>/seq2cnn/<scenario>/`` folders under a submitter folder or a submission root."""
    patterns = (f"results/*/{MODEL_NAME}/*", f"*/*/results/*/{MODEL_NAME}/*")
    return sorted(path for pattern in patterns for path in root.glob(pattern) if path.is_dir())


def read_scenario(folder: Path) -> ScenarioResults:
    """The runs and compliance verdicts of ``<submitter>/results/<system>/seq2cnn/<scenario>``."""
    submitter_dir = folder.parents[3]
    system, scenario = folder.parents[1].name, folder.name
    performance = [p.relative_to(folder).as_posix() for p in sorted(folder.glob("performance/run_*"))]
    runs, missing = [], []
    for name in (performance or ["performance/run_1"]) + ["accuracy"]:
        kind = name.split("/")[0]
        records = submitter_dir / layout.records_dir(system, scenario, kind)
        if (folder / name / DETAIL_FILE).is_file():
            runs.append((name, read_run_folder(folder / name, records=records)))
        else:
            missing.append(f"{name}/{DETAIL_FILE}")
    compliance = [verdicts for test_dir in sorted(p for p in folder.glob("TEST*") if p.is_dir())
                  if (verdicts := read_verdicts(test_dir, test_dir.name)) is not None]
    return ScenarioResults(submitter_dir.parent.name, submitter_dir.name, system, scenario, folder, runs, missing, compliance)


# ---------------------------------------------------------------- page building


def esc(value: object) -> str:
    return html.escape(str(value))


def slug(*parts: str) -> str:
    """A file- and anchor-safe name: lower case letters, digits and dashes."""
    return re.sub(r"[^a-z0-9]+", "-", "-".join(parts).lower()).strip("-") or "run"


def shown(value: object) -> str:
    """A value as a table cell shows it: nested values as compact JSON."""
    if isinstance(value, (dict, list)):
        return json.dumps(value, default=str)
    return str(value)


def table(rows: Iterable[Iterable[object]], header: Iterable[str] | None = None) -> str:
    head = "<tr>" + "".join(f"<th>{esc(h)}</th>" for h in header) + "</tr>" if header else ""
    body = "".join("<tr>" + "".join(f"<td>{esc(shown(cell))}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table>{head}{body}</table>"


def mapping_table(values: Mapping[str, object]) -> str:
    """A two-column table: each key as a row heading, its value beside it."""
    rows = "".join(f"<tr><th>{esc(key)}</th><td>{esc(shown(value))}</td></tr>" for key, value in values.items())
    return f"<table>{rows}</table>"


def badge(text: str, good: bool | None) -> str:
    tone = {True: "good", False: "bad", None: "neutral"}[good]
    return f'<span class="badge {tone}">{esc(text)}</span>'


def verdict_text(passed: bool | None) -> str:
    """A compliance check's verdict; None when no file states one."""
    return {True: "PASS", False: "FAIL", None: "no verdict"}[passed]


def note(text: str) -> str:
    return f'<p class="note">{esc(text)}</p>'


def collapsible(title: str, text: str) -> str:
    return f"<details><summary>{esc(title)}</summary><pre>{esc(text)}</pre></details>"


class Page:
    """The figures of a page being built: each one saved as a PNG file and embedded as a data URI."""

    def __init__(self) -> None:
        self.figures: dict[str, bytes] = {}

    def figure(self, name: str, png: bytes, caption: str) -> str:
        """HTML for ``png`` saved as ``<name>.png`` (made unique on the page) with ``caption``."""
        file_name, number = f"{name}.png", 2
        while file_name in self.figures:
            file_name, number = f"{name}-{number}.png", number + 1
        self.figures[file_name] = png
        data = base64.b64encode(png).decode("ascii")
        return (f'<figure><img src="data:image/png;base64,{data}" alt="{esc(caption)}">'
                f'<figcaption>{esc(caption)} (<a href="{esc(file_name)}">{esc(file_name)}</a>)</figcaption></figure>')


def latency_markers(run: RunFolder) -> list[Marker]:
    """LoadGen's percentiles, the scenario's result when it is a latency, and its latency target, in ms."""
    result = run.result
    target_fraction = run.setting("target_latency_percentile")
    target_percent = 100 * float(target_fraction) if target_fraction else None
    markers = []
    for percent, ns in sorted(result.latencies_ns.items()):
        judged = run.scenario == "Server" and target_percent is not None and abs(percent - target_percent) < 1e-6
        label = f"LoadGen p{percent:g}" + (" (judged against the bound)" if judged else "")
        markers.append(Marker(label, ns / 1e6, "headline" if judged else "percentile"))
    if result.headline is not None and result.headline.unit == "ns":
        markers.append(Marker(f"LoadGen {result.headline.name} (the result)", result.headline.value / 1e6, "headline"))
    if run.scenario == "Server":
        bound_ns = run.setting("target_latency_ns") or run.setting("server_target_latency_ns")
        if bound_ns:
            at = f" at p{target_percent:g}" if target_percent is not None else ""
            markers.append(Marker(f"latency bound{at}", float(bound_ns) / 1e6, "target"))
    elif run.scenario in EXPECTED_LATENCY_SETTING:
        expected_ns = run.setting(EXPECTED_LATENCY_SETTING[run.scenario])
        if expected_ns:
            markers.append(Marker("expected latency (settings)", float(expected_ns) / 1e6, "expectation"))
    return markers


def throughput_reference(run: RunFolder) -> tuple[str, float] | None:
    """The rate (samples/s) to compare throughput over time with: the Server target rate, or Offline's result."""
    if run.scenario == "Server" and run.setting("target_qps"):
        return "Server target rate", float(run.setting("target_qps"))
    if run.scenario == "Offline" and run.result.headline is not None:
        return "LoadGen result", run.result.headline.value
    return None


def render_latency(run: RunFolder, page: Page, name: str) -> str:
    """The latency distribution and throughput over time, or notes saying why they are missing."""
    if run.mode == "accuracy":
        return note("Accuracy mode: LoadGen measures no latency, so there are no latency or throughput figures.")
    parts = ["<h4>Latency and throughput</h4>"]
    markers = latency_markers(run)
    title = f"{run.scenario} {run.mode}"
    if run.timings is not None and run.timings.issued_ns.size:
        what = "latency as timed by the SUT"
        parts.append(page.figure(f"{name}-latency", latency_distribution_png(run.timings.latencies_ms, markers, title, what),
                                 f"{title}: per-sample {what} ({SUT_TIMINGS_FILE}), with LoadGen's percentiles, "
                                 "its result and the latency target"))
        if run.scenario == "MultiStream":
            parts.append(note("MultiStream: the histogram counts samples; LoadGen's percentiles are over queries of "
                              f"{run.setting('samples_per_query') or 8} samples."))
        parts.append(page.figure(f"{name}-throughput", throughput_png(run.timings.completed_ns, throughput_reference(run), title),
                                 f"{title}: completed samples per second over the run, as timed by the SUT"))
        return "".join(parts)
    points = [(percent, ns / 1e6) for percent, ns in sorted(run.result.latencies_ns.items())]
    missing = f"No {SUT_TIMINGS_FILE} in this run folder (or it is empty): per-sample latencies are unknown"
    if not points:
        return "".join(parts) + note(f"{missing}, and LoadGen's detail log lists no percentile latencies.")
    parts.append(note(f"{missing}, so this shows LoadGen's percentile latencies from its detail log instead of a "
                      "histogram, and throughput over time is omitted."))
    targets = [m for m in markers if m.kind in ("target", "expectation")]
    parts.append(page.figure(f"{name}-latency-percentiles", percentile_points_png(points, targets, title),
                             f"{title}: LoadGen's percentile latencies and the latency target"))
    return "".join(parts)


def format_result(result: LoadGenResult) -> str:
    """The result as MLPerf defines it, with the plain percentile and Server's tail beside it."""
    if result.headline is None:
        return "n/a"
    extras = [f"{figure.name} {figure.text()}" for figure in (result.percentile, result.tail) if figure is not None]
    return f"{result.headline.name}: {result.headline.text()}" + (f" ({'; '.join(extras)})" if extras else "")


def accuracy_verdict(run: RunFolder) -> tuple[bool | None, str]:
    """Whether the run's accuracy meets the 99% target (None: not judged or unknown), and the accuracy as a short text."""
    if run.record is not None and run.record.accuracy is not None:
        accuracy = run.record.accuracy
        return accuracy.passed, f"{100 * accuracy.accuracy:.3f}% ({accuracy.correct}/{accuracy.samples}), {accuracy.verdict}"
    if run.accuracy_text is not None:
        try:
            stated = read_accuracy_report(run.path / ACCURACY_REPORT_FILE)
        except AccuracyCheckError as error:
            return None, str(error)
        return stated.passed, f"{100 * stated.accuracy:.3f}% ({stated.correct}/{stated.total}), {verdict_word(stated.passed)}"
    return None, f"no {ACCURACY_REPORT_FILE}"


def invalid_reasons(run: RunFolder) -> list[str]:
    """Why the run is not VALID: failed checks, the early-stopping hint, LoadGen's errors, a run that did not finish."""
    reasons = [f"{check}: NO" for check in run.result.failed_checks]
    if run.result.early_stopping:
        reasons.append(f"early stopping: {run.result.early_stopping}")
    reasons += [f"LoadGen error: {error}" for error in run.result.errors]
    if run.record is not None and run.record.status != "finished":
        reasons.append(f"run.json status {run.record.status!r}: {run.record.error or 'the run did not finish'}")
    return reasons


def overrides_note(record: RunRecord | None) -> str:
    """Whether the run followed the config files, or was a quick run (with its overrides)."""
    if record is None:
        return note(f"No {RUN_RECORD_FILE}: whether this was a quick run (with overrides) is unknown.")
    if record.settings.overrides:
        listed = ", ".join(f"{override.option}={override.value:g}" for override in record.settings.overrides)
        return f'<p class="quick">Quick run ({esc(listed)}): not valid for submission.</p>'
    return note("No overrides: settings as the config files give them.")


def render_header(run: RunFolder) -> str:
    """The verdict (big, coloured) with its reasons, the quick-run flag and the run's key facts."""
    if run.mode == "accuracy":
        passed, text = accuracy_verdict(run)
        verdict = badge(f"ACCURACY {verdict_word(passed)}", passed) + note(
            f"Accuracy mode: LoadGen does not judge validity; accuracy {text} against the 99% target.")
    else:
        verdict = badge(run.result.validity, run.result.valid)
    if run.compliance is not None:
        verdict += " " + badge(f"{run.compliance.test} {verdict_text(run.compliance.passed)}", run.compliance.passed)
    reasons = invalid_reasons(run)
    parts = [f'<div class="verdict">{verdict}</div>']
    if reasons:
        parts.append('<ul class="reasons">' + "".join(f"<li>{esc(r)}</li>" for r in reasons) + "</ul>")
    parts.append(overrides_note(run.record))
    record = run.record
    facts = {
        "scenario": run.scenario,
        "kind": record.kind if record is not None else run.mode,
        "backend": f"{record.backend.name} on {record.backend.device}" if record is not None else "unknown (no run.json)",
        **({"cluster": record.cluster.summary() + record.cluster.faults()}
           if record is not None and record.cluster is not None else {}),
        "result": format_result(run.result) if run.mode != "accuracy" else accuracy_verdict(run)[1],
        "samples issued / completed": f"{record.samples.issued} / {record.samples.completed}"
        if record is not None and record.samples is not None else "n/a",
        "started (UTC)": record.started_utc if record is not None else "n/a",
        "wall time": f"{record.wall_seconds} s" if record is not None and record.wall_seconds is not None else "n/a",
        "folder": run.path,
    }
    return "".join(parts) + mapping_table(facts)


def render_cluster(cluster: ClusterInfo) -> str:
    """The Ray cluster of a run: its nodes, and each backend actor's node, process, device and resources."""
    nodes = table(((node.address, node.node_id[:12], f"{node.cpus:g}", f"{node.gpus:g}",
                    f"{node.memory_bytes / 2**30:.1f} GiB") for node in cluster.nodes),
                  ("node", "Ray node id", "CPUs", "GPUs", "memory"))
    actors = table(((actor.index, actor.node_address, actor.pid, actor.device, ", ".join(actor.gpu_ids) or "-",
                     f"{actor.cpus:g}", actor.threads if actor.threads is not None else "-",
                     actor.tables_source or "-") for actor in cluster.actors),
                   ("actor", "node", "pid", "device", "GPU ids", "CPUs", "threads", "tables"))
    return (f"<p>Ray cluster ({esc(cluster.summary() + cluster.faults())}; {cluster.in_flight_per_actor} "
            f"batches in flight per actor):</p>" + nodes + actors)


def render_accuracy(run: RunFolder) -> str:
    accuracy = run.record.accuracy if run.record is not None else None
    if accuracy is None and run.accuracy_text is None:
        return ""
    parts = ["<h4>Accuracy</h4>"]
    if accuracy is not None:
        rows = {
            "accuracy": f"{100 * accuracy.accuracy:.3f}% ({accuracy.correct} of {accuracy.samples} reviews)",
            "fp32 reference accuracy (whole test split)": accuracy.reference_accuracy,
        }
        rows |= {f"{target} of the reference": verdict_word(met) for target, met in accuracy.targets.items()}
        rows["problems in the log"] = "; ".join(accuracy.problems) or "none"
        parts.append(mapping_table(rows))
    if run.accuracy_text is not None:
        parts.append(f"<pre>{esc(run.accuracy_text)}</pre>")
    return "".join(parts)


def render_compliance(results: Iterable[ComplianceVerdicts]) -> str:
    parts = []
    for result in results:
        parts.append(f"<h4>Compliance {esc(result.test)}: {badge(verdict_text(result.passed), result.passed)}</h4>")
        parts.append(table(((check, verdict_text(passed)) for check, passed in result.checks.items()), ("check", "verdict")))
        parts += [collapsible(name, text) for name, text in result.texts.items()]
    return "".join(parts)


def detail_settings(detail: Mapping[str, object], prefix: str) -> dict[str, object]:
    """The detail log's settings logged under ``prefix`` (``effective_`` or ``requested_``), without it."""
    return {key.removeprefix(prefix): value for key, value in detail.items() if key.startswith(prefix)}


def render_record(record: RunRecord) -> str:
    """What ``run.json`` says of where the run's settings came from, the backend, versions and machine."""
    settings = record.settings
    parts = ["<p>Config files, in loading order:</p>",
             table(((str(f.path), f.sha256) for f in settings.config_files), ("file", "sha256"))]
    if settings.overrides:
        parts.append("<p>Overrides:</p>" + table(((o.option, o.value, o.sets) for o in settings.overrides),
                                                 ("option", "value", "sets")))
    sections = {
        "Backend": dataclasses.asdict(record.backend),
        "SUT batching": dataclasses.asdict(record.sut),
        "Dataset": dataclasses.asdict(record.dataset),
        "Samples (SUT bookkeeping)": dataclasses.asdict(record.samples) if record.samples is not None else None,
        "Versions": record.versions,
        "Git": record.git,
        "Machine": record.machine,
    }
    for title, values in sections.items():
        if values:
            parts.append(f"<p>{esc(title)}:</p>" + mapping_table(values))
        if title == "SUT batching" and record.cluster is not None:
            parts.append(render_cluster(record.cluster))
    parts.append(f"<p>Command:</p><pre>{esc(shlex.join(record.command))}</pre>")
    return "".join(parts)


def render_settings(run: RunFolder) -> str:
    parts = ["<h4>Settings</h4>"]
    effective = detail_settings(run.detail, "effective_")
    if effective:
        parts.append(f"<p>Effective LoadGen settings, as LoadGen logged them ({esc(DETAIL_FILE)}):</p>")
        parts.append(mapping_table(effective))
        parts.append(collapsible("requested settings (TestSettings as passed to LoadGen)",
                                 "\n".join(f"{k} = {v}" for k, v in detail_settings(run.detail, "requested_").items())))
    elif run.record is not None:
        parts.append(f"<p>Settings passed to LoadGen ({esc(RUN_RECORD_FILE)}):</p>" + mapping_table(run.record.settings.effective))
    if run.record is not None:
        parts.append(render_record(run.record))
    if (run.path / SUMMARY_FILE).is_file():
        parts.append(collapsible(SUMMARY_FILE, (run.path / SUMMARY_FILE).read_text(encoding="utf-8", errors="replace")))
    return "".join(parts)


def render_run(run: RunFolder, page: Page, name: str, heading: str, level: int = 2) -> str:
    """One run's section: header, latency and throughput, accuracy, compliance, settings."""
    body = [render_header(run), render_latency(run, page, name), render_accuracy(run),
            render_compliance([run.compliance] if run.compliance else []), render_settings(run)]
    return f'<section id="{esc(name)}"><h{level}>{esc(heading)}</h{level}>{"".join(body)}</section>'


def probe_rows(search: PeakSearch) -> list[tuple[object, ...]]:
    """One row per probe of a peak search: rate, p99, completed rate, LoadGen's verdict and why, folder."""
    rows = []
    for number, probe in enumerate(search.probes, start=1):
        result = probe.result
        verdict = result.validity + (f" ({', '.join(result.failed_checks)}: NO)" if result.failed_checks else "")
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


def render_submission(root: Path, scenarios: list[ScenarioResults], page: Page) -> str:
    """An overview table, each system's description, then one section per scenario."""
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
    head = ("submission", "system", "scenario", "performance", "result", "accuracy", "compliance")
    return f"<p>{esc(root)}</p>" + table(overview, head) + "".join(sections)


def render_system(entry: ScenarioResults) -> str:
    path = entry.folder.parents[3] / "systems" / f"{entry.system}.json"
    heading = f'<h2 id="{esc(slug("system", entry.system))}">System {esc(entry.system)}</h2>'
    if not path.is_file():
        return heading + note(f"{path} is missing: a submission describes each system there.")
    description = _read_json(path)
    if not isinstance(description, dict):
        raise ReportError(f"{path} should hold a JSON object of system fields: fix it, then run the report again")
    return f"<section>{heading}<p>{esc(path)}</p>{mapping_table(description)}</section>"


STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1250px; color: #222; }
h1 { font-size: 1.6em; } h2 { border-bottom: 2px solid #ccc; margin-top: 2em; } h3 { margin-top: 1.6em; }
table { border-collapse: collapse; margin: 0.5em 0 1em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.6em; text-align: left; vertical-align: top; word-break: break-all; }
th { background: #f0f0f0; }
.badge { display: inline-block; font-size: 2em; font-weight: bold; padding: 0.1em 0.6em; border-radius: 0.3em; color: white; }
h4 .badge { font-size: 1em; }
.good { background: #2e7d32; } .bad { background: #c62828; } .neutral { background: #757575; }
.reasons { color: #c62828; font-weight: bold; }
.quick { background: #fff3cd; border: 1px solid #e0b000; padding: 0.5em; font-weight: bold; }
.note { color: #555; font-style: italic; }
figure { margin: 1em 0; } figure img { max-width: 100%; } figcaption { font-size: 0.85em; color: #555; }
pre { background: #f7f7f7; padding: 0.6em; overflow-x: auto; font-size: 0.85em; }
"""


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", type=Path, metavar="RUN_DIR_OR_SUBMISSION_TREE")
    parser.add_argument("--output", type=Path, help="new folder for report.html and the figures (default: <input>/report)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        page = write_report(args.source, args.output)
    except ReportError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"report: {page}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The run report: one run folder, or a submission tree, as a self-contained HTML page with PNG figures.

    python -m tools.report RUN_DIR_OR_SUBMISSION_TREE [--output OUT_DIR]

The input is either

- a run folder written by ``run.py`` (it holds ``mlperf_log_summary.txt``), or
- a submission tree: its root (holding ``closed``/``open``) or one
  ``<division>/<submitter>`` folder, recognised by its
  ``results/<system>/seq2cnn/<scenario>/`` folders. Each scenario gets a
  section with its performance runs (``performance/run_*``), its accuracy run
  (``accuracy``), the verdicts of its compliance tests
  (``compliance/<system>/seq2cnn/<scenario>/<TEST>/verify_*.txt``), and each
  system its description (``systems/<system>.json``).

For each run the page shows LoadGen's verdict (VALID/INVALID, with the failed
checks and logged errors), whether it was a quick run, the latency
distribution with LoadGen's percentiles and the latency target, completed
samples per second over time, accuracy and compliance verdicts, and the
settings: LoadGen's requested and effective values from its detail log (what
LoadGen used, after any ``audit.config``), the config files with their
sha256, overrides, backend, versions and machine from ``run.json``.

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
import html
import json
import logging
import os
import re
import shlex
import shutil
import sys
import tempfile
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sut.loadgen_log import DETAIL_FILE, SUMMARY_FILE, LoadGenResult, detail_values, read_result
from sut.run_files import RUN_RECORD_FILE, SUT_TIMINGS_FILE, VERIFICATION_FILE
from sut.settings import MODEL_NAME
from tools.accuracy_imdb import REPORT_NAME as ACCURACY_REPORT_FILE
from tools.report_figures import Marker, latency_distribution_png, percentile_points_png, throughput_png

log = logging.getLogger(__name__)

REPORT_FILE = "report.html"
VERDICT_LINE = re.compile(r"^TEST (PASS|FAIL)")
PERCENTILE_KEY = re.compile(r"^(?P<percentile>\d+(?:\.\d+)?) percentile latency \(ns\)$")
MODE_NAMES = {"PerformanceOnly": "performance", "AccuracyOnly": "accuracy", "FindPeakPerformance": "find peak performance"}
#: the setting that holds the expected latency (ns) of the latency-bound single-query scenarios
EXPECTED_LATENCY_SETTING = {
    "SingleStream": "single_stream_expected_latency_ns",
    "MultiStream": "multi_stream_expected_latency_ns",
}


class ReportError(RuntimeError):
    """The report cannot be made: the message says what is wrong, where, and what to do."""


@dataclass
class SutTimings:
    """Each completed sample's issue and completion time as the SUT measured them (ns since the first issue)."""

    issued_ns: np.ndarray
    completed_ns: np.ndarray

    @property
    def latencies_ms(self) -> np.ndarray:
        """Per-sample latency as the SUT saw it, in ms."""
        return (self.completed_ns - self.issued_ns) / 1e6


@dataclass
class ComplianceResult:
    """A compliance test's verdicts: per check (``accuracy``, ``performance``) and overall.

    A verdict is ``None`` when no file states it; ``texts`` maps each file read to its text.
    """

    test: str
    checks: dict[str, bool | None] = field(default_factory=dict)
    passed: bool | None = None
    texts: dict[str, str] = field(default_factory=dict)


@dataclass
class RunFolder:
    """What one run folder holds: LoadGen's logs, the run record and the SUT's timings."""

    path: Path
    result: LoadGenResult
    detail: dict[str, object]
    record: dict | None
    accuracy_text: str | None
    timings: SutTimings | None
    compliance: ComplianceResult | None

    @property
    def scenario(self) -> str:
        return str(self.detail.get("effective_scenario") or self.result.scenario)

    @property
    def mode(self) -> str:
        """``performance``, ``accuracy`` or ``find peak performance``, as LoadGen ran it."""
        loadgen_mode = str(self.detail.get("effective_test_mode") or self.result.mode)
        return MODE_NAMES.get(loadgen_mode, loadgen_mode)

    def setting(self, name: str) -> object | None:
        """A LoadGen setting as LoadGen used it (detail log), else as ``run.json`` recorded it."""
        for key in (f"effective_{name}", f"requested_{name}"):
            if key in self.detail:
                return self.detail[key]
        return ((self.record or {}).get("settings") or {}).get("effective", {}).get(name)

    @property
    def overrides(self) -> list[tuple[str, object]] | None:
        """The quick-run overrides and adjustments (``run.json``); ``None`` when there is no record."""
        if self.record is None:
            return None
        settings = self.record.get("settings", {})
        listed = [(o["option"], o["value"]) for o in settings.get("overrides", [])]
        return listed + list(settings.get("adjustments", {}).items())


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
    compliance: list[ComplianceResult]


# ---------------------------------------------------------------- reading


def _read_json(path: Path) -> object:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ReportError(f"{path} is not readable JSON ({error}): restore it from the run, or remove it") from None


def read_timings(path: Path) -> SutTimings | None:
    """The SUT's per-sample timings in ``path`` (``sut_timings.npz``), or ``None`` when the file is absent."""
    if not path.is_file():
        return None
    try:
        with np.load(path) as arrays:
            issued, completed = arrays["issued_ns"].astype(np.int64), arrays["completed_ns"].astype(np.int64)
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as error:
        raise ReportError(f"{path} is not a timings file with int64 arrays issued_ns and completed_ns ({error}): "
                          "remove it to report without per-sample latencies") from None
    if issued.shape != completed.shape or issued.ndim != 1:
        raise ReportError(f"{path}: issued_ns {issued.shape} and completed_ns {completed.shape} must be 1-D of one length; "
                          "remove it to report without per-sample latencies")
    return SutTimings(issued, completed)


def verdict_of(text: str) -> bool | None:
    """A ``verify_*.txt`` verdict: its last ``TEST PASS``/``TEST FAIL`` line, or ``None`` without one."""
    verdicts = [match[1] == "PASS" for line in text.splitlines() if (match := VERDICT_LINE.match(line.strip()))]
    return verdicts[-1] if verdicts else None


def read_compliance(folder: Path, test: str) -> ComplianceResult | None:
    """Verdicts from ``verify_*.txt`` and ``verification.json`` in ``folder``; ``None`` when it has neither."""
    outcome = ComplianceResult(test)
    for path in sorted(folder.glob("verify_*.txt")):
        text = path.read_text(encoding="utf-8", errors="replace")
        outcome.texts[path.name] = text
        outcome.checks[path.stem.removeprefix("verify_")] = verdict_of(text)
    verification_path = folder / VERIFICATION_FILE
    if verification_path.is_file():
        verification = _read_json(verification_path)
        if not isinstance(verification, dict):
            raise ReportError(f"{verification_path} should hold a JSON object with 'test' and 'passed': restore it from the run")
        outcome.test = str(verification.get("test", test))
        outcome.passed = verification.get("passed")
        for check in ("accuracy", "performance"):
            if outcome.checks.get(check) is None and isinstance(verification.get(check), dict):
                outcome.checks[check] = verification[check].get("passed")
        outcome.texts[VERIFICATION_FILE] = json.dumps(verification, indent=2)
    if not outcome.texts:
        return None
    if outcome.passed is None and outcome.checks and None not in outcome.checks.values():
        outcome.passed = all(outcome.checks.values())
    return outcome


def read_run_record(path: Path) -> dict | None:
    """The run's ``run.json`` as a dict, or ``None`` when the folder has none."""
    if not path.is_file():
        return None
    record = _read_json(path)
    if not isinstance(record, dict):
        raise ReportError(f"{path} should hold a JSON object: restore it from the run, or remove it")
    return record


def read_run_folder(path: Path) -> RunFolder:
    """Everything the report shows about the run in ``path``; a :class:`ReportError` if it is not a run."""
    record = read_run_record(path / RUN_RECORD_FILE)
    if not (path / SUMMARY_FILE).is_file():
        if record is not None:
            raise ReportError(f"{path} has no {SUMMARY_FILE}: the run ended before LoadGen wrote it "
                              f"(run.json: status {record.get('status')!r}, {record.get('error', 'no error recorded')}); "
                              "run it again, or report on a finished run")
        raise ReportError(f"{path} is not a run folder ({SUMMARY_FILE} is missing): pass a folder written by "
                          "'python run.py --output-dir DIR', or a submission tree")
    accuracy_path = path / ACCURACY_REPORT_FILE
    compliance_test = ((record or {}).get("config") or {}).get("compliance") or "compliance"
    return RunFolder(
        path=path,
        result=read_result(path),
        detail=detail_values(path / DETAIL_FILE) if (path / DETAIL_FILE).is_file() else {},
        record=record,
        accuracy_text=accuracy_path.read_text(encoding="utf-8", errors="replace") if accuracy_path.is_file() else None,
        timings=read_timings(path / SUT_TIMINGS_FILE),
        compliance=read_compliance(path, compliance_test),
    )


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
        if (folder / name / SUMMARY_FILE).is_file():
            runs.append((name, read_run_folder(folder / name)))
        else:
            missing.append(f"{name}/{SUMMARY_FILE}")
    compliance_dir = submitter_dir / "compliance" / system / MODEL_NAME / scenario
    compliance = [result for test_dir in sorted(p for p in compliance_dir.glob("*") if p.is_dir())
                  if (result := read_compliance(test_dir, test_dir.name)) is not None]
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


def loadgen_percentiles(summary: Mapping[str, str]) -> list[tuple[float, float]]:
    """LoadGen's percentile latencies from the summary: ``(percentile in %, latency in ms)``, ascending."""
    points = [(float(m["percentile"]), float(value) / 1e6)
              for key, value in summary.items() if (m := PERCENTILE_KEY.match(key))]
    return sorted(points)


def latency_markers(run: RunFolder) -> list[Marker]:
    """LoadGen's percentiles (the one at the target percentile highlighted) and the scenario's latency target, in ms."""
    target_fraction = run.setting("target_latency_percentile")
    target_percentile = 100 * float(target_fraction) if target_fraction else None
    judged = run.scenario in ("SingleStream", "MultiStream", "Server")
    markers = []
    for percentile, ms in loadgen_percentiles(run.result.summary):
        if judged and target_percentile is not None and abs(percentile - target_percentile) < 1e-6:
            markers.append(Marker(f"LoadGen p{percentile:g} (target percentile)", ms, "headline"))
        else:
            markers.append(Marker(f"LoadGen p{percentile:g}", ms))
    if run.scenario == "Server":
        bound_ns = run.setting("target_latency_ns") or run.setting("server_target_latency_ns")
        if bound_ns:
            at = f" at p{target_percentile:g}" if target_percentile is not None else ""
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
    if run.scenario == "Offline" and run.result.value is not None:
        return "LoadGen result", run.result.value
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
                                 f"{title}: per-sample {what} ({SUT_TIMINGS_FILE}), with LoadGen's percentiles and the "
                                 "latency target"))
        if run.scenario == "MultiStream":
            parts.append(note("MultiStream: the histogram counts samples; LoadGen's percentiles are over queries of "
                              f"{run.setting('samples_per_query') or 8} samples."))
        parts.append(page.figure(f"{name}-throughput", throughput_png(run.timings.completed_ns, throughput_reference(run), title),
                                 f"{title}: completed samples per second over the run, as timed by the SUT"))
        return "".join(parts)
    points = loadgen_percentiles(run.result.summary)
    missing = f"No {SUT_TIMINGS_FILE} in this run folder (or it is empty): per-sample latencies are unknown"
    if not points:
        return "".join(parts) + note(f"{missing}, and LoadGen's summary lists no percentile latencies.")
    parts.append(note(f"{missing}, so this shows LoadGen's percentile latencies from its summary instead of a "
                      "histogram, and throughput over time is omitted."))
    targets = [m for m in markers if m.kind in ("target", "expectation")]
    parts.append(page.figure(f"{name}-latency-percentiles", percentile_points_png(points, targets, title),
                             f"{title}: LoadGen's percentile latencies and the latency target"))
    return "".join(parts)


def format_result(result: LoadGenResult) -> str:
    if result.value is None:
        return "n/a"
    if "latency" in (result.metric or ""):
        return f"{result.metric.replace(' (ns)', '')}: {result.value / 1e6:.3f} ms"
    return f"{result.metric}: {result.value:,.2f}"


def accuracy_verdict(run: RunFolder) -> tuple[bool | None, str]:
    """Whether the run's accuracy meets the 99% target, and the accuracy as a short text."""
    recorded = (run.record or {}).get("accuracy")
    if recorded:
        return recorded.get("passed"), f"{100 * recorded['accuracy']:.3f}% ({recorded['correct']}/{recorded['samples']})"
    if run.accuracy_text is not None:
        lines = run.accuracy_text.strip().splitlines()
        passed = True if "RESULT: PASS" in lines else False if "RESULT: FAIL" in lines else None
        return passed, lines[0] if lines else "empty accuracy.txt"
    return None, "no accuracy.txt"


def invalid_reasons(run: RunFolder) -> list[str]:
    """Why the run is not VALID: failed checks, LoadGen's errors, a run that did not finish."""
    reasons = [f"{check}: NO" for check in run.result.failed_checks]
    reasons += [f"LoadGen error: {error}" for error in run.result.errors]
    if run.record is not None and run.record.get("status") != "finished":
        reasons.append(f"run.json status {run.record.get('status')!r}: {run.record.get('error', 'the run did not finish')}")
    return reasons


def render_header(run: RunFolder) -> str:
    """The verdict (big, coloured) with its reasons, the quick-run flag and the run's key facts."""
    if run.mode == "accuracy":
        passed, text = accuracy_verdict(run)
        verdict = badge(f"ACCURACY {verdict_text(passed)}", passed) + note(
            f"Accuracy mode: LoadGen does not judge validity; accuracy {text} against the 99% target.")
    else:
        verdict = badge(run.result.validity, run.result.valid)
    if run.compliance is not None:
        verdict += " " + badge(f"{run.compliance.test} {verdict_text(run.compliance.passed)}", run.compliance.passed)
    reasons = invalid_reasons(run)
    parts = [f'<div class="verdict">{verdict}</div>']
    if reasons:
        parts.append('<ul class="reasons">' + "".join(f"<li>{esc(r)}</li>" for r in reasons) + "</ul>")
    overrides = run.overrides
    if overrides is None:
        parts.append(note(f"No {RUN_RECORD_FILE}: whether this was a quick run (with overrides) is unknown."))
    elif overrides:
        listed = ", ".join(f"{option}={value}" for option, value in overrides)
        parts.append(f'<p class="quick">Quick run ({esc(listed)}): not valid for submission.</p>')
    else:
        parts.append(note("No overrides: settings as the config files give them."))
    record = run.record or {}
    backend = record.get("backend") or {}
    samples = record.get("samples") or {}
    facts = {
        "scenario": run.scenario,
        "mode": run.mode + (f" (compliance {run.compliance.test})" if run.compliance else ""),
        "backend": f"{backend['name']} on {backend.get('device', '?')}" if backend else "unknown (no run.json)",
        "result": format_result(run.result) if run.mode != "accuracy" else accuracy_verdict(run)[1],
        "samples issued / completed": f"{samples['issued']} / {samples['completed']}" if samples else "n/a",
        "started (UTC)": record.get("started_utc", "n/a"),
        "wall time": f"{record['wall_seconds']} s" if "wall_seconds" in record else "n/a",
        "folder": run.path,
    }
    return "".join(parts) + mapping_table(facts)


def render_accuracy(run: RunFolder) -> str:
    recorded = (run.record or {}).get("accuracy")
    if not recorded and run.accuracy_text is None:
        return ""
    parts = ["<h4>Accuracy</h4>"]
    if recorded:
        rows = {
            "accuracy": f"{100 * recorded['accuracy']:.3f}% ({recorded['correct']} of {recorded['samples']} reviews)",
            "fp32 reference accuracy": recorded.get("reference_accuracy", "n/a"),
        }
        rows |= {f"{target} of the reference": verdict_text(met) for target, met in recorded.get("targets", {}).items()}
        rows["problems in the log"] = "; ".join(recorded.get("problems", [])) or "none"
        parts.append(mapping_table(rows))
    if run.accuracy_text is not None:
        parts.append(f"<pre>{esc(run.accuracy_text)}</pre>")
    return "".join(parts)


def render_compliance(results: Iterable[ComplianceResult]) -> str:
    parts = []
    for result in results:
        parts.append(f"<h4>Compliance {esc(result.test)}: {badge(verdict_text(result.passed), result.passed)}</h4>")
        parts.append(table(((check, verdict_text(passed)) for check, passed in result.checks.items()), ("check", "verdict")))
        parts += [collapsible(name, text) for name, text in result.texts.items()]
    return "".join(parts)


def detail_settings(detail: Mapping[str, object], prefix: str) -> dict[str, object]:
    """The detail log's settings logged under ``prefix`` (``effective_`` or ``requested_``), without it."""
    return {key.removeprefix(prefix): value for key, value in detail.items() if key.startswith(prefix)}


def render_settings(run: RunFolder) -> str:
    parts = ["<h4>Settings</h4>"]
    effective = detail_settings(run.detail, "effective_")
    record = run.record or {}
    settings = record.get("settings") or {}
    if effective:
        parts.append(f"<p>Effective LoadGen settings, as LoadGen logged them ({esc(DETAIL_FILE)}):</p>")
        parts.append(mapping_table(effective))
        parts.append(collapsible("requested settings (TestSettings as passed to LoadGen)",
                                 "\n".join(f"{k} = {v}" for k, v in detail_settings(run.detail, "requested_").items())))
    elif settings.get("effective"):
        parts.append(f"<p>Settings passed to LoadGen ({esc(RUN_RECORD_FILE)}):</p>" + mapping_table(settings["effective"]))
    if settings.get("config_files"):
        parts.append("<p>Config files, in loading order:</p>")
        parts.append(table(((f["path"], f["sha256"]) for f in settings["config_files"]), ("file", "sha256")))
    if settings.get("overrides") or settings.get("adjustments"):
        rows = [(o["option"], o["value"], o.get("sets", "")) for o in settings.get("overrides", [])]
        rows += [(option, value, "adjusted to the dataset") for option, value in settings.get("adjustments", {}).items()]
        parts.append("<p>Overrides:</p>" + table(rows, ("option", "value", "sets")))
    sections = {
        "Backend": record.get("backend"),
        "Dataset": record.get("dataset"),
        "Samples (SUT bookkeeping)": record.get("samples"),
        "Versions": record.get("versions") or ({"LoadGen": settings["loadgen_version"]} if "loadgen_version" in settings else None),
        "Git": record.get("git"),
        "Machine": record.get("machine"),
    }
    for title, values in sections.items():
        if values:
            parts.append(f"<p>{esc(title)}:</p>" + mapping_table(values))
    if record.get("command"):
        parts.append(f"<p>Command:</p><pre>{esc(shlex.join(map(str, record['command'])))}</pre>")
    parts.append(collapsible(SUMMARY_FILE, (run.path / SUMMARY_FILE).read_text(encoding="utf-8", errors="replace")))
    return "".join(parts)


def render_run(run: RunFolder, page: Page, name: str, heading: str, level: int = 2) -> str:
    """One run's section: header, latency and throughput, accuracy, compliance, settings."""
    body = [render_header(run), render_latency(run, page, name), render_accuracy(run),
            render_compliance([run.compliance] if run.compliance else []), render_settings(run)]
    return f'<section id="{esc(name)}"><h{level}>{esc(heading)}</h{level}>{"".join(body)}</section>'


def accuracy_cell(run: RunFolder) -> str:
    """An accuracy run in one line: the accuracy and its verdict against the 99% target."""
    passed, text = accuracy_verdict(run)
    return f"{text}, {verdict_text(passed)}"


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
            accuracy_cell(accuracy[0]) if accuracy else "missing",
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
    if (source / SUMMARY_FILE).is_file() or (source / RUN_RECORD_FILE).is_file():
        run = read_run_folder(source)
        title = f"Run report: {run.scenario} {run.mode}"
        body = render_run(run, page, slug(run.scenario, run.mode), f"{run.scenario} {run.mode}")
    elif scenario_folders := find_scenario_folders(source):
        title = "Submission report"
        body = render_submission(source, [read_scenario(folder) for folder in scenario_folders], page)
    else:
        raise ReportError(f"{source} is neither a run folder ({SUMMARY_FILE} is missing) nor a submission tree "
                          f"(no results/<system>/{MODEL_NAME}/<scenario>/ below it): pass a folder written by "
                          "'python run.py --output-dir DIR', a submission root, or its <division>/<submitter> folder")
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
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output.name}-", dir=output.parent))
    try:
        for file_name, png in figures.items():
            (staging / file_name).write_bytes(png)
        (staging / REPORT_FILE).write_text(document, encoding="utf-8")
        staging.chmod(0o755)
        check_output_free(output)
        if output.exists():
            output.rmdir()
        os.rename(staging, output)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
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

"""MLPerf TEST01 verification: the compliance run gave the same answers, at the same speed, as the submission runs.

``run.py --compliance TEST01`` calls :func:`verify_test01` after its run
(``python -m tools.verify_test01`` on its own). Two checks, each written to
its own file in the output folder (default: the compliance run's), and read
back by :func:`read_verdicts`:

- ``verify_accuracy.txt``: every response the compliance run logged (a random
  sample of about 4,096, in performance mode) is read as an int64 label and
  compared with the accuracy run's label for the same ``qsl_idx``. Any
  difference fails: every backend here is deterministic, so a performance run
  that answers otherwise than the accuracy run is not computing the same thing.
  The check also fails when LoadGen's log does not show that it read the
  ``audit.config``, or when no response was logged.
- ``verify_performance.txt``: as MLPerf's ``compliance/TEST01/verify_performance.py``
  does it, the compliance run's headline figure (the detail-log field the
  submission checker reads: the early-stopping latency estimate for
  SingleStream and MultiStream, samples per second for Offline and Server)
  must lie within 10% of the performance run's; within 20% when the
  performance run's figure is a SingleStream latency of at most 200 us or a
  MultiStream latency of at most 1.6 ms, where timer noise is a larger share.
  Both runs must be VALID, of the same scenario, and for Server of the same
  latency bound.

Each file ends with ``TEST PASS`` or a ``TEST FAIL: ...`` line, as MLPerf's
own verification scripts write them; ``verification.json`` holds the figures.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from common.errors import BadInputError
from common.files import write_text_atomically
from common.text import with_article
from readback.accuracy import NO_PREDICTION, AccuracyCheckError, decode_accuracy_log
from readback.loadgen_log import (
    ACCURACY_FILE,
    AUDIT_FOUND_MESSAGE,
    DETAIL_FILE,
    SUMMARY_FILE,
    LoadGenLogError,
    detail_entries,
    detail_values,
    read_result,
)
from readback.run_files import (
    VERIFICATION_FILE,
    VERIFY_ACCURACY_FILE,
    VERIFY_PERFORMANCE_FILE,
)
from readback.run_record import RunRecord, RunRecordError, read_finished_run

log = logging.getLogger(__name__)

TEST_NAME = "TEST01"
PASS_LINE = "TEST PASS"
VERDICT_LINE = re.compile(r"^TEST (PASS|FAIL)")
#: largest relative difference of the headline figure from the performance run's (verify_performance.py)
PERFORMANCE_TOLERANCE = 0.10
#: ... and where verify_performance.py allows more: a reference latency (ns) at or under these
RELAXED_TOLERANCE = 0.20
RELAXED_AT_OR_UNDER_NS = {"SingleStream": 200_000, "MultiStream": 1_600_000}
#: at most this many differing responses are listed in verify_accuracy.txt
LISTED_MISMATCHES = 50


class VerificationError(BadInputError):
    """The runs given cannot be compared (missing, unfinished, other scenario or mode)."""


@dataclass(frozen=True)
class Baselines:
    """The submission runs a compliance run is compared with: an accuracy run and a performance run."""

    accuracy_run: Path
    performance_run: Path


def check_baselines(scenario: str, baselines: Baselines) -> tuple[RunRecord, RunRecord]:
    """The records of both baseline runs, after checking that they fit a ``scenario`` compliance run."""
    records = []
    for role, path, kind in (("accuracy run", baselines.accuracy_run, "accuracy"),
                             ("performance run", baselines.performance_run, "performance")):
        try:
            record = read_finished_run(path, role)
        except RunRecordError as error:
            raise VerificationError(str(error)) from None
        if record.scenario != scenario:
            raise VerificationError(f"{role} {path} is {with_article(record.scenario)} run; pass {with_article(scenario)} run")
        if record.kind != kind:
            raise VerificationError(f"{role} {path} is a {record.kind} run; pass a plain {kind}-mode run")
        required = Path(path) / (ACCURACY_FILE if kind == "accuracy" else DETAIL_FILE)
        if not required.is_file():
            raise VerificationError(f"{required} is missing: the run folder is incomplete; pass another run")
        records.append(record)
    accuracy, performance = records
    if accuracy.backend.weights_sha256 != performance.backend.weights_sha256:
        log.warning("the accuracy run and the performance run used different weights")
    return accuracy, performance


@dataclass
class AccuracyVerdict:
    """Logged responses of the compliance run against the accuracy run's, by ``qsl_idx``."""

    logged: int
    compared: int
    mismatched: list[tuple[int, int, int]] = field(default_factory=list)  # (qsl_idx, compliance label, accuracy label)
    problems: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.compared > 0 and not self.mismatched and not self.problems


def audit_config_was_read(run_dir: Path) -> bool:
    """Whether LoadGen's detail log of ``run_dir`` says it read an audit file."""
    return any(AUDIT_FOUND_MESSAGE in str(entry.get("value")) for entry in detail_entries(Path(run_dir) / DETAIL_FILE))


def verify_accuracy(compliance_run: Path, accuracy_run: Path, sample_count: int) -> AccuracyVerdict:
    """Compare each response logged by ``compliance_run`` with ``accuracy_run``'s for the same sample."""
    try:
        logged = decode_accuracy_log(Path(compliance_run) / ACCURACY_FILE, sample_count)
        reference = decode_accuracy_log(Path(accuracy_run) / ACCURACY_FILE, sample_count)
    except AccuracyCheckError as error:
        raise VerificationError(str(error)) from None
    problems = [f"compliance log: {problem}" for problem in logged.malformed]
    problems += [f"compliance log: qsl_idx {index} logged with different labels (seq_ids {ids})"
                 for index, ids in logged.duplicated.items()]
    if not audit_config_was_read(compliance_run):
        problems.append(f"{Path(compliance_run) / DETAIL_FILE} does not show that LoadGen read the audit.config")
    sampled = np.flatnonzero(logged.predictions != NO_PREDICTION)
    if len(sampled) == 0:
        problems.append("the compliance run logged no response: was it run with the TEST01 audit.config?")
    verdict = AccuracyVerdict(logged=logged.entry_count, compared=0, problems=problems)
    for qsl_idx in sampled.tolist():
        expected = int(reference.predictions[qsl_idx])
        if expected == NO_PREDICTION or qsl_idx in reference.duplicated:
            verdict.problems.append(f"qsl_idx {qsl_idx}: the accuracy run has no single label for it")
            continue
        verdict.compared += 1
        if int(logged.predictions[qsl_idx]) != expected:
            verdict.mismatched.append((qsl_idx, int(logged.predictions[qsl_idx]), expected))
    return verdict


def performance_tolerance(scenario: str, reference_value: float | None) -> float:
    """The relative difference TEST01 allows: 20% for a SingleStream reference at or under 200 us or a
    MultiStream one at or under 1.6 ms (ns), else 10%, as MLPerf's ``verify_performance.py`` rules."""
    bound = RELAXED_AT_OR_UNDER_NS.get(scenario)
    if bound is not None and reference_value is not None and reference_value <= bound:
        return RELAXED_TOLERANCE
    return PERFORMANCE_TOLERANCE


@dataclass
class PerformanceVerdict:
    """Headline figure of the compliance run against the performance run's."""

    scenario: str
    figure: str | None
    key: str | None
    unit: str | None
    reference_value: float | None
    test_value: float | None
    tolerance: float = PERFORMANCE_TOLERANCE
    problems: list[str] = field(default_factory=list)

    @property
    def ratio(self) -> float | None:
        if not self.reference_value or self.test_value is None:
            return None
        return self.test_value / self.reference_value

    @property
    def passed(self) -> bool:
        return not self.problems and self.ratio is not None and abs(self.ratio - 1) <= self.tolerance

    def tolerance_rule(self) -> str:
        """Why the tolerance is what it is, in words."""
        bound = RELAXED_AT_OR_UNDER_NS.get(self.scenario)
        if self.tolerance == RELAXED_TOLERANCE and bound is not None:
            return (f"{self.tolerance:.0%}: MLPerf's verify_performance.py allows 20% when the {self.scenario} reference "
                    f"latency is at or under {bound / 1e6:g} ms")
        relaxed = f" (20% only for a reference at or under {bound / 1e6:g} ms)" if bound is not None else ""
        return f"{self.tolerance:.0%}, as MLPerf's verify_performance.py allows{relaxed}"


def verify_performance(compliance_run: Path, performance_run: Path) -> PerformanceVerdict:
    """Compare the compliance run's headline figure with ``performance_run``'s."""
    try:
        test, reference = read_result(Path(compliance_run)), read_result(Path(performance_run))
    except LoadGenLogError as error:
        raise VerificationError(str(error)) from None
    figure = reference.headline
    reference_value = figure.value if figure is not None else None
    verdict = PerformanceVerdict(
        reference.scenario,
        figure.name if figure is not None else None, figure.key if figure is not None else None,
        figure.unit if figure is not None else None,
        reference_value, test.headline.value if test.headline is not None else None,
        performance_tolerance(reference.scenario, reference_value),
    )
    if test.scenario != reference.scenario:
        verdict.problems.append(f"scenarios differ: compliance {test.scenario}, performance {reference.scenario}")
    if figure is None or test.headline is None or test.headline.key != figure.key:
        verdict.problems.append(f"the headline figure of {reference.scenario} is missing from a detail log")
    for role, result in (("performance run", reference), ("compliance run", test)):
        if result.valid is not True:
            reasons = result.failed_checks_text() or "see its summary"
            verdict.problems.append(f"the {role} is {result.validity} ({reasons})")
    if reference.scenario == "Server":
        bounds = {role: detail_values(Path(run) / DETAIL_FILE).get("effective_target_latency_ns")
                  for role, run in (("performance", performance_run), ("compliance", compliance_run))}
        if bounds["performance"] != bounds["compliance"]:
            verdict.problems.append(f"Server latency bounds differ (ns): {bounds}")
    return verdict


def _verdict_text(lines: list[str], passed: bool, failure_reason: str) -> str:
    """``lines`` and the closing verdict line MLPerf's tools look for: ``TEST PASS`` or ``TEST FAIL: reason``."""
    return "\n".join([*lines, PASS_LINE if passed else f"TEST FAIL: {failure_reason}"]) + "\n"


@dataclass
class Verification:
    """Both verdicts of one TEST01 verification and the runs behind them."""

    compliance_run: Path
    baselines: Baselines
    accuracy: AccuracyVerdict
    performance: PerformanceVerdict

    @property
    def passed(self) -> bool:
        return self.accuracy.passed and self.performance.passed

    def accuracy_text(self) -> str:
        verdict = self.accuracy
        lines = [
            f"{TEST_NAME} accuracy: responses logged in performance mode against the accuracy run",
            f"compliance run: {self.compliance_run}",
            f"accuracy run:   {self.baselines.accuracy_run}",
            f"responses logged: {verdict.logged}; compared by qsl_idx: {verdict.compared}; "
            f"different labels: {len(verdict.mismatched)}",
        ]
        lines += [f"qsl_idx {index}: performance mode answered {got}, accuracy mode {expected}"
                  for index, got, expected in verdict.mismatched[:LISTED_MISMATCHES]]
        if len(verdict.mismatched) > LISTED_MISMATCHES:
            lines.append(f"... and {len(verdict.mismatched) - LISTED_MISMATCHES} more")
        reason = f"{len(verdict.mismatched)} of {verdict.compared} responses differ" if verdict.mismatched \
            else verdict.problems[0] if verdict.problems else "nothing was compared"
        return _verdict_text(lines + verdict.problems, verdict.passed, reason)

    def performance_text(self) -> str:
        verdict = self.performance
        lines = [
            f"{TEST_NAME} performance: compliance run against the performance run ({verdict.scenario})",
            f"compliance run:  {self.compliance_run}",
            f"performance run: {self.baselines.performance_run}",
            f"figure: {verdict.figure} ({verdict.key}, {verdict.unit})",
            f"reference score = {verdict.reference_value}",
            f"test score = {verdict.test_value}",
            f"tolerance: {verdict.tolerance_rule()}",
        ]
        if verdict.ratio is not None:
            lines.append(f"test / reference = {verdict.ratio:.4f} (allowed: {1 - verdict.tolerance:g} to {1 + verdict.tolerance:g})")
        reason = verdict.problems[0] if verdict.problems else f"test score is not within {verdict.tolerance:.0%} of the reference"
        return _verdict_text(lines + verdict.problems, verdict.passed, reason)

    def as_dict(self) -> dict:
        performance = asdict(self.performance) | {"ratio": self.performance.ratio, "passed": self.performance.passed}
        accuracy = asdict(self.accuracy) | {"passed": self.accuracy.passed}
        return {
            "test": TEST_NAME,
            "passed": self.passed,
            "compliance_run": str(self.compliance_run),
            "accuracy_run": str(self.baselines.accuracy_run),
            "performance_run": str(self.baselines.performance_run),
            "accuracy": accuracy,
            "performance": performance,
        }

    def summary_line(self) -> str:
        ratio = self.performance.ratio
        speed = (f"{ratio:.3f}x the performance run, {self.performance.tolerance:.0%} allowed" if ratio is not None
                 else "no figure")
        return (f"{TEST_NAME} {'PASS' if self.passed else 'FAIL'}: accuracy {'PASS' if self.accuracy.passed else 'FAIL'} "
                f"({self.accuracy.compared} responses compared, {len(self.accuracy.mismatched)} differ), "
                f"performance {'PASS' if self.performance.passed else 'FAIL'} ({speed})")


def verify_test01(compliance_run: Path, baselines: Baselines, output_dir: Path | None = None) -> Verification:
    """Verify ``compliance_run`` against ``baselines`` and write the verdict files into ``output_dir``."""
    compliance_run = Path(compliance_run)
    try:
        record = read_finished_run(compliance_run, "compliance run")
    except RunRecordError as error:
        raise VerificationError(str(error)) from None
    if record.kind != TEST_NAME:
        raise VerificationError(f"{compliance_run} is not a {TEST_NAME} run: make one with 'run.py --compliance {TEST_NAME}'")
    accuracy_record, _ = check_baselines(record.scenario, baselines)
    sample_count = accuracy_record.dataset.samples
    if record.dataset.samples != sample_count:
        raise VerificationError(
            f"the compliance run used {record.dataset.samples} reviews, the accuracy run {sample_count}: "
            "run both on the same reviews (same --count)")
    if not (compliance_run / SUMMARY_FILE).is_file():
        raise VerificationError(f"{compliance_run / SUMMARY_FILE} is missing: the compliance run is incomplete; make it again")
    verification = Verification(
        compliance_run, baselines,
        verify_accuracy(compliance_run, baselines.accuracy_run, sample_count),
        verify_performance(compliance_run, baselines.performance_run),
    )
    output_dir = Path(output_dir) if output_dir is not None else compliance_run
    output_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomically(output_dir / VERIFY_ACCURACY_FILE, verification.accuracy_text())
    write_text_atomically(output_dir / VERIFY_PERFORMANCE_FILE, verification.performance_text())
    write_text_atomically(output_dir / VERIFICATION_FILE, json.dumps(verification.as_dict(), indent=2, default=str) + "\n")
    log.info("%s", verification.summary_line())
    return verification


@dataclass
class ComplianceVerdicts:
    """A compliance test's verdicts as its files state them: per check (``accuracy``, ``performance``).

    A check's verdict is None when its file has no ``TEST PASS``/``TEST FAIL``
    line; ``texts`` maps each file read to its text.
    """

    test: str
    checks: dict[str, bool | None] = field(default_factory=dict)
    texts: dict[str, str] = field(default_factory=dict)

    @property
    def passed(self) -> bool | None:
        """Every check passed; None when a check's verdict is unknown or no check was found."""
        if not self.checks or None in self.checks.values():
            return None
        return all(self.checks.values())


def verdict_of(text: str) -> bool | None:
    """A ``verify_*.txt`` verdict: its last ``TEST PASS``/``TEST FAIL`` line, or None without one."""
    verdicts = [match[1] == "PASS" for line in text.splitlines() if (match := VERDICT_LINE.match(line.strip()))]
    return verdicts[-1] if verdicts else None


def read_verdicts(folder: Path, test: str = TEST_NAME) -> ComplianceVerdicts | None:
    """The verdicts written by :func:`verify_test01` into ``folder`` (a run folder or a submission's
    ``TEST01`` folder); None when it holds no verify file."""
    verdicts = ComplianceVerdicts(test)
    for name in (VERIFY_ACCURACY_FILE, VERIFY_PERFORMANCE_FILE):
        path = Path(folder) / name
        if path.is_file():
            text = path.read_text(encoding="utf-8", errors="replace")
            verdicts.texts[name] = text
            verdicts.checks[Path(name).stem.removeprefix("verify_")] = verdict_of(text)
    details = Path(folder) / VERIFICATION_FILE
    if details.is_file():
        verdicts.texts[VERIFICATION_FILE] = details.read_text(encoding="utf-8", errors="replace")
    return verdicts if verdicts.checks else None

"""Verify an MLPerf TEST01 compliance run: same answers and same speed as the submission runs.

    python -m tools.verify_test01 --compliance-run C --accuracy-run A --performance-run P [--output-dir D]

``run.py --compliance TEST01`` calls this after its run. Two checks, each
written to its own file in the output folder (default: the compliance run's):

- ``verify_accuracy.txt``: every response the compliance run logged (a random
  sample of about 4,096, in performance mode) is read as an int64 label and
  compared with the accuracy run's label for the same ``qsl_idx``. Any
  difference fails: every backend here is deterministic, so a performance run
  that answers otherwise than the accuracy run is not computing the same thing.
  The check also fails when LoadGen's log does not show that it read the
  ``audit.config``, or when no response was logged.
- ``verify_performance.txt``: the compliance run's headline figure (the early
  stopping latency estimate for SingleStream and MultiStream, else the
  percentile latency; samples per second for Offline and Server) must be
  within 10% of the performance run's, both runs VALID, same scenario, and
  for Server the same latency bound.

Each file ends with ``TEST PASS`` or a ``TEST FAIL: ...`` line, as MLPerf's
own verification scripts write them; ``verification.json`` holds the figures.
The command exits 0 when both pass, 1 when either fails, 2 when the runs
cannot be compared (say why and what to pass instead).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from sut.compliance import AUDIT_FOUND_MESSAGE
from sut.loadgen_log import ACCURACY_FILE, DETAIL_FILE, SUMMARY_FILE, detail_entries, detail_values, read_result
from sut.run_files import RUN_RECORD_FILE, VERIFICATION_FILE, VERIFY_ACCURACY_FILE, VERIFY_PERFORMANCE_FILE
from tools.accuracy_imdb import NO_PREDICTION, AccuracyCheckError, decode_accuracy_log

log = logging.getLogger(__name__)

TEST_NAME = "TEST01"
#: largest relative difference of the headline figure from the performance run's
PERFORMANCE_TOLERANCE = 0.10
#: summary keys of the headline figure per scenario, the first one present is used
HEADLINE_KEYS = {
    "SingleStream": ("Early stopping 90.0th percentile estimate", "90.0th percentile latency (ns)"),
    "MultiStream": ("Early stopping 99.0th percentile estimate", "99.0th percentile latency (ns)"),
    "Offline": ("Samples per second",),
    "Server": ("Completed samples per second",),
}


class VerificationError(RuntimeError):
    """The runs given cannot be compared (missing, unfinished, other scenario or mode)."""


@dataclass(frozen=True)
class Baselines:
    """The submission runs a compliance run is compared with: an accuracy run and a performance run."""

    accuracy_run: Path
    performance_run: Path


def read_record(run_dir: Path, role: str) -> dict:
    """``run.json`` of a finished run folder; ``role`` names it in errors ("accuracy run", ...)."""
    path = Path(run_dir) / RUN_RECORD_FILE
    try:
        record = json.loads(path.read_text())
    except OSError:
        raise VerificationError(f"{role} {run_dir}: no {RUN_RECORD_FILE} there; pass the folder of a run made by run.py") from None
    except json.JSONDecodeError as error:
        raise VerificationError(f"{role} {run_dir}: {RUN_RECORD_FILE} is not valid JSON ({error})") from None
    if record.get("status") != "finished":
        raise VerificationError(f"{role} {run_dir} did not finish (status {record.get('status')!r}): run it again")
    return record


def check_baselines(scenario: str, baselines: Baselines) -> tuple[dict, dict]:
    """The records of both baseline runs, after checking that they fit a ``scenario`` compliance run."""
    accuracy = read_record(baselines.accuracy_run, "accuracy run")
    performance = read_record(baselines.performance_run, "performance run")
    for role, path, record, mode in (("accuracy run", baselines.accuracy_run, accuracy, "accuracy"),
                                     ("performance run", baselines.performance_run, performance, "performance")):
        settings = record.get("settings", {})
        if settings.get("scenario") != scenario:
            raise VerificationError(f"{role} {path} is a {settings.get('scenario')} run; pass a {scenario} run")
        if settings.get("mode") != mode or record.get("config", {}).get("compliance"):
            kind = record.get("config", {}).get("compliance") or settings.get("mode")
            raise VerificationError(f"{role} {path} is a {kind} run; pass a plain {mode}-mode run")
    for required in (Path(baselines.accuracy_run) / ACCURACY_FILE, Path(baselines.performance_run) / SUMMARY_FILE):
        if not required.is_file():
            raise VerificationError(f"{required} is missing: the run folder is incomplete; pass another run")
    if accuracy.get("backend", {}).get("weights_sha256") != performance.get("backend", {}).get("weights_sha256"):
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


@dataclass
class PerformanceVerdict:
    """Headline figure of the compliance run against the performance run's."""

    scenario: str
    metric: str | None
    reference_value: float | None
    test_value: float | None
    problems: list[str] = field(default_factory=list)
    tolerance: float = PERFORMANCE_TOLERANCE

    @property
    def ratio(self) -> float | None:
        if not self.reference_value or self.test_value is None:
            return None
        return self.test_value / self.reference_value

    @property
    def passed(self) -> bool:
        return not self.problems and self.ratio is not None and abs(self.ratio - 1) <= self.tolerance


def headline(summary: dict[str, str], scenario: str) -> tuple[str | None, float | None]:
    """The figure TEST01 compares for ``scenario``: (summary key, value) or (None, None)."""
    for key in HEADLINE_KEYS.get(scenario, ()):
        if key in summary:
            try:
                return key, float(summary[key])
            except ValueError:
                return key, None
    return None, None


def verify_performance(compliance_run: Path, performance_run: Path) -> PerformanceVerdict:
    """Compare the compliance run's headline figure with ``performance_run``'s."""
    test, reference = read_result(Path(compliance_run)), read_result(Path(performance_run))
    metric, reference_value = headline(reference.summary, reference.scenario)
    test_metric, test_value = headline(test.summary, test.scenario)
    verdict = PerformanceVerdict(reference.scenario, metric, reference_value, test_value)
    if test.scenario != reference.scenario:
        verdict.problems.append(f"scenarios differ: compliance {test.scenario}, performance {reference.scenario}")
    if metric is None or reference_value is None or test_metric != metric or test_value is None:
        verdict.problems.append(f"the headline figure of {reference.scenario} is missing from a summary")
    for role, result in (("performance run", reference), ("compliance run", test)):
        if result.valid is not True:
            reasons = ", ".join(result.failed_checks) or "see its summary"
            verdict.problems.append(f"the {role} is {result.validity} ({reasons})")
    if reference.scenario == "Server":
        bounds = {role: detail_values(Path(run) / DETAIL_FILE).get("effective_target_latency_ns")
                  for role, run in (("performance", performance_run), ("compliance", compliance_run))}
        if bounds["performance"] != bounds["compliance"]:
            verdict.problems.append(f"Server latency bounds differ (ns): {bounds}")
    return verdict


def _verdict_text(lines: list[str], passed: bool, failure_reason: str) -> str:
    """``lines`` and the closing verdict line MLPerf's tools look for: ``TEST PASS`` or ``TEST FAIL: reason``."""
    return "\n".join([*lines, "TEST PASS" if passed else f"TEST FAIL: {failure_reason}"]) + "\n"


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
                  for index, got, expected in verdict.mismatched[:50]]
        if len(verdict.mismatched) > 50:
            lines.append(f"... and {len(verdict.mismatched) - 50} more")
        reason = f"{len(verdict.mismatched)} of {verdict.compared} responses differ" if verdict.mismatched \
            else verdict.problems[0] if verdict.problems else "nothing was compared"
        return _verdict_text(lines + verdict.problems, verdict.passed, reason)

    def performance_text(self) -> str:
        verdict = self.performance
        lines = [
            f"{TEST_NAME} performance: compliance run against the performance run ({verdict.scenario})",
            f"compliance run:  {self.compliance_run}",
            f"performance run: {self.baselines.performance_run}",
            f"figure: {verdict.metric}",
            f"reference score = {verdict.reference_value}",
            f"test score = {verdict.test_value}",
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
        speed = f"{ratio:.3f}x the performance run" if ratio is not None else "no figure"
        return (f"{TEST_NAME} {'PASS' if self.passed else 'FAIL'}: accuracy {'PASS' if self.accuracy.passed else 'FAIL'} "
                f"({self.accuracy.compared} responses compared, {len(self.accuracy.mismatched)} differ), "
                f"performance {'PASS' if self.performance.passed else 'FAIL'} ({speed})")


def _write_text(path: Path, text: str) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


def verify_test01(compliance_run: Path, baselines: Baselines, output_dir: Path | None = None) -> Verification:
    """Verify ``compliance_run`` against ``baselines`` and write the verdict files into ``output_dir``."""
    compliance_run = Path(compliance_run)
    record = read_record(compliance_run, "compliance run")
    if record.get("config", {}).get("compliance") != TEST_NAME:
        raise VerificationError(f"{compliance_run} is not a {TEST_NAME} run: make one with 'run.py --compliance {TEST_NAME}'")
    scenario = record["settings"]["scenario"]
    accuracy_record, _ = check_baselines(scenario, baselines)
    sample_count = int(accuracy_record["dataset"]["samples"])
    if int(record["dataset"]["samples"]) != sample_count:
        raise VerificationError(
            f"the compliance run used {record['dataset']['samples']} reviews, the accuracy run {sample_count}: "
            "run both on the same reviews (same --count)")
    verification = Verification(
        compliance_run, baselines,
        verify_accuracy(compliance_run, baselines.accuracy_run, sample_count),
        verify_performance(compliance_run, baselines.performance_run),
    )
    output_dir = Path(output_dir) if output_dir is not None else compliance_run
    output_dir.mkdir(parents=True, exist_ok=True)
    _write_text(output_dir / VERIFY_ACCURACY_FILE, verification.accuracy_text())
    _write_text(output_dir / VERIFY_PERFORMANCE_FILE, verification.performance_text())
    _write_text(output_dir / VERIFICATION_FILE, json.dumps(verification.as_dict(), indent=2, default=str) + "\n")
    log.info("%s", verification.summary_line())
    return verification


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--compliance-run", type=Path, required=True, help="folder of the run.py --compliance TEST01 run")
    parser.add_argument("--accuracy-run", type=Path, required=True, help="folder of the accuracy-mode run")
    parser.add_argument("--performance-run", type=Path, required=True, help="folder of the performance run")
    parser.add_argument("--output-dir", type=Path, help="where the verify_*.txt files go (default: the compliance run's folder)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        verification = verify_test01(args.compliance_run, Baselines(args.accuracy_run, args.performance_run), args.output_dir)
    except VerificationError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(verification.summary_line())
    return 0 if verification.passed else 1


if __name__ == "__main__":
    sys.exit(main())

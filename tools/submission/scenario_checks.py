"""The checks of one scenario of a submission tree: its measurements, LoadGen's files in each log folder,
the performance and TEST01 runs' settings against the rules, the accuracy run and TEST01's verdicts.

Run by :class:`tools.submission.checker.SubmissionChecker` for each scenario
it finds; what is checked is listed in :mod:`tools.submission.checker`. The
rules a performance run's logged settings are held against are LoadGen's
built-in rules, then the benchmark's ``mlperf.conf``
(:func:`benchmark_rules`), re-derived with LoadGen itself.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Protocol

import mlperf_loadgen as lg
import numpy as np

from qsl.reviews import TEST_SPLIT_REVIEWS  # an accuracy run must cover every one
from readback.accuracy import (
    TARGET_FRACTIONS,
    AccuracyCheckError,
    accuracy_report,
    decode_accuracy_log,
    read_accuracy_report,
    reference_accuracy,
)
from readback.loadgen_log import (
    ACCURACY_FILE,
    DETAIL_FILE,
    detail_entries,
    error_count_mismatch,
    read_result,
)
from readback.run_files import (
    ACCURACY_REPORT_FILE,
    RUN_RECORD_FILE,
    VERIFY_ACCURACY_FILE,
    VERIFY_PERFORMANCE_FILE,
)
from readback.rules import seed_advice, wrong_seeds
from readback.run_record import RunRecordError, read_run_record
from readback.test01 import PASS_LINE
from sut.settings import load_run_settings
from tools.submission import layout
from tools.submission.truncation import truncation_problems

#: Scenarios whose result is judged with early stopping: it must have been met.
EARLY_STOPPING_SCENARIOS = ("SingleStream", "MultiStream", "Server")


@dataclass(frozen=True)
class RuleCheck:
    """One setting of a performance run held against the rules.

    ``logged`` is its key in ``mlperf_log_detail.txt``; ``ruled`` gives the
    rules' value from their ``TestSettings``; ``at_least`` allows a logged
    value above the rules' (a minimum), otherwise it must be equal.
    """

    name: str
    logged: str
    ruled: Callable[[lg.TestSettings], float]
    at_least: bool = False


def _performance_sample_count(rules: lg.TestSettings) -> int:
    # 0 leaves the count to the QSL, which holds the whole test split
    return rules.performance_sample_count_override or TEST_SPLIT_REVIEWS


#: (the seeds are held against the rules' own, readback.rules, whatever LoadGen is installed)
COMMON_RULES = (
    RuleCheck("min_duration_ms", "effective_min_duration_ms", lambda r: r.min_duration_ms, at_least=True),
    RuleCheck("performance_sample_count", "effective_performance_sample_count", _performance_sample_count),
)
MIN_QUERY_COUNT = RuleCheck("min_query_count", "effective_min_query_count", lambda r: r.min_query_count, at_least=True)
SCENARIO_RULES = {
    "SingleStream": (
        MIN_QUERY_COUNT,
        RuleCheck("target_latency_percentile", "effective_target_latency_percentile",
                  lambda r: r.single_stream_target_latency_percentile),
    ),
    "MultiStream": (
        MIN_QUERY_COUNT,
        RuleCheck("target_latency_percentile", "effective_target_latency_percentile",
                  lambda r: r.multi_stream_target_latency_percentile),
        RuleCheck("samples_per_query", "effective_samples_per_query", lambda r: r.multi_stream_samples_per_query),
    ),
    "Server": (
        MIN_QUERY_COUNT,
        RuleCheck("target_latency_percentile", "effective_target_latency_percentile",
                  lambda r: r.server_target_latency_percentile),
        RuleCheck("target_latency_ns", "effective_target_latency_ns", lambda r: r.server_target_latency_ns),
    ),
    # LoadGen reads Offline's min_query_count as the least number of samples in its one query.
    "Offline": (
        RuleCheck("min_query_count (samples in the Offline query)", "effective_samples_per_query",
                  lambda r: r.min_query_count, at_least=True),
    ),
}


def benchmark_rules(scenario: str, mlperf_conf: Path) -> lg.TestSettings:
    """``TestSettings`` of the rules alone: LoadGen's built-in rules, then ``mlperf_conf``, no system tuning."""
    # Reading the rules file again in user.conf's place changes none of its values.
    return load_run_settings(scenario, "performance", mlperf_conf, mlperf_conf).test_settings


def _same(logged: float, ruled: float) -> bool:
    if isinstance(logged, int) and isinstance(ruled, int):
        return logged == ruled
    return math.isclose(float(logged), float(ruled), rel_tol=1e-9)


def _number(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def rule_violations(detail: dict[str, object], scenario: str, rules: lg.TestSettings, rules_path: Path) -> list[str]:
    """How the settings logged in a detail log (:func:`detail_values`) break ``rules``, one message each."""
    return [message for message, _ in rule_findings(detail, scenario, rules, rules_path)]


def rule_findings(detail: dict[str, object], scenario: str, rules: lg.TestSettings,
                  rules_path: Path) -> list[tuple[str, bool]]:
    """:func:`rule_violations` with, for each, whether it is a minimum the run fell short of (a duration or a
    query count: what a quick run's --time, --qps or --count lower) rather than a value that must be equal."""
    findings = []
    for check in COMMON_RULES + SCENARIO_RULES[scenario]:
        logged, ruled = detail.get(check.logged), check.ruled(rules)
        if not isinstance(logged, (int, float)) or isinstance(logged, bool):
            findings.append((f"{check.logged} is {logged!r}, not a number; cannot check {check.name} against "
                             f"{rules_path}", False))
        elif not (logged >= ruled if check.at_least else _same(logged, ruled)):
            requirement = "at least" if check.at_least else "exactly"
            findings.append((f"{check.name} is {_number(logged)}; the rules ({rules_path}) require {requirement} "
                             f"{_number(ruled)}", check.at_least))
    return findings


def file_names(path: Path) -> set[str]:
    """The names of the files (not folders) directly in ``path``; none if it is not a folder."""
    return {child.name for child in path.iterdir() if child.is_file()} if path.is_dir() else set()


class Checker(Protocol):
    """What the checks of a scenario use of the tree's checker (:class:`tools.submission.checker.SubmissionChecker`):
    the rules file and its bytes, the test labels if any, where a run's full accuracy log is, where problems go."""

    mlperf_conf: Path
    reference_conf: bytes
    labels: np.ndarray | None

    def add(self, path: Path, message: str, system: str, scenario: str, quick: bool = False) -> None: ...

    def full_log(self, base: Path, scenario: str, kind: str) -> Path | None: ...


class ScenarioCheck:
    """The checks of one system's scenario; problems go to the checker."""

    def __init__(self, checker: Checker, base: Path, system: str, scenario: str):
        self.checker, self.base, self.system, self.scenario = checker, base, system, scenario
        self.folder = base / layout.scenario_dir(system, scenario)
        #: the overrides of each quick run ("performance", "TEST01") as the tree's records tell them
        self.quick_runs: dict[str, str] = {}

    def add(self, path: Path, message: str, quick: bool = False) -> None:
        """A problem; ``quick``: one that a quick run explains (a short duration, few queries, a noisy speed
        check), which a rehearsal check (``--rehearsal``) lists as expected."""
        self.checker.add(path, message, self.system, self.scenario, quick)

    def run(self) -> None:
        self._check_measurements()
        present = self._check_files()
        self._read_quick_runs()
        performance = self.folder / layout.PERFORMANCE_RUN
        if DETAIL_FILE in present[layout.PERFORMANCE_RUN]:
            self._check_performance(performance, "performance", must_be_valid=True)
        if "performance" in self.quick_runs:
            record = self.base / layout.records_dir(self.system, self.scenario, "performance") / RUN_RECORD_FILE
            self.add(record, f"a quick run ({self.quick_runs['performance']}): not valid for submission; "
                             "rerun without --time/--qps/--target-latency/--count", quick=True)
        accuracy = self.folder / "accuracy"
        if DETAIL_FILE in present[PurePosixPath("accuracy")]:
            self._check_accuracy_run(accuracy)
        if {ACCURACY_FILE, ACCURACY_REPORT_FILE} <= present[PurePosixPath("accuracy")]:
            self._check_accuracy(accuracy)
        test01 = self.folder / "TEST01"
        if DETAIL_FILE in present[PurePosixPath("TEST01") / layout.PERFORMANCE_RUN]:
            self._check_performance(test01 / layout.PERFORMANCE_RUN, "TEST01", must_be_valid=False)
        if {ACCURACY_FILE, ACCURACY_REPORT_FILE} <= present[PurePosixPath("TEST01", "accuracy")]:
            self._check_truncation(test01 / "accuracy", "TEST01")
        self._check_verdicts(test01)

    def _check_measurements(self) -> None:
        for name in (layout.MEASUREMENT_README, "user.conf"):
            path = self.folder / name
            if not path.is_file():
                self.add(path, "missing (the scenario's measurements)")
            elif path.stat().st_size == 0:
                self.add(path, "empty (the scenario's measurements)")
        conf = self.folder / "mlperf.conf"
        if conf.is_file() and conf.read_bytes() != self.checker.reference_conf:
            self.add(conf, f"differs from the benchmark's rules file {self.checker.mlperf_conf}")
        path = self.folder / layout.MEASUREMENTS_FILE
        try:
            measurements = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            self.add(path, "missing: the implementation's weights and data types")
            return
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            self.add(path, f"unreadable: {error}")
            return
        if not isinstance(measurements, dict):
            self.add(path, "not a JSON object")
            return
        missing = [key for key in layout.MEASUREMENTS_KEYS if not measurements.get(key)]
        if missing:
            self.add(path, f"missing or empty key(s): {', '.join(missing)}")

    def _check_files(self) -> dict[PurePosixPath, set[str]]:
        """Each log folder must hold exactly its files; returns the files present, by folder."""
        present = {}
        for folder, expected in layout.EXACT_FILES.items():
            path = self.folder / folder
            found = file_names(path)
            present[folder] = found
            if not path.is_dir():
                self.add(path, f"missing folder ({', '.join(sorted(expected))})")
                continue
            for name in sorted(expected - found):
                self.add(path / name, "missing")
            for name in sorted(found - expected - layout.TOLERATED_FILES):
                self.add(path / name, f"not a file the rules allow here (expected {', '.join(sorted(expected))})")
        for name in (VERIFY_ACCURACY_FILE, VERIFY_PERFORMANCE_FILE):
            if not (self.folder / "TEST01" / name).is_file():
                self.add(self.folder / "TEST01" / name, "missing (TEST01's verdict)")
        return present

    def _check_mode(self, folder: Path, mode: str) -> dict[str, object]:
        """The detail log's values; a problem if its scenario or mode is not the folder's."""
        entries = detail_entries(folder / DETAIL_FILE)
        detail = {entry["key"]: entry.get("value") for entry in entries if "key" in entry}  # as detail_values reads it
        logged = (detail.get("effective_scenario"), detail.get("effective_test_mode"))
        if logged != (self.scenario, mode):
            self.add(folder / DETAIL_FILE, f"is the log of a {logged[0]} {logged[1]} run, expected {self.scenario} {mode}")
        wrong = wrong_seeds(detail)
        if wrong:
            self.add(folder / DETAIL_FILE, f"{'; '.join(wrong)}; {seed_advice(detail.get('loadgen_version', '?'))}")
        errors = [entry for entry in entries if entry.get("metadata", {}).get("is_error")]
        for entry in errors:
            self.add(folder / DETAIL_FILE, f"LoadGen logged an error: {entry.get('key')}: {entry.get('value')}")
        if mismatch := error_count_mismatch(detail.get("num_errors"), len(errors)):
            self.add(folder / DETAIL_FILE, mismatch)
        return detail

    def _check_performance(self, folder: Path, kind: str, must_be_valid: bool) -> None:
        detail = self._check_mode(folder, "PerformanceOnly")
        result = read_result(folder)
        quick = kind in self.quick_runs
        if must_be_valid and result.valid is not True:
            checks = result.failed_checks_text() or "no failed check named"
            self.add(folder / DETAIL_FILE, f"result is {result.validity} ({checks})")
        if self.scenario in EARLY_STOPPING_SCENARIOS and detail.get("early_stopping_met") is not True:
            self.add(folder / DETAIL_FILE, f"the {kind} run did not meet early stopping: "
                                           f"{' '.join(str(detail.get('early_stopping_result', '')).split())}",
                     quick=quick)
        rules = benchmark_rules(self.scenario, self.checker.mlperf_conf)
        for message, is_minimum in rule_findings(detail, self.scenario, rules, self.checker.mlperf_conf):
            self.add(folder / DETAIL_FILE, message, quick=quick and is_minimum)

    def _read_quick_runs(self) -> None:
        """Which of the scenario's performance and TEST01 runs were quick runs (overrides of the config files),
        from the tree's records: what a quick run explains of their checks is a rehearsal's expected finding."""
        for kind in ("performance", "TEST01"):
            folder = self.base / layout.records_dir(self.system, self.scenario, kind)
            if not (folder / RUN_RECORD_FILE).is_file():
                continue  # the rules do not ask for the project's own record; without it a quick run cannot be told
            try:
                settings = read_run_record(folder, f"{kind} run").settings
            except RunRecordError as error:
                self.add(folder / RUN_RECORD_FILE, str(error))
                continue
            if settings.quick_run:
                self.quick_runs[kind] = ", ".join(f"{o.option}={o.value:g}" for o in settings.overrides)

    def _check_accuracy_run(self, folder: Path) -> None:
        detail = self._check_mode(folder, "AccuracyOnly")
        covered = detail.get("effective_accuracy_sample_count", detail.get("qsl_reported_total_count"))
        if covered != TEST_SPLIT_REVIEWS:
            self.add(folder / DETAIL_FILE, f"the accuracy run's QSL held {covered} samples; an accuracy run covers "
                                           f"all {TEST_SPLIT_REVIEWS:,} test reviews (rerun without --count)")

    def _check_truncation(self, folder: Path, kind: str) -> Path | None:
        """The truncated log and its hash; returns the full log when it is still where the record says."""
        full = self.checker.full_log(self.base, self.scenario, kind)
        for problem in truncation_problems(folder / ACCURACY_FILE, folder / ACCURACY_REPORT_FILE, full):
            self.add(folder / ACCURACY_FILE, problem)
        return full if full is not None and full.is_file() else None

    def _check_accuracy(self, folder: Path) -> None:
        full = self._check_truncation(folder, "accuracy")
        path = folder / ACCURACY_REPORT_FILE
        try:
            stated = read_accuracy_report(path)
            reference = reference_accuracy()
        except AccuracyCheckError as error:
            self.add(path, str(error))
            return
        target = TARGET_FRACTIONS[0] * reference
        if stated.accuracy < target:
            self.add(path, f"accuracy {100 * stated.accuracy:.3f}% is below the {100 * TARGET_FRACTIONS[0]:g}% target "
                           f"{100 * target:.3f}%")
        if stated.passed is not True:
            verdict = "FAIL" if stated.passed is False else "NOT JUDGED (a part of the test split, or not IMDB v1.0's)"
            self.add(path, f"accuracy {100 * stated.accuracy:.3f}% over {stated.total} reviews: RESULT: {verdict} "
                           f"(an accuracy run covers all {TEST_SPLIT_REVIEWS:,} reviews and meets the "
                           f"{100 * TARGET_FRACTIONS[0]:g}% target)")
        if self.checker.labels is None:
            return
        if full is None:
            self.add(folder / ACCURACY_FILE, "cannot recompute the accuracy: the full log is not where the tree's "
                                             f"{layout.SUBMISSION_RECORD} says (the run folder); restore it, or check "
                                             "without --labels")
            return
        try:
            found = decode_accuracy_log(full, TEST_SPLIT_REVIEWS)
        except AccuracyCheckError as error:
            self.add(full, str(error))
            return
        for problem in found.problems():
            self.add(full, f"{problem} (an accuracy run covers all {TEST_SPLIT_REVIEWS:,} test reviews)")
        report = accuracy_report(found, self.checker.labels, reference)
        self.checker.recomputed.append(f"{path}: {100 * report.accuracy:.3f}% ({report.correct:,} of "
                                       f"{found.sample_count:,}) recomputed from {full} against the test labels")
        if not report.meets(TARGET_FRACTIONS[0]):
            self.add(full, f"accuracy {100 * report.accuracy:.3f}% (recomputed) is below the "
                           f"{100 * TARGET_FRACTIONS[0]:g}% target {100 * target:.3f}%")
        if report.correct != stated.correct or found.sample_count != stated.total:
            self.add(path, f"states {stated.correct} of {stated.total} correct, but the full log gives "
                           f"{report.correct} of {found.sample_count}")

    def _check_verdicts(self, folder: Path) -> None:
        for name in (VERIFY_ACCURACY_FILE, VERIFY_PERFORMANCE_FILE):
            path = folder / name
            if not path.is_file():
                continue
            lines = [line.strip() for line in path.read_text(encoding="utf-8", errors="replace").splitlines()]
            if PASS_LINE not in lines:
                failed = next((line for line in lines if line.startswith("TEST FAIL")), f"no '{PASS_LINE}' line")
                # two quick runs' speeds differ by more than TEST01 allows on a busy machine: expected in a rehearsal
                noisy = name == VERIFY_PERFORMANCE_FILE and bool(self.quick_runs)
                self.add(path, f"TEST01 failed: {failed}", quick=noisy)

"""Check a submission tree written by :mod:`tools.submission` and report every problem with its path.

    python -m tools.check_submission SUBMISSION_DIR [--mlperf-conf configs/mlperf.conf] [--labels]

``SUBMISSION_DIR`` is the tree's root or one ``<division>/<submitter>``
folder in it. For each system (``systems/<system>.json``) and each of its
scenarios it reports:

- every missing file: system description, measurements (``mlperf.conf``,
  ``user.conf``, ``README.md``, implementation JSON), the performance run's
  and the accuracy run's logs, ``accuracy.txt``, TEST01's verify files and logs;
- a system description without its keys, or with a division other than its folder's;
- a performance result LoadGen judged INVALID (with the checks that failed),
  or any error LoadGen logged during the run;
- a performance run whose settings (``mlperf_log_detail.txt``) break the
  benchmark's rules, i.e. LoadGen's built-in rules then ``--mlperf-conf``:
  ``min_duration_ms`` and ``min_query_count`` (Offline: samples in its one
  query) at least the rules', and exactly the rules' latency percentile,
  Server latency bound, MultiStream samples per query, performance sample
  count and random seeds;
- a quick run (``run.json`` ``settings.quick_run``), and a ``mlperf.conf``
  in measurements that is not byte for byte the ``--mlperf-conf`` file;
- an accuracy log that does not cover all 25,000 test reviews, or accuracy
  below 99% of the fp32 reference: recomputed from ``mlperf_log_accuracy.json``
  against the test labels with ``--labels`` or ``--dataset-path`` (the dataset
  is found as every command finds it; the labels come from file names,
  nothing is tokenized), else read from ``accuracy.txt``;
- a TEST01 verify file without a line ``TEST PASS``.

Output: one line ``PATH: problem`` per problem, then a summary line. Exit
status 0 when there is no problem, 1 when there is any, 2 when the folder is
not a submission tree or an option is unusable.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import mlperf_loadgen as lg
import numpy as np

from qsl.errors import DatasetError
from qsl.locations import DATASET_LOOKUP_HELP
from qsl.reviews import dataset_root, split_labels
from sut.accuracy import (
    TARGET_FRACTIONS, AccuracyCheckError, accuracy_report, decode_accuracy_log, read_accuracy_report, reference_accuracy,
)
from sut.loadgen_log import ACCURACY_FILE, DETAIL_FILE, SUMMARY_FILE, detail_values, read_result
from sut.run_files import ACCURACY_REPORT_FILE
from sut.run_record import RunRecordError, read_run_record
from sut.settings import DEFAULT_MLPERF_CONF, SCENARIOS, ConfigError, load_run_settings
from sut.test01 import read_verdicts
from tools import submission_layout as layout
from tools.system_description import ALLOWED_VALUES, DESCRIPTION_KEYS

log = logging.getLogger(__name__)

#: Reviews in the IMDB test split: an accuracy run must cover every one.
TEST_REVIEWS = 25_000
NOT_SCENARIO = "(system)"  # the scenario label of problems outside any scenario


class UsageError(RuntimeError):
    """The folder is not a submission tree, or an option cannot be used."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the submission, where it is, and which system and scenario it concerns."""

    path: Path
    message: str
    system: str
    scenario: str = NOT_SCENARIO

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


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
    return rules.performance_sample_count_override or TEST_REVIEWS


COMMON_RULES = (
    RuleCheck("min_duration_ms", "effective_min_duration_ms", lambda r: r.min_duration_ms, at_least=True),
    RuleCheck("performance_sample_count", "effective_performance_sample_count", _performance_sample_count),
    RuleCheck("qsl_rng_seed", "effective_qsl_rng_seed", lambda r: r.qsl_rng_seed),
    RuleCheck("sample_index_rng_seed", "effective_sample_index_rng_seed", lambda r: r.sample_index_rng_seed),
    RuleCheck("schedule_rng_seed", "effective_schedule_rng_seed", lambda r: r.schedule_rng_seed),
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
    messages = []
    for check in COMMON_RULES + SCENARIO_RULES[scenario]:
        logged, ruled = detail.get(check.logged), check.ruled(rules)
        if not isinstance(logged, (int, float)) or isinstance(logged, bool):
            messages.append(f"{check.logged} is {logged!r}, not a number; cannot check {check.name} against {rules_path}")
        elif not (logged >= ruled if check.at_least else _same(logged, ruled)):
            requirement = "at least" if check.at_least else "exactly"
            messages.append(
                f"{check.name} is {_number(logged)}; the rules ({rules_path}) require {requirement} {_number(ruled)}"
            )
    return messages


def submitter_dirs(root: Path) -> list[Path]:
    """The ``<division>/<submitter>`` folders of a tree: ``root`` itself or those two levels below it."""
    if (root / "systems").is_dir():
        return [root]
    found = sorted(path.parent for path in root.glob("*/*/systems") if path.is_dir())
    if not found:
        raise UsageError(
            f"{root} is not a submission tree: neither it nor any <division>/<submitter> folder below it has systems/; "
            "pass the --output folder of 'python -m tools.submission'"
        )
    return found


def _subfolders(path: Path) -> set[str]:
    return {child.name for child in path.iterdir() if child.is_dir()} if path.is_dir() else set()


class SubmissionChecker:
    """Checks ``<division>/<submitter>`` folders against the rules file and, if given, the test labels."""

    def __init__(self, mlperf_conf: Path, labels: np.ndarray | None = None):
        self.mlperf_conf = Path(mlperf_conf)
        try:
            self.reference_conf = self.mlperf_conf.read_bytes()
        except OSError as error:
            raise UsageError(f"cannot read the rules file {mlperf_conf}: {error.strerror or error}; pass --mlperf-conf") from None
        self.labels = labels
        self.problems: list[Problem] = []
        self.scenarios: list[tuple[str, str]] = []  # (system, scenario) checked

    def add(self, path: Path, message: str, system: str, scenario: str = NOT_SCENARIO) -> None:
        self.problems.append(Problem(path, message, system, scenario))

    def check(self, base: Path) -> None:
        """Check one ``<division>/<submitter>`` folder."""
        systems = {path.stem for path in (base / "systems").glob("*.json")}
        for section in layout.SYSTEM_SECTIONS:
            systems |= _subfolders(base / section)
        if not systems:
            self.add(base / "systems", "no system description and no results", "-")
        for system in sorted(systems):
            self._check_system(base, system)

    def _check_system(self, base: Path, system: str) -> None:
        self._check_description(base / layout.system_file(system), system, base.parent.name)
        parents = layout.scenario_parent_dirs(system)
        scenarios = set().union(*(_subfolders(base / parent) for parent in parents))
        if not scenarios:
            self.add(base / parents[1], "no scenario results for this system", system)
        for scenario in sorted(scenarios):
            if scenario not in SCENARIOS:
                self.add(base / parents[1] / scenario,
                         f"unknown scenario folder {scenario!r}; expected one of {', '.join(SCENARIOS)}", system)
                continue
            self.scenarios.append((system, scenario))
            ScenarioCheck(self, base, system, scenario).run()

    def _check_description(self, path: Path, system: str, division: str) -> None:
        try:
            description = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            self.add(path, "missing system description; build the tree with 'python -m tools.submission'", system)
            return
        except (OSError, json.JSONDecodeError) as error:
            self.add(path, f"unreadable system description: {error}", system)
            return
        if not isinstance(description, dict):
            self.add(path, "the system description is not a JSON object", system)
            return
        missing = [key for key in DESCRIPTION_KEYS if key not in description
                   or (description[key] in ("", None) and not key.endswith("_notes"))]
        if missing:
            self.add(path, f"missing or empty key(s): {', '.join(missing)}", system)
        for key, allowed in ALLOWED_VALUES.items():
            if key in description and description[key] not in allowed:
                self.add(path, f"{key} is {description[key]!r}; expected one of {', '.join(allowed)}", system)
        if description.get("division") in ALLOWED_VALUES["division"] and description["division"] != division:
            self.add(path, f"division is {description['division']!r} but the tree puts it under {division!r}", system)

    def summary(self) -> str:
        """The last line of the report."""
        checked = len(self.scenarios)
        if not self.problems:
            listed = ", ".join(f"{system} {scenario}" for system, scenario in self.scenarios)
            return f"OK: {checked} scenario(s) checked ({listed}), no problem"
        concerned = {(p.system, p.scenario) for p in self.problems if p.scenario != NOT_SCENARIO}
        outside = sum(p.scenario == NOT_SCENARIO for p in self.problems)
        line = f"{len(self.problems)} problem(s) in {len(concerned)} of {checked} scenario(s)"
        return line + (f" ({outside} outside any scenario)" if outside else "")


class ScenarioCheck:
    """The checks of one system's scenario; problems go to the checker."""

    def __init__(self, checker: SubmissionChecker, base: Path, system: str, scenario: str):
        self.checker, self.base, self.system, self.scenario = checker, base, system, scenario
        self.results = base / layout.kind_dir(system, scenario, "performance")
        self.compliance = base / layout.kind_dir(system, scenario, "TEST01")
        self.measurements = base / layout.measurements_dir(system, scenario)

    def add(self, path: Path, message: str) -> None:
        self.checker.add(path, message, self.system, self.scenario)

    def run(self) -> None:
        present = self._check_files()
        self._check_measurements()
        if {SUMMARY_FILE, DETAIL_FILE} <= present["performance"]:
            self._check_performance(self.results / layout.PERFORMANCE_RUN)
        if layout.RUN_RECORD in present["performance"]:
            self._check_quick_run(self.results / layout.PERFORMANCE_RUN)
        if {SUMMARY_FILE, DETAIL_FILE} <= present["accuracy"]:
            self._check_mode(self.results / "accuracy", "AccuracyOnly")
        if ACCURACY_FILE in present["accuracy"]:
            self._check_accuracy(self.results / "accuracy")
        if present["TEST01"] & {layout.VERIFY_ACCURACY, layout.VERIFY_PERFORMANCE}:
            self._check_verdicts(self.compliance)

    def _check_files(self) -> dict[str, set[str]]:
        """Report each missing required file; returns the sources present, by kind."""
        present: dict[str, set[str]] = {}
        for kind in layout.KINDS:
            folder = self.base / layout.kind_dir(self.system, self.scenario, kind)
            present[kind] = set()
            for placement in layout.RUN_FILES[kind]:
                if (folder / placement.target).is_file():
                    present[kind].add(placement.source)
                elif placement.required:
                    self.add(folder / placement.target, f"missing ({self.scenario} {kind} run)")
        return present

    def _check_measurements(self) -> None:
        for name in (*layout.MEASUREMENT_CONFIGS, layout.MEASUREMENT_README):
            if not (self.measurements / name).is_file():
                self.add(self.measurements / name, "missing (measurements)")
        pattern = layout.implementation_file(self.system, "*", self.scenario).name
        if not any(self.measurements.glob(pattern)):
            self.add(self.measurements / pattern, "missing implementation description (measurements)")
        conf = self.measurements / "mlperf.conf"
        if conf.is_file() and conf.read_bytes() != self.checker.reference_conf:
            self.add(conf, f"differs from the benchmark's rules file {self.checker.mlperf_conf}")

    def _check_mode(self, folder: Path, mode: str) -> dict[str, object]:
        """The detail log's values; a problem if its scenario or mode is not the folder's."""
        detail = detail_values(folder / DETAIL_FILE)
        logged = (detail.get("effective_scenario"), detail.get("effective_test_mode"))
        if logged != (self.scenario, mode):
            self.add(folder / DETAIL_FILE, f"is the log of a {logged[0]} {logged[1]} run, expected {self.scenario} {mode}")
        return detail

    def _check_performance(self, folder: Path) -> None:
        detail = self._check_mode(folder, "PerformanceOnly")
        result = read_result(folder)
        if result.valid is not True:
            checks = "; ".join(f"{check}: NO" for check in result.failed_checks) or "no failed check named"
            self.add(folder / SUMMARY_FILE, f"result is {result.validity} ({checks})")
        for error in result.errors:
            self.add(folder / DETAIL_FILE, f"LoadGen logged an error: {error}")
        rules = benchmark_rules(self.scenario, self.checker.mlperf_conf)
        for message in rule_violations(detail, self.scenario, rules, self.checker.mlperf_conf):
            self.add(folder / DETAIL_FILE, message)

    def _check_quick_run(self, folder: Path) -> None:
        try:
            settings = read_run_record(folder, "performance run").settings
        except RunRecordError as error:
            self.add(folder / layout.RUN_RECORD, str(error))
            return
        if settings.quick_run:
            options = ", ".join(f"{o.option}={o.value:g}" for o in settings.overrides)
            self.add(folder / layout.RUN_RECORD, f"a quick run ({options}): not valid for submission; "
                                                 "rerun without --time/--qps/--target-latency/--count")

    def _check_accuracy(self, folder: Path) -> None:
        try:
            found = decode_accuracy_log(folder / ACCURACY_FILE, TEST_REVIEWS)
        except AccuracyCheckError as error:
            self.add(folder / ACCURACY_FILE, str(error))
            return
        for problem in found.problems():
            self.add(folder / ACCURACY_FILE, f"{problem} (an accuracy run covers all {TEST_REVIEWS:,} test reviews)")
        if self.checker.labels is not None:
            report = accuracy_report(found, self.checker.labels, reference_accuracy())
            if not report.meets(TARGET_FRACTIONS[0]):
                self.add(folder / ACCURACY_FILE, f"accuracy {100 * report.accuracy:.3f}% (recomputed) is below the "
                                                 f"{100 * TARGET_FRACTIONS[0]:g}% target "
                                                 f"{100 * TARGET_FRACTIONS[0] * report.reference_accuracy:.3f}%")
        elif (folder / ACCURACY_REPORT_FILE).is_file():
            self._check_accuracy_report(folder / ACCURACY_REPORT_FILE)

    def _check_accuracy_report(self, path: Path) -> None:
        try:
            stated = read_accuracy_report(path)
        except AccuracyCheckError as error:
            self.add(path, str(error))
            return
        if stated.passed is not True:
            verdict = "FAIL" if stated.passed is False else "NOT JUDGED (a part of the test split)"
            self.add(path, f"accuracy {100 * stated.accuracy:.3f}% over {stated.total} reviews: RESULT: {verdict} "
                           f"(an accuracy run covers all {TEST_REVIEWS:,} reviews and meets the "
                           f"{100 * TARGET_FRACTIONS[0]:g}% target)")

    def _check_verdicts(self, folder: Path) -> None:
        verdicts = read_verdicts(folder)
        for name, text in (verdicts.texts.items() if verdicts is not None else ()):
            if not name.startswith("verify_"):
                continue
            lines = [line.strip() for line in text.splitlines()]
            if verdicts.checks.get(Path(name).stem.removeprefix("verify_")) is not True:
                failed = next((line for line in lines if line.startswith("TEST FAIL")), "no 'TEST PASS' line")
                self.add(folder / name, f"TEST01 failed: {failed}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("submission", type=Path, help="the submission tree, or one <division>/<submitter> folder of it")
    parser.add_argument("--mlperf-conf", type=Path, default=DEFAULT_MLPERF_CONF, help="the benchmark's rules (default: %(default)s)")
    parser.add_argument("--labels", action="store_true",
                        help="recompute accuracy from the logs against the test labels (default: read accuracy.txt)")
    parser.add_argument("--dataset-path", type=Path, help=f"with --labels: {DATASET_LOOKUP_HELP}")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        bases = submitter_dirs(args.submission)
        labels = split_labels(dataset_root(args.dataset_path), "test") if args.labels or args.dataset_path else None
        checker = SubmissionChecker(args.mlperf_conf, labels)
        for base in bases:
            checker.check(base)
    except (UsageError, ConfigError, DatasetError, AccuracyCheckError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for problem in checker.problems:
        print(problem)
    print(checker.summary())
    return 1 if checker.problems else 0


if __name__ == "__main__":
    sys.exit(main())

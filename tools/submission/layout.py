"""Where each file of an MLPerf Inference submission lives, for one system and this benchmark.

Shared by :mod:`tools.submission.pack` (which writes the tree) and
:mod:`tools.submission.checker` (which reads it), so that both agree. The layout
is that of the MLPerf Inference rules :data:`RULES_VERSION`, whose random seeds
the runs must carry (:mod:`readback.rules`).
Paths are relative to the ``<division>/<submitter>`` folder::

    systems/<system>.json                          the system description
    src/seq2cnn/                                   the code, at the runs' git commit
    documentation/calibration.md                   what was done to the weights (no calibration here)
    documentation/submission.json                  rules version, LoadGen version, runs packed
    documentation/runs/<system>/seq2cnn/<scenario>/<kind>/
                                                   this project's records of each run: run.json,
                                                   sut_timings.npz, verification.json
    results/<system>/seq2cnn/<scenario>/           measurements.json, mlperf.conf, user.conf, README.md
        performance/run_1/                         LoadGen's summary and detail logs
        accuracy/                                  summary, detail, mlperf_log_accuracy.json (truncated),
                                                   accuracy.txt (ends with hash=<sha256 of the full log>)
        TEST01/                                    verify_accuracy.txt, verify_performance.txt,
            accuracy/                              mlperf_log_accuracy.json (truncated), accuracy.txt (hash=...)
            performance/run_1/                     summary and detail logs

The tree's root holds a ``README.md`` (how it was built and how to check it)
and the division folders, nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath

from readback.benchmark import MODEL_NAME
from readback.loadgen_log import ACCURACY_FILE, DETAIL_FILE, SUMMARY_FILE
from readback.rules import RULES_VERSION  # noqa: F401 - the layout's round, read by the packer and the checker
from readback.run_files import (
    ACCURACY_REPORT_FILE,
    RUN_RECORD_FILE,
    SUT_TIMINGS_FILE,
    VERIFICATION_FILE,
    VERIFY_ACCURACY_FILE,
    VERIFY_PERFORMANCE_FILE,
)


PERFORMANCE_RUN = PurePosixPath("performance", "run_1")
MEASUREMENTS_FILE = "measurements.json"
MEASUREMENT_CONFIGS = ("mlperf.conf", "user.conf")  # in the order run.json's config_files lists them
MEASUREMENT_README = "README.md"
KINDS = ("performance", "accuracy", "TEST01")
DIVISIONS = ("closed", "open")
TREE_README = "README.md"
CALIBRATION_FILE = PurePosixPath("documentation", "calibration.md")
SUBMISSION_RECORD = PurePosixPath("documentation", "submission.json")
SOURCE_DIR = PurePosixPath("src", MODEL_NAME)

#: The scenarios a submission of this benchmark must hold, and may hold, by the system type of its description.
REQUIRED_SCENARIOS = {
    "edge": ("SingleStream", "Offline"),
    "datacenter": ("Server", "Offline"),
    "datacenter,edge": ("SingleStream", "Offline", "Server"),
}
OPTIONAL_SCENARIOS = {"edge": ("MultiStream",), "datacenter": (), "datacenter,edge": ("MultiStream",)}
#: System types as system descriptions may spell them, and the one each stands for.
SYSTEM_TYPES = {"datacenter": "datacenter", "edge": "edge", "datacenter,edge": "datacenter,edge",
                "edge,datacenter": "datacenter,edge"}

#: The largest file the rules allow in a submission (50 MB).
FILE_SIZE_LIMIT_BYTES = 50 * 1024 * 1024

#: The keys an implementation's ``measurements.json`` must give, each with a meaningful value.
MEASUREMENTS_KEYS = (
    "input_data_types", "retraining", "starting_weights_filename", "weight_data_types", "weight_transformations",
)


@dataclass(frozen=True)
class Placement:
    """One file of a run folder (``source``) and its path below the scenario's results folder (``target``)."""

    source: str
    target: PurePosixPath
    required: bool = True


#: Where each kind of run puts its accuracy log and the ``accuracy.txt`` that ends with the full log's hash.
ACCURACY_DIRS = {"accuracy": PurePosixPath("accuracy"), "TEST01": PurePosixPath("TEST01", "accuracy")}

RESULT_FILES: dict[str, tuple[Placement, ...]] = {
    "performance": (
        Placement(SUMMARY_FILE, PERFORMANCE_RUN / SUMMARY_FILE),
        Placement(DETAIL_FILE, PERFORMANCE_RUN / DETAIL_FILE),
    ),
    "accuracy": (
        Placement(SUMMARY_FILE, PurePosixPath("accuracy", SUMMARY_FILE)),
        Placement(DETAIL_FILE, PurePosixPath("accuracy", DETAIL_FILE)),
        Placement(ACCURACY_FILE, PurePosixPath("accuracy", ACCURACY_FILE)),
        Placement(ACCURACY_REPORT_FILE, PurePosixPath("accuracy", ACCURACY_REPORT_FILE)),
    ),
    "TEST01": (
        Placement(VERIFY_ACCURACY_FILE, PurePosixPath("TEST01", VERIFY_ACCURACY_FILE)),
        Placement(VERIFY_PERFORMANCE_FILE, PurePosixPath("TEST01", VERIFY_PERFORMANCE_FILE)),
        Placement(ACCURACY_FILE, PurePosixPath("TEST01", "accuracy", ACCURACY_FILE)),
        Placement(SUMMARY_FILE, PurePosixPath("TEST01") / PERFORMANCE_RUN / SUMMARY_FILE),
        Placement(DETAIL_FILE, PurePosixPath("TEST01") / PERFORMANCE_RUN / DETAIL_FILE),
    ),
}

#: The files each folder of a scenario's results must hold, exactly (the official checker's file lists).
EXACT_FILES: dict[PurePosixPath, frozenset[str]] = {
    PERFORMANCE_RUN: frozenset({SUMMARY_FILE, DETAIL_FILE}),
    PurePosixPath("accuracy"): frozenset({SUMMARY_FILE, DETAIL_FILE, ACCURACY_FILE, ACCURACY_REPORT_FILE}),
    PurePosixPath("TEST01", "accuracy"): frozenset({ACCURACY_FILE, ACCURACY_REPORT_FILE}),
    PurePosixPath("TEST01") / PERFORMANCE_RUN: frozenset({SUMMARY_FILE, DETAIL_FILE}),
}
#: Files LoadGen may also write that the official checker tolerates in those folders.
TOLERATED_FILES = frozenset({"mlperf_log_trace.json"})

#: This project's own records of a run, kept under documentation/ (the results folders hold LoadGen's files only).
RECORD_FILES = (
    Placement(RUN_RECORD_FILE, PurePosixPath(RUN_RECORD_FILE)),
    Placement(SUT_TIMINGS_FILE, PurePosixPath(SUT_TIMINGS_FILE), required=False),
    Placement(VERIFICATION_FILE, PurePosixPath(VERIFICATION_FILE), required=False),
)


def system_file(system: str) -> PurePosixPath:
    return PurePosixPath("systems", f"{system}.json")


def benchmark_dir(system: str) -> PurePosixPath:
    """The folder holding one sub-folder per scenario of ``system``."""
    return PurePosixPath("results", system, MODEL_NAME)


def scenario_dir(system: str, scenario: str) -> PurePosixPath:
    """The scenario's results folder: measurements, and the folders of :data:`RESULT_FILES`."""
    return benchmark_dir(system) / scenario


def records_dir(system: str, scenario: str, kind: str) -> PurePosixPath:
    """Where this project's records of the scenario's ``kind`` run go (:data:`RECORD_FILES`)."""
    if kind not in KINDS:
        raise ValueError(f"unknown run kind {kind!r}; expected one of {', '.join(KINDS)}")
    return PurePosixPath("documentation", "runs", system, MODEL_NAME, scenario, kind)

"""Where each file of an MLPerf-style submission lives, for one system and this benchmark.

Shared by :mod:`tools.submission` (which writes the tree) and
:mod:`tools.check_submission` (which reads it), so that both agree. Paths are
relative to the ``<division>/<submitter>`` folder::

    systems/<system>.json
    measurements/<system>/seq2cnn/<scenario>/   mlperf.conf, user.conf, README.md,
                                                <system>_<implementation>_<scenario>.json
    results/<system>/seq2cnn/<scenario>/performance/run_1/   summary, detail log, run.json
    results/<system>/seq2cnn/<scenario>/accuracy/            summary, detail and accuracy logs, accuracy.txt
    compliance/<system>/seq2cnn/<scenario>/TEST01/           verify_accuracy.txt, verify_performance.txt,
                                                accuracy/mlperf_log_accuracy.json,
                                                performance/run_1/ summary and detail log

A run folder of one kind (performance, accuracy, TEST01) fills the files of
:data:`RUN_FILES` for that kind: each maps a file of the run folder to its
place below :func:`kind_dir`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath

from sut.loadgen_log import ACCURACY_FILE, DETAIL_FILE, SUMMARY_FILE
from sut.run_files import ACCURACY_REPORT_FILE
from sut.run_files import RUN_RECORD_FILE as RUN_RECORD
from sut.run_files import SUT_TIMINGS_FILE as SUT_TIMINGS
from sut.run_files import VERIFY_ACCURACY_FILE as VERIFY_ACCURACY
from sut.run_files import VERIFY_PERFORMANCE_FILE as VERIFY_PERFORMANCE
from sut.settings import MODEL_NAME

PERFORMANCE_RUN = PurePosixPath("performance", "run_1")
MEASUREMENT_CONFIGS = ("mlperf.conf", "user.conf")  # in the order run.json's config_files lists them
MEASUREMENT_README = "README.md"
KINDS = ("performance", "accuracy", "TEST01")
#: The folders below ``<division>/<submitter>`` that hold one sub-folder per system.
SYSTEM_SECTIONS = ("measurements", "results", "compliance")


@dataclass(frozen=True)
class Placement:
    """One file of a run folder (``source``) and its path below the kind's folder (``target``)."""

    source: str
    target: PurePosixPath
    required: bool = True


RUN_FILES: dict[str, tuple[Placement, ...]] = {
    "performance": (
        Placement(SUMMARY_FILE, PERFORMANCE_RUN / SUMMARY_FILE),
        Placement(DETAIL_FILE, PERFORMANCE_RUN / DETAIL_FILE),
        Placement(RUN_RECORD, PERFORMANCE_RUN / RUN_RECORD),
        Placement(SUT_TIMINGS, PERFORMANCE_RUN / SUT_TIMINGS, required=False),
    ),
    "accuracy": tuple(
        Placement(name, PurePosixPath("accuracy", name)) for name in (SUMMARY_FILE, DETAIL_FILE, ACCURACY_FILE, ACCURACY_REPORT_FILE)
    ),
    "TEST01": (
        Placement(VERIFY_ACCURACY, PurePosixPath(VERIFY_ACCURACY)),
        Placement(VERIFY_PERFORMANCE, PurePosixPath(VERIFY_PERFORMANCE)),
        Placement(ACCURACY_FILE, PurePosixPath("accuracy", ACCURACY_FILE)),
        Placement(SUMMARY_FILE, PERFORMANCE_RUN / SUMMARY_FILE),
        Placement(DETAIL_FILE, PERFORMANCE_RUN / DETAIL_FILE),
    ),
}


def system_file(system: str) -> PurePosixPath:
    return PurePosixPath("systems", f"{system}.json")


def scenario_parent_dirs(system: str) -> tuple[PurePosixPath, ...]:
    """The folders holding one sub-folder per scenario of ``system``: measurements, results, compliance."""
    return tuple(PurePosixPath(section, system, MODEL_NAME) for section in SYSTEM_SECTIONS)


def measurements_dir(system: str, scenario: str) -> PurePosixPath:
    return scenario_parent_dirs(system)[0] / scenario


def implementation_file(system: str, implementation: str, scenario: str) -> PurePosixPath:
    return measurements_dir(system, scenario) / f"{system}_{implementation}_{scenario}.json"


def kind_dir(system: str, scenario: str, kind: str) -> PurePosixPath:
    """The folder that :data:`RUN_FILES` ``[kind]`` targets are relative to."""
    _, results, compliance = scenario_parent_dirs(system)
    if kind == "TEST01":
        return compliance / scenario / kind
    if kind in ("performance", "accuracy"):
        return results / scenario
    raise ValueError(f"unknown run kind {kind!r}; expected one of {', '.join(KINDS)}")

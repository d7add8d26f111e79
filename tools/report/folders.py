"""What the report reads: one LoadGen run folder (its logs, ``run.json``, the accuracy report, the SUT's
timings, compliance verdicts), or the scenario folders of a submission tree.

A run folder is written by ``run.py``; a submission tree follows
:mod:`tools.submission.layout`, with each run's ``run.json`` and
``sut_timings.npz`` under ``documentation/runs/``. A folder that cannot be
read raises :class:`ReportError`, whose message says what to do.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from common.errors import BadInputError
from readback.benchmark import MODEL_NAME
from readback.loadgen_log import (
    DETAIL_FILE,
    LoadGenLogError,
    LoadGenResult,
    detail_values,
    read_result,
)
from readback.run_files import ACCURACY_REPORT_FILE, RUN_RECORD_FILE, SUT_TIMINGS_FILE
from readback.run_record import RunRecord, RunRecordError, read_run_record
from readback.test01 import ComplianceVerdicts, read_verdicts
from readback.timings import SutTimings, TimingsError, read_sut_timings
from tools.submission import layout


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

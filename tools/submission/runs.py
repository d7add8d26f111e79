"""The run folders a submission is packed from: each finished run, the slot (scenario and kind) it fills,
and the runs of one scenario.

A run folder (written by ``run.py``) says in its ``run.json``
(:mod:`readback.run_record`) which scenario it ran and what kind of run it was:
``performance``, ``accuracy`` or ``TEST01``. Refused, with an error naming the
run folders: a run that did not finish, a run of an unknown kind, two runs for
the same scenario and kind, runs made with a LoadGen whose seeds are not those
of the layout's round (:mod:`tools.submission.layout`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from common.errors import BadInputError
from readback.run_files import RUN_RECORD_FILE
from readback.run_record import RunRecord, RunRecordError, read_finished_run
from tools.submission import layout


class SubmissionError(BadInputError):
    """Run folders or an output folder from which no submission can be assembled."""


@dataclass(frozen=True)
class RunFolder:
    """One finished run and the slot (scenario and kind) it fills in the submission."""

    path: Path
    record: RunRecord

    @property
    def scenario(self) -> str:
        return self.record.scenario

    @property
    def kind(self) -> str:
        return self.record.kind


def read_run(path: Path) -> RunFolder:
    """The finished run folder at ``path``, of a kind a submission holds, made with the layout's LoadGen."""
    try:
        record = read_finished_run(Path(path))
    except RunRecordError as error:
        raise SubmissionError(str(error)) from None
    if record.kind not in layout.KINDS:
        raise SubmissionError(
            f"run {path} is a {record.kind} run, which a submission does not hold; "
            f"pass {', '.join(layout.KINDS)} runs only"
        )
    version = record.settings.loadgen_version
    if version.split(".")[:2] != layout.LOADGEN_SERIES.split("."):
        raise SubmissionError(
            f"run {path} was made with LoadGen {version}, but this tree follows the MLPerf Inference "
            f"{layout.RULES_VERSION} rules, whose random seeds LoadGen {layout.LOADGEN_SERIES}.x uses: install "
            f"mlcommons-loadgen=={layout.LOADGEN_SERIES}.* and make the run again"
        )
    return RunFolder(Path(path), record)


def slot_runs(runs: list[RunFolder]) -> dict[str, dict[str, RunFolder]]:
    """Runs by scenario, then kind; two runs for one slot are an error naming both."""
    slots: dict[str, dict[str, RunFolder]] = {}
    for run in runs:
        earlier = slots.setdefault(run.scenario, {}).get(run.kind)
        if earlier is not None:
            raise SubmissionError(
                f"runs {earlier.path} and {run.path} are both the {run.scenario} {run.kind} run; pass only one of them"
            )
        slots[run.scenario][run.kind] = run
    return slots


def config_files(run: RunFolder) -> list:
    """The run's ``mlperf.conf`` and ``user.conf`` as ``run.json`` records them (path and sha256)."""
    files = run.record.settings.config_files
    if len(files) != len(layout.MEASUREMENT_CONFIGS):
        raise SubmissionError(
            f"{run.path / RUN_RECORD_FILE} records {len(files)} config file(s) under settings.config_files, "
            f"expected {len(layout.MEASUREMENT_CONFIGS)} ({', '.join(layout.MEASUREMENT_CONFIGS)})"
        )
    return files


def main_run(runs: dict[str, RunFolder]) -> RunFolder:
    """The run whose settings and implementation a scenario's measurements describe: its performance run if any."""
    return runs.get("performance") or next(iter(runs.values()))

"""The run folders a submission is packed from: each finished run, the slot (scenario and kind) it fills,
and the runs of one scenario.

A run folder (written by ``run.py``) says in its ``run.json``
(:mod:`readback.run_record`) which scenario it ran and what kind of run it was:
``performance``, ``accuracy`` or ``TEST01``. Run folders named one by one are
taken as they are; refused, with an error naming the run folders: a run that
did not finish, a run of an unknown kind, two runs for the same scenario and
kind, a run whose detail log holds other random seeds than the rules' (made
with a LoadGen of another round, :mod:`readback.rules`).

A folder of runs (``results/``, which holds no ``run.json`` itself) is a
choice instead (:func:`choose_runs`): for each slot the latest finished run
of it there (by its start time) is taken, and every other run folder in it is
skipped with its reason (an earlier run of a slot, a run that did not finish,
a find-peak search, ...), each said in the log.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from common.errors import BadInputError
from readback.loadgen_log import DETAIL_FILE, LoadGenLogError, detail_values
from readback.rules import seed_advice, wrong_seeds
from readback.run_files import RUN_RECORD_FILE
from readback.run_record import RunRecord, RunRecordError, read_finished_run
from tools.submission import layout

log = logging.getLogger(__name__)


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
    try:
        detail = detail_values(Path(path) / DETAIL_FILE)
    except LoadGenLogError as error:
        raise SubmissionError(f"run {path}: {error}") from None
    wrong = wrong_seeds(detail)
    if wrong:
        raise SubmissionError(f"run {path}: {'; '.join(wrong)} in {DETAIL_FILE}; "
                              f"{seed_advice(detail.get('loadgen_version', record.settings.loadgen_version))}")
    return RunFolder(Path(path), record)


def is_run_folder(path: Path) -> bool:
    """Whether ``path`` is one run's folder (it holds a ``run.json``), not a folder of runs."""
    return (Path(path) / RUN_RECORD_FILE).is_file()


def choose_runs(folder: Path) -> list[RunFolder]:
    """From the run folders directly inside ``folder``, the latest finished run of each slot (scenario, kind);
    each run taken and each skipped, with why, is logged. :class:`SubmissionError` when none is usable."""
    candidates: list[RunFolder] = []
    for path in sorted(child for child in Path(folder).iterdir() if child.is_dir()):
        if not is_run_folder(path):
            continue
        try:
            candidates.append(read_run(path))
        except SubmissionError as error:
            log.info("skipped %s: %s", path, error)
    if not candidates:
        raise SubmissionError(f"{folder} holds no finished performance, accuracy or TEST01 run folder: make the runs "
                              "with run.py (they go to results/), or pass run folders one by one")
    latest: dict[tuple[str, str], RunFolder] = {}
    for run in sorted(candidates, key=lambda run: (run.record.started_utc, run.path.name)):
        slot = (run.scenario, run.kind)
        if slot in latest:
            log.info("skipped %s: %s %s run started %s; %s, started %s, is later", latest[slot].path, *slot,
                     latest[slot].record.started_utc, run.path.name, run.record.started_utc)
        latest[slot] = run
    _follow_test01_baselines(latest, candidates)
    for (scenario, kind), run in sorted(latest.items()):
        log.info("took %s as the %s %s run (started %s)", run.path, scenario, kind, run.record.started_utc)
    return list(latest.values())


def _follow_test01_baselines(latest: dict[tuple[str, str], RunFolder], candidates: list[RunFolder]) -> None:
    """A TEST01 run was verified against one accuracy and one performance run: take those, where they are among
    the candidates, for its scenario's slots, so that the tree holds the runs its TEST01 compared with."""
    by_path = {run.path.resolve(): run for run in candidates}
    for (scenario, kind), run in list(latest.items()):
        compliance = run.record.compliance
        if kind != "TEST01" or compliance is None:
            continue
        for baseline_kind, baseline in (("accuracy", compliance.accuracy_run), ("performance", compliance.performance_run)):
            chosen = by_path.get(Path(baseline).resolve())
            current = latest.get((scenario, baseline_kind))
            if chosen is not None and chosen is not current:
                log.info("skipped %s: %s, the %s TEST01 run, was verified against %s", current.path if current else "-",
                         run.path.name, scenario, chosen.path)
                latest[(scenario, baseline_kind)] = chosen


def gather_runs(paths: list[Path]) -> list[RunFolder]:
    """The runs ``paths`` name: a run folder as it is (:func:`read_run`), a folder of runs by
    :func:`choose_runs`."""
    runs: list[RunFolder] = []
    for path in paths:
        if not Path(path).is_dir():
            raise SubmissionError(f"{path} is not a folder: pass run folders, or a folder of them such as results/")
        runs += [read_run(path)] if is_run_folder(path) else choose_runs(path)
    return runs


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

"""Assemble an MLPerf-style submission tree for one system from finished run folders.

    python -m tools.submission --runs RUN_DIR [RUN_DIR ...] \\
        --system configs/systems/example.yaml --output SUBMISSION_DIR

Each run folder (written by ``run.py``) says in its ``run.json``
(:mod:`sut.run_record`) which scenario it ran and what kind of run it was:
``performance``, ``accuracy`` or ``TEST01``.

Its files go where :mod:`tools.submission_layout` says, below
``SUBMISSION_DIR/<division>/<submitter>/``; per scenario the measurements
folder gets the ``mlperf.conf`` and ``user.conf`` the runs loaded (from the
paths ``run.json`` records, refused if their sha256 changed since), a
``README.md`` with each run's command and the implementation JSON; the system
description (:mod:`tools.system_description`) goes to ``systems/``.

Refused, with an error naming the run folders: a run that did not finish, a
run of an unknown kind, two runs for the same scenario and kind, runs of one
scenario under different ``mlperf.conf`` files. ``SUBMISSION_DIR`` must not
exist: the tree is written into a temporary folder beside it and renamed at
the end, so an error leaves nothing half-written. Check the result with
``python -m tools.check_submission SUBMISSION_DIR``.
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from model.weights import DEFAULT_WEIGHTS, recorded_sha256
from qsl.files import atomic_directory, sha256_of_file
from sut.run_files import RUN_RECORD_FILE
from sut.run_record import RunRecord, RunRecordError, read_finished_run
from sut.settings import MODEL_NAME
from tools import submission_layout as layout
from tools.system_description import SystemConfig, SystemConfigError, load_system_config, safe_name, system_description

log = logging.getLogger(__name__)

#: What each backend does to the weights before inference (backends not listed use them as they are).
WEIGHT_TRANSFORMATIONS = {
    "folded": "embedding folded into the convolutions at load: 7 per-tap fp32 tables T_j = E W_j^T (5200 x 1024)",
}
INPUT_DATA_TYPES = "int32 token ids (at most 1000 per review)"
WEIGHT_DATA_TYPES = "fp32"


class SubmissionError(RuntimeError):
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
    """The finished run folder at ``path``, of a kind a submission holds."""
    try:
        record = read_finished_run(Path(path))
    except RunRecordError as error:
        raise SubmissionError(str(error)) from None
    if record.kind not in layout.KINDS:
        raise SubmissionError(
            f"run {path} is a {record.kind} run, which a submission does not hold; "
            f"pass {', '.join(layout.KINDS)} runs only"
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


def _copy(source: Path, target: Path, root: Path) -> None:
    """Copy ``source`` to ``target`` (below the tree's ``root``) and log where it went."""
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source, target)
    log.info("%s -> %s", source, target.relative_to(root))


def _config_files(run: RunFolder) -> list:
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


def copy_config_files(runs: dict[str, RunFolder], target_dir: Path, root: Path) -> None:
    """Copy the ``mlperf.conf`` and ``user.conf`` the scenario's runs loaded, checking their sha256."""
    main = main_run(runs)
    files = _config_files(main)
    for name, recorded in zip(layout.MEASUREMENT_CONFIGS, files):
        for other in runs.values():
            other_file = _config_files(other)[layout.MEASUREMENT_CONFIGS.index(name)]
            if other_file.sha256 == recorded.sha256:
                continue
            message = (
                f"the {main.kind} run {main.path} and the {other.kind} run {other.path} of {main.scenario} loaded different "
                f"{name} files ({recorded.path}, {other_file.path})"
            )
            if name == "mlperf.conf":
                raise SubmissionError(message + "; rerun them under the same --mlperf-conf")
            log.warning("%s; the measurements folder keeps the %s run's", message, main.kind)
        source = Path(recorded.path)
        if not source.is_file():
            raise SubmissionError(
                f"{name} of run {main.path} was {source}, which no longer exists; restore it (sha256 {recorded.sha256})"
            )
        current = sha256_of_file(source)
        if current != recorded.sha256:
            raise SubmissionError(
                f"{source} changed since run {main.path} loaded it (sha256 now {current}, "
                f"recorded {recorded.sha256}); restore the file as it was, or rerun with the current one"
            )
        _copy(source, target_dir / name, root)


def command_line(record: RunRecord) -> str:
    """The command a run's record holds, as one shell line (``python`` before a script)."""
    command = list(record.command) or ["(not recorded)"]
    if command[0].endswith(".py"):
        command.insert(0, "python")
    return shlex.join(command)


def readme_text(scenario: str, runs: dict[str, RunFolder], system_name: str) -> str:
    """The measurements README: how each run of ``scenario`` was made."""
    lines = [f"# {MODEL_NAME} {scenario} on {system_name}", "", "Each result came from one command, run from the repository root:", ""]
    for kind in layout.KINDS:
        run = runs.get(kind)
        if run is None:
            continue
        record = run.record
        configs = ", ".join(f"{f.path} (sha256 {f.sha256[:12]}...)" for f in _config_files(run))
        lines += [
            f"## {kind}", "", "    " + command_line(record), "",
            f"Started {record.started_utc} (UTC), {record.wall_seconds} s; "
            f"backend {record.backend.name}; git commit {record.git.get('commit', '?')}"
            + (" with uncommitted changes" if record.git.get("dirty") else "") + f"; run folder {run.path}; "
            f"configs {configs}.", "",
        ]
    return "\n".join(lines)


def implementation_description(run: RunFolder) -> dict[str, object]:
    """The implementation JSON of a scenario (weights and data types), from its performance run's record."""
    backend = run.record.backend
    retraining = "no" if backend.weights_sha256 == recorded_sha256(DEFAULT_WEIGHTS) else (
        f"yes: not the project's shipped weights {DEFAULT_WEIGHTS.name} (sha256 {backend.weights_sha256})"
    )
    return {
        "input_data_types": INPUT_DATA_TYPES,
        "retraining": retraining,
        "starting_weights_filename": Path(backend.weights).name,
        "starting_weights_sha256": backend.weights_sha256,
        "weight_transformations": WEIGHT_TRANSFORMATIONS.get(backend.name, "none"),
        "weight_data_types": WEIGHT_DATA_TYPES,
        "backend": backend.name,
        "device": backend.device,
        "threads": backend.threads,
        "loadgen_version": run.record.settings.loadgen_version,
    }


def _place_run(run: RunFolder, base: Path, system: str, root: Path) -> None:
    kind_dir = base / layout.kind_dir(system, run.scenario, run.kind)
    for placement in layout.RUN_FILES[run.kind]:
        source = run.path / placement.source
        if source.is_file():
            _copy(source, kind_dir / placement.target, root)
        elif placement.required:
            raise SubmissionError(f"{source} is missing: the {run.scenario} {run.kind} run is incomplete; rerun it")


def _warn_if_other_machine(run: RunFolder, description: dict[str, object]) -> None:
    processor = run.record.machine.get("processor")
    if processor and processor != description["host_processor_model_name"]:
        log.warning(
            "run %s ran on a %s, but this machine (described in systems/) is a %s",
            run.path, processor, description["host_processor_model_name"],
        )


def write_tree(root: Path, slots: dict[str, dict[str, RunFolder]], config: SystemConfig) -> Path:
    """Write the submission of ``slots`` below ``root``; returns its ``<division>/<submitter>`` folder."""
    system = config.system_id
    base = root / config.division / safe_name(config.submitter)
    description = system_description(config)
    target = base / layout.system_file(system)
    target.parent.mkdir(parents=True)
    target.write_text(json.dumps(description, indent=2) + "\n")
    log.info("system description -> %s", target.relative_to(root))
    for scenario, runs in sorted(slots.items()):
        measurements = base / layout.measurements_dir(system, scenario)
        measurements.mkdir(parents=True)
        copy_config_files(runs, measurements, root)
        (measurements / layout.MEASUREMENT_README).write_text(readme_text(scenario, runs, config.system_name))
        main = main_run(runs)
        implementation = safe_name(main.record.backend.name)
        (base / layout.implementation_file(system, implementation, scenario)).write_text(
            json.dumps(implementation_description(main), indent=2) + "\n"
        )
        log.info("%s README, implementation description -> %s", scenario, measurements.relative_to(root))
        for run in runs.values():
            _warn_if_other_machine(run, description)
            _place_run(run, base, system, root)
        missing = [kind for kind in layout.KINDS if kind not in runs]
        if missing:
            log.warning("%s has no %s run: the submission is incomplete", scenario, " or ".join(missing))
    return base


def assemble(run_dirs: list[Path], system_yaml: Path, output: Path) -> Path:
    """Build the submission tree at ``output`` (which must not exist); returns its ``<division>/<submitter>`` folder."""
    output = Path(output)
    if output.exists():
        raise SubmissionError(f"output folder {output} already exists; a submission is never written over: choose another --output")
    config = load_system_config(system_yaml)
    slots = slot_runs([read_run(path) for path in run_dirs])
    with atomic_directory(output) as staging:
        base = write_tree(staging, slots, config)
    return output / base.relative_to(staging)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=Path, nargs="+", required=True, help="finished run folders (performance, accuracy, TEST01)")
    parser.add_argument("--system", type=Path, required=True, help="system YAML, e.g. configs/systems/example.yaml")
    parser.add_argument("--output", type=Path, required=True, help="new folder for the submission tree (must not exist)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        base = assemble(args.runs, args.system, args.output)
    except (SubmissionError, SystemConfigError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"submission written to {base}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

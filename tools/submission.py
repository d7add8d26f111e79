"""Assemble an MLPerf Inference submission tree for one system from finished run folders.

    python -m tools.submission --runs RUN_DIR [RUN_DIR ...] \\
        --system configs/systems/example.yaml --output SUBMISSION_DIR

Each run folder (written by ``run.py``) says in its ``run.json``
(:mod:`readback.run_record`) which scenario it ran and what kind of run it was:
``performance``, ``accuracy`` or ``TEST01``. The tree follows the layout of
the MLPerf Inference rules round that the pinned LoadGen runs
(:mod:`tools.submission_layout`, recorded in ``documentation/submission.json``
and the tree's ``README.md``):

- per scenario, ``results/<system>/seq2cnn/<scenario>/`` gets LoadGen's logs of
  each run, the ``mlperf.conf`` and ``user.conf`` the runs loaded (from the
  paths ``run.json`` records, refused if their sha256 changed since), a
  ``README.md`` with each run's command, and ``measurements.json`` (weights and
  data types);
- accuracy logs (the accuracy run's and TEST01's) are truncated the official
  way, their full sha256 appended to the ``accuracy.txt`` beside them
  (:mod:`tools.accuracy_log_truncation`); the full logs stay in the run folders;
- this project's records of each run (``run.json``, ``sut_timings.npz``) go to
  ``documentation/runs/``, ``documentation/calibration.md`` says what was done
  to the weights, ``src/seq2cnn/`` holds the code at the runs' git commit, and
  ``systems/<system>.json`` the system description
  (:mod:`tools.system_description`).

Refused, with an error naming the run folders: a run that did not finish, a
run of an unknown kind, two runs for the same scenario and kind, runs of one
scenario under different ``mlperf.conf`` files, runs made with a LoadGen
whose seeds are not those of the layout's round. ``SUBMISSION_DIR`` must not
exist: the tree is written into a temporary folder beside it and renamed at
the end, so an error leaves nothing half-written. Check the result with
``python -m tools.check_submission SUBMISSION_DIR``.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import shlex
import shutil
import subprocess
import sys
import tarfile
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath

from common.errors import BadInputError
from common.files import atomic_directory, sha256_of_file
from model.paths import DEFAULT_WEIGHTS, recorded_sha256
from readback.benchmark import MODEL_NAME
from readback.cluster import ClusterInfo
from readback.loadgen_log import ACCURACY_FILE
from readback.provenance import REPO
from readback.run_files import (
    ACCURACY_REPORT_FILE,
    RUN_RECORD_FILE,
    VERIFY_ACCURACY_FILE,
)
from readback.run_record import (
    BackendInfo,
    RunRecord,
    RunRecordError,
    read_finished_run,
)
from tools import submission_layout as layout
from tools.accuracy_log_truncation import truncate_accuracy_log, with_hash_line
from tools.system_description import (
    SystemConfig,
    SystemConfigError,
    load_system_config,
    safe_name,
    system_description,
)

log = logging.getLogger(__name__)

#: What each backend does to the weights before inference (backends not listed use them as they are).
WEIGHT_TRANSFORMATIONS = {
    "folded": "embedding folded into the convolutions at load: 7 per-tap fp32 tables T_j = E W_j^T (5200 x 1024)",
}
#: What the folded backend's bf16 precision adds to its transformation.
BF16_TABLES = ("the 7 tables (bias folded into tap 0) then rounded to bf16, round to nearest even, at load; sums, "
               "maxima and the classifier in fp32")
INPUT_DATA_TYPES = "int32 token ids (at most 1000 per review)"
WEIGHT_DATA_TYPES = "fp32"


def weight_transformation(name: str, precision: str, nothing: str = "none") -> str:
    """What the backend ``name`` in ``precision`` did to the weights before inference; ``nothing`` if nothing."""
    done = WEIGHT_TRANSFORMATIONS.get(name, nothing)
    return f"{done}; {BF16_TABLES}" if precision == "bf16" else done


def weight_data_types(backend: BackendInfo) -> str:
    return "bf16 (folded tables), fp32 (classifier)" if backend.precision == "bf16" else WEIGHT_DATA_TYPES
#: Weights are data, not code: src/ leaves them out (measurements.json names them with their sha256).
SOURCE_EXCLUDED_SUFFIXES = (".safetensors",)


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


def readme_text(scenario: str, runs: dict[str, RunFolder], system_name: str, system: str) -> str:
    """The scenario's README: how each of its runs was made, and where the project's records of it are."""
    intro = ("Each result came from one command, run from the repository root "
             f"(the code is in ../../../../{layout.SOURCE_DIR}/):")
    lines = [f"# {MODEL_NAME} {scenario} on {system_name}", "", intro, ""]
    for kind in layout.KINDS:
        run = runs.get(kind)
        if run is None:
            continue
        record = run.record
        configs = ", ".join(f"{f.path} (sha256 {f.sha256[:12]}...)" for f in _config_files(run))
        lines += [
            f"## {kind}", "", "    " + command_line(record), "",
            f"Started {record.started_utc} (UTC), {record.wall_seconds} s; "
            f"backend {record.backend.name}; LoadGen {record.settings.loadgen_version}; "
            f"git commit {record.git.get('commit', '?')}"
            + (" with uncommitted changes" if record.git.get("dirty") else "") + f"; run folder {run.path}; "
            f"configs {configs}. The project's record of the run: "
            f"../../../../{layout.records_dir(system, scenario, kind)}/{RUN_RECORD_FILE}.", "",
        ]
    return "\n".join(lines)


def implementation_description(run: RunFolder) -> dict[str, object]:
    """The scenario's ``measurements.json`` (weights and data types), from its performance run's record."""
    backend = run.record.backend
    retraining = "no" if backend.weights_sha256 == recorded_sha256(DEFAULT_WEIGHTS) else (
        f"yes: not the project's shipped weights {DEFAULT_WEIGHTS.name} (sha256 {backend.weights_sha256})"
    )
    return {
        "input_data_types": INPUT_DATA_TYPES,
        "retraining": retraining,
        "starting_weights_filename": Path(backend.weights).name,
        "starting_weights_sha256": backend.weights_sha256,
        "weight_transformations": weight_transformation(backend.name, backend.precision),
        "weight_data_types": weight_data_types(backend),
        "backend": backend.name,
        "precision": backend.precision,
        "device": backend.device,
        "threads": backend.threads,
        "loadgen_version": run.record.settings.loadgen_version,
        **({"ray": ray_description(run.record.cluster)} if run.record.cluster is not None else {}),
    }


def ray_description(cluster: ClusterInfo) -> dict[str, object]:
    """How a run on Ray was spread: Ray's version, the nodes, and each actor's node, device and resources."""
    return {
        "ray_version": cluster.ray_version,
        "nodes": len(cluster.nodes),
        "nodes_with_actors": len({actor.node_id for actor in cluster.actors}),
        "actors": [{"node": actor.node_address, "device": actor.device, "gpus": actor.gpu_ids, "cpus": actor.cpus,
                    "threads": actor.threads} for actor in cluster.actors],
        "batches_in_flight_per_actor": cluster.in_flight_per_actor,
    }


def calibration_text(runs: list[RunFolder]) -> str:
    """``documentation/calibration.md``: what calibration or quantization was done (none, or bf16 tables by
    rounding, with no calibration data), and what each backend did."""
    backends = sorted({(run.record.backend.name, run.record.backend.precision) for run in runs})
    weights = sorted({(Path(run.record.backend.weights).name, run.record.backend.weights_sha256) for run in runs})
    reduced = any(precision != "fp32" for _, precision in backends)
    if reduced:
        summary = (f"No calibration. Runs of this submission ({MODEL_NAME}) with bf16 precision rounded the folded "
                   "tables to bf16 (round to nearest even), with no data set involved; every other value, and every "
                   "other run, is fp32. The trained fp32 weights:")
    else:
        summary = (f"No calibration and no quantization. Every run of this submission ({MODEL_NAME}) computed in "
                   f"{WEIGHT_DATA_TYPES} with the trained {WEIGHT_DATA_TYPES} weights as they are:")
    folding = ("Folding the embedding into the convolutions re-associates the same fp32 products; in fp32 it gives "
               "the reference backend's label on every one of the 25,000 test reviews. It is not calibration: no "
               "data set is used.")
    lines = [
        "# Calibration and quantization", "", summary, "",
        *(f"- {name} (sha256 {sha256})" for name, sha256 in weights), "",
        "Backends used, and what they do to the weights at load:", "",
        *(f"- {name} ({precision}): {weight_transformation(name, precision, 'nothing (the weights are used as loaded)')}"
          for name, precision in backends),
        "", folding, "",
    ]
    return "\n".join(lines)


def _git(*args: str) -> str:
    """The output of ``git args`` in the project's checkout; SubmissionError when git cannot answer."""
    try:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=True, timeout=60).stdout
    except subprocess.CalledProcessError as error:
        raise SubmissionError(f"git {' '.join(args)} failed in {REPO}: {error.stderr.strip()}") from None
    except (OSError, subprocess.SubprocessError) as error:
        raise SubmissionError(f"cannot run git in {REPO} to copy the code into src/ ({error}): install git") from None


def source_commit(runs: list[RunFolder], given: str | None = None) -> str:
    """The git commit whose code ``src/`` holds: ``given`` (``--source-commit``), else the runs' own, else
    the latest run's when they differ. Runs that recorded none (made outside a git checkout) need ``given``."""
    commits = Counter(str(run.record.git.get("commit", "unknown")) for run in runs)
    known = sorted(commit for commit in commits if commit != "unknown")
    if given is not None:
        commit = _git("rev-parse", "--verify", f"{given}^{{commit}}").strip()
        if known and known != [commit]:
            log.warning("--source-commit %s, but the runs recorded commit(s) %s", commit, ", ".join(known))
    else:
        latest = max(runs, key=lambda run: run.record.started_utc)
        commit = str(latest.record.git.get("commit", "unknown"))
        if len(commits) > 1:
            log.warning("the runs were made at %d commits (%s); src/ holds the latest run's, %s",
                        len(commits), ", ".join(f"{c} ({n} runs)" for c, n in commits.items()), commit)
        if commit == "unknown":
            raise SubmissionError(
                "the latest run records no git commit (it was made outside a git checkout), so which code made the "
                "runs is unknown: pass --source-commit with the commit of the code that made them")
    dirty = [str(run.path) for run in runs if run.record.git.get("dirty")]
    if dirty:
        log.warning("run(s) %s were made with uncommitted changes, which src/ (commit %s) does not hold",
                    ", ".join(dirty), commit)
    return commit


def write_source(target: Path, commit: str) -> int:
    """Extract the project's tracked files at ``commit`` into ``target``, without dot-files and weights.

    Returns the number of files written.
    """
    excluded = [f":(exclude)*{suffix}" for suffix in SOURCE_EXCLUDED_SUFFIXES]
    try:
        archive = subprocess.run(["git", "archive", "--format=tar", commit, "--", ".", *excluded], cwd=REPO,
                                 capture_output=True, check=True, timeout=120).stdout
    except subprocess.CalledProcessError as error:
        raise SubmissionError(
            f"cannot read the code of commit {commit} from the git checkout {REPO} "
            f"({error.stderr.decode(errors='replace').strip()}): pack from the checkout that made the runs") from None
    except (OSError, subprocess.SubprocessError) as error:
        raise SubmissionError(f"cannot run git in {REPO} to copy the code into src/ ({error}): install git") from None
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        members = [
            member for member in tar.getmembers()
            if member.isfile()
            and not any(part.startswith(".") for part in PurePosixPath(member.name).parts)
        ]
        tar.extractall(target, members=members, filter="data")
    return len(members)


def test01_accuracy_text(run: RunFolder) -> str:
    """The ``accuracy.txt`` beside TEST01's accuracy log: what the log holds and where its verdict is."""
    verdict = (run.path / VERIFY_ACCURACY_FILE).read_text(encoding="utf-8", errors="replace").splitlines()
    last = next((line for line in reversed(verdict) if line.startswith(("TEST PASS", "TEST FAIL"))), "no verdict")
    return (
        f"TEST01 audit log of the {run.scenario} TEST01 run: the responses LoadGen logged during that performance-mode "
        f"run.\nTheir comparison with the accuracy run's is ../{VERIFY_ACCURACY_FILE}: {last}\n"
    )


def _place_run(run: RunFolder, base: Path, system: str, root: Path) -> dict[str, object]:
    """Copy the run's files into the tree; returns what ``documentation/submission.json`` records of it."""
    scenario_dir = base / layout.scenario_dir(system, run.scenario)
    accuracy_dir = layout.ACCURACY_DIRS.get(run.kind)
    entry: dict[str, object] = {"scenario": run.scenario, "kind": run.kind, "run_dir": str(run.path.resolve())}
    for placement in layout.RESULT_FILES[run.kind]:
        source, target = run.path / placement.source, scenario_dir / placement.target
        if not source.is_file():
            if placement.required:
                raise SubmissionError(f"{source} is missing: the {run.scenario} {run.kind} run is incomplete; rerun it")
            continue
        if placement.source == ACCURACY_FILE and accuracy_dir is not None:
            target.parent.mkdir(parents=True, exist_ok=True)
            truncated = truncate_accuracy_log(source, target)
            entry["accuracy_log_sha256"] = truncated.sha256
            log.info("%s -> %s (truncated: %s of %s bytes kept)", source, target.relative_to(root),
                     f"{truncated.kept_bytes:,}", f"{truncated.full_bytes:,}")
        elif placement.source != ACCURACY_REPORT_FILE:
            _copy(source, target, root)
    if accuracy_dir is not None:
        report = run.path / ACCURACY_REPORT_FILE
        text = report.read_text(encoding="utf-8") if run.kind == "accuracy" else test01_accuracy_text(run)
        target = scenario_dir / accuracy_dir / ACCURACY_REPORT_FILE
        target.write_text(with_hash_line(text, str(entry["accuracy_log_sha256"])), encoding="utf-8")
        log.info("%s with the full log's hash -> %s", report.name, target.relative_to(root))
    records = base / layout.records_dir(system, run.scenario, run.kind)
    for placement in layout.RECORD_FILES:
        source = run.path / placement.source
        if not source.is_file():
            continue
        if not placement.required and source.stat().st_size > layout.FILE_SIZE_LIMIT_BYTES:
            log.warning("%s is %.0f MiB, over the 50 MB a submission allows per file: left out (the report then shows "
                        "LoadGen's percentiles instead of per-sample latencies)", source, source.stat().st_size / 2**20)
            continue
        _copy(source, records / placement.target, root)
    return entry


def _warn_if_other_machine(run: RunFolder, description: dict[str, object]) -> None:
    processor = run.record.machine.get("processor")
    if processor and processor != description["host_processor_model_name"]:
        log.warning(
            "run %s ran on a %s, but this machine (described in systems/) is a %s",
            run.path, processor, description["host_processor_model_name"],
        )


def tree_readme(config: SystemConfig, record: dict[str, object]) -> str:
    """The tree root's ``README.md``: what it holds, which rules, and how to check it."""
    base = f"{config.division}/{config.submitter}"
    built = (f"Built {record['built_utc']} (UTC) by `python -m tools.submission` from {len(record['runs'])} run "
             f"folders, with LoadGen {record['loadgen_version']} (the {layout.RULES_VERSION} seeds). The layout is "
             f"that of the MLPerf Inference {layout.RULES_VERSION} submission rules; the runs' own records are in "
             f"`{base}/documentation/runs/`, the code in `{base}/{layout.SOURCE_DIR}/`.")
    official = (f"    python3 -m submission_checker.main --input . --version {layout.RULES_VERSION}"
                "   # MLPerf's, from mlcommons/inference tools/submission/")
    logs = ("Accuracy logs are truncated as the rules ask (first and last 4 KiB); each `accuracy.txt` ends with "
            f"the sha256 of the full log, which stays in the run folder named in `{base}/{layout.SUBMISSION_RECORD}`.")
    return "\n".join([
        f"# MLPerf Inference {layout.RULES_VERSION} submission: {MODEL_NAME} on {config.system_name}", "",
        built, "", "Check it:", "",
        "    python -m tools.check_submission .            # this project's checker",
        official, "", logs, "",
    ])


def write_tree(root: Path, slots: dict[str, dict[str, RunFolder]], config: SystemConfig,
               given_commit: str | None = None) -> Path:
    """Write the submission of ``slots`` below ``root``; returns its ``<division>/<submitter>`` folder."""
    system = config.system_id
    base = root / config.division / safe_name(config.submitter)
    clusters = [run.record.cluster for runs in slots.values() for run in runs.values() if run.record.cluster]
    description = system_description(config, max(clusters, key=lambda c: len(c.actors), default=None))
    target = base / layout.system_file(system)
    target.parent.mkdir(parents=True)
    target.write_text(json.dumps(description, indent=2) + "\n")
    log.info("system description -> %s", target.relative_to(root))
    all_runs = [run for runs in slots.values() for run in runs.values()]
    entries = []
    for scenario, runs in sorted(slots.items()):
        scenario_dir = base / layout.scenario_dir(system, scenario)
        scenario_dir.mkdir(parents=True)
        copy_config_files(runs, scenario_dir, root)
        (scenario_dir / layout.MEASUREMENT_README).write_text(readme_text(scenario, runs, config.system_name, system))
        (scenario_dir / layout.MEASUREMENTS_FILE).write_text(
            json.dumps(implementation_description(main_run(runs)), indent=2) + "\n")
        log.info("%s README and measurements.json -> %s", scenario, scenario_dir.relative_to(root))
        for run in runs.values():
            _warn_if_other_machine(run, description)
            entries.append(_place_run(run, base, system, root))
        missing = [kind for kind in layout.KINDS if kind not in runs]
        if missing:
            log.warning("%s has no %s run: the submission is incomplete", scenario, " or ".join(missing))
    required = layout.REQUIRED_SCENARIOS[layout.SYSTEM_TYPES[config.system_type]]
    missing_scenarios = [scenario for scenario in required if scenario not in slots]
    if missing_scenarios:
        log.warning("no run of %s: a %s system's %s submission holds %s", ", ".join(missing_scenarios),
                    config.system_type, MODEL_NAME, ", ".join(required))
    calibration = base / layout.CALIBRATION_FILE
    calibration.parent.mkdir(parents=True, exist_ok=True)
    calibration.write_text(calibration_text(all_runs))
    commit = source_commit(all_runs, given_commit)
    files = write_source(base / layout.SOURCE_DIR, commit)
    log.info("code of commit %s (%d files, without dot-files and weights) -> %s", commit, files,
             (base / layout.SOURCE_DIR).relative_to(root))
    record = {
        "rules_version": layout.RULES_VERSION,
        "benchmark": MODEL_NAME,
        "loadgen_version": main_run(next(iter(slots.values()))).record.settings.loadgen_version,
        "built_utc": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),  # noqa: UP017 (3.10 has no UTC)
        "source_commit": commit,
        "runs": entries,
    }
    (base / layout.SUBMISSION_RECORD).write_text(json.dumps(record, indent=2) + "\n")
    (root / layout.TREE_README).write_text(tree_readme(config, record))
    return base


def assemble(run_dirs: list[Path], system_yaml: Path, output: Path, source_commit: str | None = None) -> Path:
    """Build the submission tree at ``output`` (which must not exist); returns its ``<division>/<submitter>`` folder.

    ``source_commit`` names the git commit of the code that made the runs, for runs that recorded none.
    """
    output = Path(output)
    if output.exists():
        raise SubmissionError(f"output folder {output} already exists; a submission is never written over: choose another --output")
    config = load_system_config(system_yaml)
    slots = slot_runs([read_run(path) for path in run_dirs])
    with atomic_directory(output) as staging:
        base = write_tree(staging, slots, config, source_commit)
    return output / base.relative_to(staging)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=Path, nargs="+", required=True, help="finished run folders (performance, accuracy, TEST01)")
    parser.add_argument("--system", type=Path, required=True, help="system YAML, e.g. configs/systems/example.yaml")
    parser.add_argument("--output", type=Path, required=True, help="new folder for the submission tree (must not exist)")
    parser.add_argument("--source-commit", help="git commit of the code that made the runs, copied into src/ "
                                                "(default: the one the runs recorded)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        base = assemble(args.runs, args.system, args.output, args.source_commit)
    except (SubmissionError, SystemConfigError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"submission written to {base}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

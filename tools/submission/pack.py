"""Assemble an MLPerf Inference submission tree for one system from finished run folders.

    python -m tools.submission --runs RUN_DIR [RUN_DIR ...] \\
        --system configs/systems/example.yaml --output SUBMISSION_DIR
    python -m tools.submission --runs results/ --system ... --output ...   # the latest run of each slot

Each run folder (written by ``run.py``) says in its ``run.json``
(:mod:`readback.run_record`) which scenario it ran and what kind of run it was:
``performance``, ``accuracy`` or ``TEST01``. The tree follows the layout of
the MLPerf Inference rules round that the pinned LoadGen runs
(:mod:`tools.submission.layout`, recorded in ``documentation/submission.json``
and the tree's ``README.md``):

- per scenario, ``results/<system>/seq2cnn/<scenario>/`` gets LoadGen's logs of
  each run, the ``mlperf.conf`` and ``user.conf`` the runs loaded (from the
  paths ``run.json`` records, refused if their sha256 changed since), a
  ``README.md`` with each run's command, and ``measurements.json`` (weights and
  data types);
- accuracy logs (the accuracy run's and TEST01's) are truncated the official
  way, their full sha256 appended to the ``accuracy.txt`` beside them
  (:mod:`tools.submission.truncation`); the full logs stay in the run folders;
- this project's records of each run (``run.json``, ``sut_timings.npz``) go to
  ``documentation/runs/``, ``documentation/calibration.md`` says what was done
  to the weights, ``src/seq2cnn/`` holds the code at the runs' git commit, and
  ``systems/<system>.json`` the system description
  (:mod:`tools.submission.system_description`).

Refused, with an error naming the run folders: a run that did not finish, a
run of an unknown kind, two runs for the same scenario and kind, runs of one
scenario under different ``mlperf.conf`` files, runs made with a LoadGen
whose seeds are not those of the layout's round. ``SUBMISSION_DIR`` must not
exist: the tree is written into a temporary folder beside it and renamed at
the end, so an error leaves nothing half-written. The project's checker
then reads the tree: when it finds problems (quick runs, a failed TEST01, a
scenario the system type does not allow), the packer warns that MLPerf's
checker will refuse the tree and names them; ``python -m
tools.check_submission SUBMISSION_DIR`` lists them all.

Exit status: 0 written, 2 refused (the message says what and where), 3 an
error of this program's own (its traceback is logged).
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
from datetime import datetime, timezone
from pathlib import Path

from common.errors import run_command
from common.files import atomic_directory, sha256_of_file
from common.text import ordinal, plain
from readback.benchmark import MODEL_NAME
from readback.loadgen_log import ACCURACY_FILE
from readback.run_files import ACCURACY_REPORT_FILE, SUT_TIMINGS_FILE
from readback.timings import thin_sut_timings
from tools.submission import layout
from tools.submission.checker import check_tree
from tools.submission.documents import (
    calibration_text,
    implementation_description,
    readme_text,
    test01_accuracy_text,
    tree_readme,
)
from tools.submission.runs import (
    RunFolder,
    SubmissionError,
    config_files,
    gather_runs,
    main_run,
    slot_runs,
)
from tools.submission.source import source_commit, write_source
from tools.submission.system_description import (
    SystemConfig,
    load_system_config,
    safe_name,
    system_description,
)
from tools.submission.truncation import truncate_accuracy_log, with_hash_line

log = logging.getLogger(__name__)


def _copy(source: Path, target: Path, root: Path) -> None:
    """Copy ``source`` to ``target`` (below the tree's ``root``) and log where it went."""
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source, target)
    log.info("%s -> %s", source, target.relative_to(root))


def copyconfig_files(runs: dict[str, RunFolder], target_dir: Path, root: Path) -> None:
    """Copy the ``mlperf.conf`` and ``user.conf`` the scenario's runs loaded, checking their sha256."""
    main = main_run(runs)
    files = config_files(main)
    for name, recorded in zip(layout.MEASUREMENT_CONFIGS, files):
        for other in runs.values():
            other_file = config_files(other)[layout.MEASUREMENT_CONFIGS.index(name)]
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
        size = source.stat().st_size
        if placement.source == SUT_TIMINGS_FILE and size > layout.FILE_SIZE_LIMIT_BYTES:
            target = records / placement.target
            target.parent.mkdir(parents=True, exist_ok=True)
            whole, kept = thin_sut_timings(source, target, layout.FILE_SIZE_LIMIT_BYTES)
            log.info("%s: %s samples in %.0f MiB, over the 50 MB a submission allows per file: the package keeps "
                     "every %s sample (%s, %.1f MiB), evenly over the run, for the report's latency and throughput "
                     "figures -> %s", source, f"{len(whole.issued_ns):,}", size / 2**20, ordinal(kept.stride),
                     f"{len(kept.issued_ns):,}", target.stat().st_size / 2**20,
                     target.relative_to(root))
            continue
        if not placement.required and size > layout.FILE_SIZE_LIMIT_BYTES:
            log.warning("%s is %.0f MiB, over the 50 MB a submission allows per file: left out", source, size / 2**20)
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


def write_tree(root: Path, slots: dict[str, dict[str, RunFolder]], config: SystemConfig,
               given_commit: str | None = None) -> Path:
    """Write the submission of ``slots`` below ``root``; returns its ``<division>/<submitter>`` folder."""
    system = config.system_id
    base = root / config.division / safe_name(config.submitter)
    clusters = [run.record.cluster for runs in slots.values() for run in runs.values() if run.record.cluster]
    frameworks = sorted({run.record.backend.framework for runs in slots.values() for run in runs.values()
                         if run.record.backend.framework})
    description = system_description(config, max(clusters, key=lambda c: len(c.actors), default=None), frameworks)
    target = base / layout.system_file(system)
    target.parent.mkdir(parents=True)
    target.write_text(json.dumps(description, indent=2) + "\n")
    log.info("system description -> %s", target.relative_to(root))
    all_runs = [run for runs in slots.values() for run in runs.values()]
    entries = []
    for scenario, runs in sorted(slots.items()):
        scenario_dir = base / layout.scenario_dir(system, scenario)
        scenario_dir.mkdir(parents=True)
        copyconfig_files(runs, scenario_dir, root)
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
    slots = slot_runs(gather_runs(run_dirs))
    with atomic_directory(output) as staging:
        base = write_tree(staging, slots, config, source_commit)
    return output / base.relative_to(staging)


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """The command line; ``prog`` names it in the usage line (default: the script's file name)."""
    parser = argparse.ArgumentParser(prog=prog, description=plain(__doc__),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=Path, nargs="+", required=True,
                        help="finished run folders (performance, accuracy, TEST01), or folders of them such as "
                             "results/: from those, the latest finished run of each scenario and kind")
    parser.add_argument("--system", type=Path, required=True, help="system YAML, e.g. configs/systems/example.yaml")
    parser.add_argument("--output", type=Path, required=True, help="new folder for the submission tree (must not exist)")
    parser.add_argument("--source-commit", help="git commit of the code that made the runs, copied into src/ "
                                                "(default: the one the runs recorded)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return run_command(lambda: pack(args), log)


def pack(args: argparse.Namespace) -> int:
    """Write the tree the command line asks for, then say the project's checker's verdict on it."""
    base = assemble(args.runs, args.system, args.output, args.source_commit)
    print(f"submission written to {base}")
    say_checker_verdict(args.output)
    return 0


#: problems the packer's verdict names before it points at the checker for the rest
SHOWN_PROBLEMS = 5


def say_checker_verdict(root: Path) -> None:
    """What the project's checker (the benchmark's rules, accuracy as stated) says of the tree just written: a
    tree it refuses, MLPerf's checker refuses too, so the packer says so, and why, before anyone submits it."""
    checker = check_tree(root)
    if not checker.problems:
        print(f"the project's checker finds no problem: {checker.summary()}")
        return
    quick = sum(problem.quick for problem in checker.problems)
    shown = "".join(f"\n  {problem}" for problem in checker.problems[:SHOWN_PROBLEMS])
    more = len(checker.problems) - SHOWN_PROBLEMS
    log.warning("this tree will NOT pass MLPerf's submission checker: the project's checker finds %d problem(s)%s:%s%s"
                "\n  python -m tools.check_submission %s lists them all%s",
                len(checker.problems), f" ({quick} from quick runs)" if quick else "", shown,
                f"\n  ... and {more} more" if more > 0 else "", root,
                " (--rehearsal: a tree of quick runs, their findings listed as expected)" if quick else "")


if __name__ == "__main__":
    sys.exit(main())

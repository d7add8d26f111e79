"""``python -m tools.campaign``: a whole submission in one command, resumable after a stop.

    python -m tools.campaign --system configs/systems/example.yaml            # full rules: about 40 minutes (edge)
    python -m tools.campaign --system configs/systems/example.yaml --quick    # the same with 10 s runs: minutes
    python -m tools.campaign --system configs/systems/example.yaml --dry-run  # the checks and the plan only

It checks everything it can before the first run (the system YAML as the submission checker would, the system
type, the folder, the free disk), prints its plan (every run, its expected time, the total, the folder), then
makes each run with ``run.py`` in a process of its own (its output in ``logs/``), one after the other, with a
progress line before each and its verdict after. The folder's manifest (:mod:`tools.campaign.manifest`) lets the
same command, started again after a stop of any kind, reuse every run that finished well with the same commit,
weights, precision and config files, and make the others again, each try in a new folder. A TEST01 whose
accuracy check passed and whose performance check did not (the noise of a shared machine) is tried again, with
its performance run made again just before it, up to ``--retries`` more times; every try is kept. When every run is made, it packs the tree
(:func:`tools.submission.pack.assemble`), checks it with the project's checker (accuracy recomputed from the full
logs), writes the report and ends with one table.

``--quick`` runs the same campaign under ``mlperf.conf`` with ``min_duration`` at 10 s (the rules file is
written into the folder, and the tree is checked against it), and with what LoadGen expects of this machine
(Offline's rate, SingleStream's and MultiStream's latency) measured first by short runs (``quick-user.conf`` in
the folder): a way to try the whole chain; such a tree is not valid for submission, and MLPerf's checker, which
holds it against the real rules, refuses it.

Exit status: 0 the tree passed the checker; 1 a run missed its target (an INVALID performance run, an accuracy
below target, a TEST01 that failed after its tries) or the checker found problems; 2 bad input (nothing was
run) or a run refused its input; 3 a run's inference failed; 130 / 143 stopped by SIGINT / SIGTERM (run the
same command again to go on).
"""

from __future__ import annotations

import argparse
import ctypes
import fcntl
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterator

from common.files import sha256_of_file, write_text_atomically
from common.text import plain
from model.paths import DEFAULT_WEIGHTS
from model.precision import PRECISIONS
from qsl.errors import DatasetError
from qsl.locations import DATASET_LOOKUP_HELP
from qsl.reviews import checked_test_labels, dataset_root
from readback.provenance import git_commit
from readback.run_record import RunRecord, RunRecordError, read_run_record
from sut.settings import DEFAULT_MLPERF_CONF, ConfigError, default_user_conf
from tools.campaign.manifest import (
    CampaignError,
    Fingerprint,
    Manifest,
    Try,
    load_manifest,
)
from tools.campaign.outcome import Outcome, outcome_of
from tools.campaign.plan import (
    QUICK_MIN_DURATION_MS,
    PlannedRun,
    campaign_scenarios,
    needed_bytes,
    plan_campaign,
    quick_rules_text,
)
from tools.report.page import write_report
from tools.submission import layout
from tools.submission.checker import SubmissionChecker
from tools.submission.pack import assemble
from tools.submission.runs import SubmissionError
from tools.submission.system_description import (
    SystemConfig,
    SystemConfigError,
    load_system_config,
    system_description,
)

log = logging.getLogger("tools.campaign")

REPO = Path(__file__).resolve().parents[2]
RUN_PY = REPO / "run.py"
QUICK_RULES_FILE = "quick-mlperf.conf"
#: a quick campaign's user.conf: the system's, with what LoadGen expects of this machine measured first
QUICK_USER_FILE = "quick-user.conf"
#: a quick campaign expects Offline to run at this multiple of the rate its calibration run measured, so that a
#: quick run's query (LoadGen adds 10 %) lasts 2.2 x its minimum duration at that pace, and at least its minimum
#: duration on a machine up to 2.2 x faster
QUICK_OFFLINE_MARGIN = 2.0
#: the calibration runs of a quick campaign: one short run.py run per scenario (Offline's sizes itself), each
#: in ``calibration/``
QUICK_CALIBRATION_SECONDS = 2
LOCK_FILE = "campaign.lock"
#: run.py's exit statuses (see its --help) other than 0 and 1 stop a campaign with these statuses (any other,
#: such as a run killed by a signal, with 3)
STOPPING_STATUSES = {2: 2, 3: 3, 130: 130, 143: 143}
#: Linux's prctl option that sends a child a signal when its parent dies (a campaign killed with SIGKILL)
PR_SET_PDEATHSIG = 1


class CampaignStopped(Exception):
    """SIGINT or SIGTERM reached the campaign; ``status`` is its exit status (130 or 143)."""

    def __init__(self, status: int):
        super().__init__(f"stopped by {'SIGINT' if status == 130 else 'SIGTERM'}")
        self.status = status


@dataclass
class Campaign:
    """One campaign as asked: where, what, under which files; ``manifest`` holds its state."""

    folder: Path
    system: SystemConfig
    system_type: str
    plan: list[PlannedRun]
    mlperf_conf: Path
    user_conf: Path
    precision: str
    backend: str
    dataset_path: Path | None
    retries: int
    quick: bool
    manifest: Manifest
    #: the run folder each finished run name uses in the tree
    chosen: dict[str, Path] = field(default_factory=dict)
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    #: time.monotonic() when the runs began
    started: float = 0.0

    def runs_fingerprint(self) -> Fingerprint:
        """What each of the campaign's runs must share: the manifest's fingerprint, with the sha256 of the user.conf
        its runs load (a quick campaign's own ``quick-user.conf``, made from the one the fingerprint names)."""
        return replace(self.manifest.fingerprint, user_conf_sha256=sha256_of_file(self.user_conf))


def _die_with_parent() -> None:
    """In the child: get SIGTERM when the campaign dies, even by SIGKILL (it then records 'interrupted')."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass  # not Linux: a child outlives a killed campaign, and the lock keeps a second one out meanwhile


def minutes(seconds: float) -> str:
    """``seconds`` as h:mm:ss."""
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def fingerprint_now(backend: str, precision: str, mlperf_conf: Path, user_conf: Path, scenarios: tuple[str, ...],
                    quick: bool) -> Fingerprint:
    """The fingerprint of a campaign started now from this checkout."""
    git = git_commit()
    return Fingerprint(str(git["commit"]), sha256_of_file(DEFAULT_WEIGHTS), backend, precision,
                       sha256_of_file(mlperf_conf), sha256_of_file(user_conf), scenarios, quick)


def check_system(config: SystemConfig, asked_type: str | None) -> str:
    """The system type to plan for; :class:`CampaignError` when ``--type`` contradicts the YAML or the system
    description would not pass the submission checker."""
    if asked_type is not None and layout.SYSTEM_TYPES[asked_type] != layout.SYSTEM_TYPES[config.system_type]:
        raise CampaignError(f"--type {asked_type}, but {config.path} says system_type: {config.system_type}; "
                            "make them agree (the tree's scenarios follow the system type)")
    with tempfile.TemporaryDirectory(prefix="campaign-system-") as scratch:
        base = Path(scratch) / config.division / config.submitter
        path = base / layout.system_file(config.system_id)
        path.parent.mkdir(parents=True)
        write_text_atomically(path, json.dumps(system_description(config), indent=2) + "\n")
        checker = SubmissionChecker(DEFAULT_MLPERF_CONF)
        checker.check_description(path, config.system_id, base)
    if checker.problems:
        listed = "; ".join(problem.message for problem in checker.problems)
        raise CampaignError(f"the system description from {config.path} would fail the submission checker: {listed}")
    return config.system_type


def check_folder(folder: Path, fingerprint: Fingerprint) -> Manifest:
    """The manifest to go on with: the folder's own when it holds this campaign, a new one for a new or empty
    folder; :class:`CampaignError` for a folder of another campaign or of other files."""
    if folder.exists() and not folder.is_dir():
        raise CampaignError(f"--folder {folder} is a file; pass a folder for the campaign")
    manifest = load_manifest(folder) if folder.is_dir() else None
    if manifest is None:
        if folder.is_dir() and any(folder.iterdir()):
            raise CampaignError(f"--folder {folder} holds files but no campaign manifest; pass a new or empty folder")
        return Manifest(fingerprint)
    differences = fingerprint.differences(manifest.fingerprint)
    if differences:
        raise CampaignError(f"--folder {folder} holds another campaign's manifest ({'; '.join(differences)}); its runs "
                            "cannot go into this tree: pass another --folder, or run that campaign's own command")
    return manifest


def free_bytes(path: Path) -> int:
    """Bytes free on the disk that holds ``path``."""
    return shutil.disk_usage(path).free


def check_disk(folder: Path, plan: list[PlannedRun], manifest: Manifest) -> None:
    """:class:`CampaignError` when the disk holding ``folder`` has less room than the runs still to make need."""
    existing = folder if folder.exists() else next(parent for parent in folder.parents if parent.exists())
    left = [run for run in plan if not any(one.good for one in manifest.runs.get(run.name, []))]
    needed, free = needed_bytes(left), free_bytes(existing)
    if free < needed:
        raise CampaignError(f"the disk of {existing} has {free / 1e9:.1f} GB free; the plan's runs and tree need about "
                            f"{needed / 1e9:.1f} GB: free some space or pass a --folder on another disk")


def print_plan(campaign: Campaign) -> None:
    kind = "quick campaign (10 s runs, NOT valid for submission)" if campaign.quick else "campaign under the full rules"
    print(f"Plan: {campaign.system.system_name} ({campaign.system_type}), {campaign.backend} {campaign.precision}, "
          f"{kind}, in {campaign.folder}")
    print(f"      rules {campaign.mlperf_conf}, tuning {campaign.user_conf}")
    for number, run in enumerate(campaign.plan, 1):
        print(f"  {number}. {run.scenario:<12} {run.kind:<11} expected {minutes(run.expected_s)}")
    total = sum(run.expected_s for run in campaign.plan)
    print(f"  total expected {minutes(total)} (from the settings; reused runs take none)", flush=True)


def run_command(campaign: Campaign, run: PlannedRun, output: Path) -> list[str]:
    """The run.py command line of ``run`` into ``output``."""
    command = [sys.executable, str(RUN_PY), "--scenario", run.scenario, "--backend", campaign.backend,
               "--precision", campaign.precision, "--mlperf-conf", str(campaign.mlperf_conf),
               "--user-conf", str(campaign.user_conf), "--output-dir", str(output)]
    if campaign.dataset_path is not None:
        command += ["--dataset-path", str(campaign.dataset_path)]
    if run.kind == "accuracy":
        command.append("--accuracy")
    elif run.kind == "TEST01":
        command += ["--compliance", "TEST01",
                    "--accuracy-run", str(campaign.chosen[f"{run.scenario}-accuracy"]),
                    "--performance-run", str(campaign.chosen[f"{run.scenario}-performance"])]
    return command


def _baselines(campaign: Campaign, run: PlannedRun) -> list[str]:
    if run.kind != "TEST01":
        return []
    return [str(campaign.chosen[f"{run.scenario}-{kind}"].relative_to(campaign.folder)) for kind in ("accuracy", "performance")]


def reusable(campaign: Campaign, run: PlannedRun) -> tuple[Path, Outcome] | None:
    """The last try of ``run`` when it finished well for this campaign (TEST01: against today's baselines)."""
    tries = campaign.manifest.runs.get(run.name, [])
    if not tries:
        return None
    last = tries[-1]
    if run.kind == "TEST01" and last.baselines != _baselines(campaign, run):
        return None
    folder = campaign.folder / last.folder
    outcome = outcome_of(folder, run.kind, campaign.runs_fingerprint())
    return (folder, outcome) if outcome.good else None


def make_try(campaign: Campaign, run: PlannedRun) -> tuple[Path, int]:
    """One new try of ``run``: a new folder, run.py in its own process, the manifest saved before and after."""
    tries = campaign.manifest.tries(run.name)
    number = len(tries) + 1
    while (campaign.folder / "runs" / f"{run.name}-{number}").exists():
        number += 1  # a folder of a try the manifest lost (a stop between its start and the save): kept as it is
    output = campaign.folder / "runs" / f"{run.name}-{number}"
    record = Try(str(output.relative_to(campaign.folder)), baselines=_baselines(campaign, run))
    tries.append(record)
    campaign.manifest.save(campaign.folder)
    log_path = campaign.folder / "logs" / f"{run.name}-{number}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    output.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as stream:
        process = subprocess.Popen(run_command(campaign, run, output), cwd=REPO, stdout=stream, stderr=subprocess.STDOUT,
                                   preexec_fn=_die_with_parent)
        try:
            status = process.wait()
        except CampaignStopped:
            _stop_child(process)
            record.exit_status = process.returncode
            campaign.manifest.save(campaign.folder)
            raise
    record.exit_status = status
    outcome = outcome_of(output, run.kind, campaign.runs_fingerprint())
    record.outcome, record.good = outcome.text, outcome.good
    campaign.manifest.save(campaign.folder)
    return output, status


def _stop_child(process: subprocess.Popen) -> None:
    """Let the child end its run recorded ('interrupted'): Ctrl-C reached it with the terminal's process group;
    otherwise (a signal to the campaign alone) it gets SIGTERM after a few seconds, SIGKILL after a minute."""
    for wait_s, then in ((5, signal.SIGTERM), (60, signal.SIGKILL)):
        try:
            process.wait(timeout=wait_s)
            return
        except subprocess.TimeoutExpired:
            process.send_signal(then)
    process.wait()


def make_run(campaign: Campaign, run: PlannedRun, head: str, note: str = "") -> int | None:
    """Make one try of ``run`` with its progress lines; it becomes the run the tree uses. A stopping exit
    status, or None to go on."""
    elapsed = time.monotonic() - campaign.started
    remaining = sum(r.expected_s for r in campaign.plan if r.name not in campaign.chosen) + \
        (run.expected_s if run.name in campaign.chosen else 0)
    print(f"{head}: starting (expected {minutes(run.expected_s)}; elapsed {minutes(elapsed)}, ETA {minutes(remaining)})"
          + note, flush=True)
    began = time.monotonic()
    output, status = make_try(campaign, run)
    outcome = outcome_of(output, run.kind, campaign.runs_fingerprint())
    print(f"{head}: {outcome.text} ({minutes(time.monotonic() - began)}) -> {output.relative_to(campaign.folder)}",
          flush=True)
    if status not in (0, 1):  # bad input, inference failed, stopped, or killed: nothing to go on with
        log_file = campaign.folder / "logs" / f"{output.name}.log"
        print(f"{head}: run.py ended with status {status}; its output is in {log_file}", flush=True)
        return STOPPING_STATUSES.get(status, 3)
    campaign.chosen[run.name], campaign.outcomes[run.name] = output, outcome
    return None


def execute(campaign: Campaign) -> int | None:
    """Every run of the plan, reusing what can be reused; a stopping exit status, or None when all were made.

    A TEST01 whose speed check alone failed is tried again with its performance run made again just before
    it: the pair measured back to back, as the first time (the machine's speed drifts over minutes, so a
    new TEST01 against an old performance run would be held against a moment that is gone)."""
    campaign.started = time.monotonic()
    total = len(campaign.plan)
    for number, run in enumerate(campaign.plan, 1):
        head = f"[{number}/{total}] {run.scenario} {run.kind}"
        found = reusable(campaign, run)
        if found is not None:
            campaign.chosen[run.name], campaign.outcomes[run.name] = found
            print(f"{head}: reused {found[0].relative_to(campaign.folder)} ({found[1].text})", flush=True)
            continue
        earlier = campaign.manifest.runs.get(run.name, [])
        if earlier:
            last = earlier[-1]
            why = outcome_of(campaign.folder / last.folder, run.kind, campaign.runs_fingerprint()).text
            if run.kind == "TEST01" and last.baselines != _baselines(campaign, run):
                why = "its accuracy or performance run was made again"
            print(f"{head}: {last.folder} not reused ({why}); making it again", flush=True)
        stopped = make_run(campaign, run, head)
        if stopped is not None:
            return stopped
        tries = 1 + (campaign.retries if run.kind == "TEST01" else 0)
        for attempt in range(2, tries + 1):
            if not campaign.outcomes[run.name].speed_only:
                break
            print(f"{head}: only the speed check failed (accuracy passed): making the performance run and TEST01 "
                  f"again, try {attempt} of {tries}", flush=True)
            performance = next(r for r in campaign.plan if r.scenario == run.scenario and r.kind == "performance")
            for again in (performance, run):
                stopped = make_run(campaign, again, f"[{number}/{total}] {again.scenario} {again.kind}",
                                   f", try {attempt} of {tries}")
                if stopped is not None:
                    return stopped
    return None


def finish(campaign: Campaign) -> int:
    """Pack, check and report the tree; print the table; the exit status."""
    tree = _fresh(campaign.folder / "submission")
    base = assemble([campaign.chosen[run.name] for run in campaign.plan], campaign.system.path, tree)
    labels, _ = checked_test_labels(dataset_root(campaign.dataset_path))
    checker = SubmissionChecker(campaign.mlperf_conf, labels)
    checker.check(base)
    report = write_report(tree, _fresh(campaign.folder / "report"))
    print_table(campaign)
    for problem in checker.problems:
        print(problem)
    print(f"Checker  : {checker.summary()}" + (f" (against {campaign.mlperf_conf.name}: NOT valid for submission)"
                                              if campaign.quick else ""))
    print(f"Tree     : {tree}\nReport   : {report}")
    good = all(outcome.good for outcome in campaign.outcomes.values())
    return 0 if good and not checker.problems else 1


def _fresh(path: Path) -> Path:
    """``path``, after moving an earlier one aside (``<name>.previous-N``): nothing earlier is written over."""
    if path.exists():
        number = 1
        while path.with_name(f"{path.name}.previous-{number}").exists():
            number += 1
        path.rename(path.with_name(f"{path.name}.previous-{number}"))
        log.info("the earlier %s is now %s.previous-%d", path, path.name, number)
    return path


def print_table(campaign: Campaign) -> None:
    rows = [("scenario", "result", "accuracy", "TEST01", "tries")]
    for scenario in campaign.manifest.fingerprint.scenarios:
        performance = campaign.outcomes.get(f"{scenario}-performance")
        accuracy = campaign.outcomes.get(f"{scenario}-accuracy")
        test01 = campaign.outcomes.get(f"{scenario}-TEST01")
        tries = "/".join(str(len(campaign.manifest.runs.get(f"{scenario}-{kind}", []))) for kind in
                         ("accuracy", "performance", "TEST01"))
        rows.append((scenario, performance.text if performance else "-", accuracy.text if accuracy else "-",
                     test01.text if test01 else "-", tries))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    print()
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    print("(tries: accuracy/performance/TEST01)")


@contextmanager
def locked(folder: Path) -> Iterator[None]:
    """Hold the folder's lock for the campaign's life (released by the system whatever ends the process)."""
    folder.mkdir(parents=True, exist_ok=True)
    stream = open(folder / LOCK_FILE, "a+")
    try:
        try:
            fcntl.flock(stream, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise CampaignError(f"another campaign is running in {folder}; wait for it or stop it first") from None
        yield
    finally:
        stream.close()


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """SIGINT and SIGTERM raise :class:`CampaignStopped` (130, 143), so the run in flight ends recorded."""
    def stop(signum, _frame):
        raise CampaignStopped(130 if signum == signal.SIGINT else 143)

    previous = {signum: signal.signal(signum, stop) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def default_folder(config: SystemConfig, precision: str, quick: bool) -> Path:
    return REPO / "results" / "campaigns" / f"{config.system_id}-{precision}{'-quick' if quick else ''}"


def prepare(args: argparse.Namespace) -> Campaign:
    """Every check before the first run; the campaign to execute."""
    config = load_system_config(args.system)
    system_type = check_system(config, args.type)
    scenarios = campaign_scenarios(system_type, args.optional)
    folder = (args.folder or default_folder(config, args.precision, args.quick)).resolve()
    user_conf = (args.user_conf or default_user_conf(args.precision)).resolve()
    mlperf_conf = args.mlperf_conf.resolve()
    for path in (mlperf_conf, user_conf):
        if not path.is_file():
            raise CampaignError(f"{path} is not a file; pass an existing --mlperf-conf / --user-conf")
    if args.quick:
        rules_text = quick_rules_text(mlperf_conf)
        rules = folder / QUICK_RULES_FILE
        if rules.is_file() and rules.read_text(encoding="utf-8") != rules_text:
            raise CampaignError(f"{rules} differs from the quick rules of {mlperf_conf}; pass another --folder")
        mlperf_conf = rules if rules.is_file() else _scratch_rules(rules_text)
    git = git_commit()
    if git["commit"] == "unknown":
        raise CampaignError(f"{REPO} is not a git checkout: a campaign's tree holds the code of its commit")
    fingerprint = fingerprint_now(args.backend, args.precision, mlperf_conf, user_conf, scenarios, args.quick)
    manifest = check_folder(folder, fingerprint)
    plan = plan_campaign(scenarios, mlperf_conf, user_conf)
    check_disk(folder, plan, manifest)
    if git["dirty"] and not args.dry_run:
        raise CampaignError(f"{REPO} has uncommitted changes: the tree's src/ holds the commit, so its runs must come "
                            "from that commit alone; commit or stash them first")
    return Campaign(folder, config, system_type, plan, mlperf_conf, user_conf, args.precision, args.backend,
                    args.dataset_path, args.retries, args.quick, manifest)


def quick_user_conf(campaign: Campaign) -> Path:
    """The user.conf of a quick campaign's runs (all of them, so that each scenario's runs load one file): the
    campaign's own, with what LoadGen expects of this machine measured first by one short run.py run per
    scenario (``calibration/``): Offline's ``target_qps`` at :data:`QUICK_OFFLINE_MARGIN` times the rate
    measured, SingleStream's and MultiStream's ``target_latency`` at the median latency measured divided by it.
    Fixed values cannot serve every machine: LoadGen prepares a query set for the minimum duration at the
    expected pace, and a machine faster than that runs out of queries early, INVALID (user.conf's 9,000
    samples/s of 2026-12-02 made a 10 s Offline query that a machine doing 20,000/s finished in 5 s). Written once per
    folder: a resumed campaign keeps it, so that its runs stay comparable."""
    path = campaign.folder / QUICK_USER_FILE
    if path.is_file():
        print(f"Quick campaign: what LoadGen expects of this machine as measured before ({QUICK_USER_FILE})",
              flush=True)
        return path
    quick_s = QUICK_MIN_DURATION_MS / 1e3
    planned = {run.scenario for run in campaign.plan}
    lines = [f"# A quick campaign's expectations of this machine (python -m tools.campaign --quick), measured by "
             f"{QUICK_CALIBRATION_SECONDS} s runs,", f"# so that each {quick_s:g} s run lasts at least {quick_s:g} s "
             f"on a machine up to {QUICK_OFFLINE_MARGIN * 1.1:.1f} x faster than it measured:"]
    said = []
    for scenario in (name for name in ("SingleStream", "MultiStream", "Offline") if name in planned):
        record = _calibration_run(campaign, scenario)
        if scenario == "Offline":
            measured = float(record.result.headline.value)
            target = round(QUICK_OFFLINE_MARGIN * measured)
            lines += [f"# Offline: {measured:,.0f} samples/s measured", f"seq2cnn.Offline.target_qps = {target}"]
            said.append(f"Offline {measured:,.0f} samples/s (expects {target:,})")
        else:
            median_ms = record.result.latencies_ns[50.0] / 1e6
            target_ms = median_ms / QUICK_OFFLINE_MARGIN
            lines += [f"# {scenario}: median latency {median_ms:.4f} ms measured",
                      f"seq2cnn.{scenario}.target_latency = {target_ms:.4f}"]
            said.append(f"{scenario} {median_ms:.3f} ms median (expects {target_ms:.3f} ms)")
    text = campaign.user_conf.read_text(encoding="utf-8").rstrip("\n") + "\n\n" + "\n".join(lines) + "\n"
    write_text_atomically(path, text)
    print(f"Quick campaign: measured {'; '.join(said)} -> {QUICK_USER_FILE}, which its runs load", flush=True)
    return path


def _calibration_run(campaign: Campaign, scenario: str) -> RunRecord:
    """One short run.py performance run of ``scenario`` into ``calibration/``: its record (VALID or not: only its
    measurements count); :class:`CampaignError` when it did not end well."""
    number = 1
    while (campaign.folder / "calibration" / f"{scenario}-{number}").exists():
        number += 1
    output = campaign.folder / "calibration" / f"{scenario}-{number}"
    output.parent.mkdir(parents=True, exist_ok=True)
    log_path = campaign.folder / "logs" / f"calibration-{scenario}-{number}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, str(RUN_PY), "--scenario", scenario, "--time", str(QUICK_CALIBRATION_SECONDS),
               "--backend", campaign.backend, "--precision", campaign.precision, "--mlperf-conf",
               str(campaign.mlperf_conf), "--user-conf", str(campaign.user_conf), "--output-dir", str(output)]
    if campaign.dataset_path is not None:
        command += ["--dataset-path", str(campaign.dataset_path)]
    print(f"Quick campaign: measuring {scenario} on this machine ({QUICK_CALIBRATION_SECONDS} s run -> "
          f"{output.relative_to(campaign.folder)})", flush=True)
    with open(log_path, "ab") as stream:
        process = subprocess.Popen(command, cwd=REPO, stdout=stream, stderr=subprocess.STDOUT,
                                   preexec_fn=_die_with_parent)
        try:
            status = process.wait()
        except CampaignStopped:
            _stop_child(process)
            raise
    try:
        record = read_run_record(output) if status in (0, 1) else None
    except RunRecordError:
        record = None
    if record is None or record.result is None or not record.result.latencies_ns or \
            record.result.headline is None:
        raise CampaignError(f"the quick campaign's {scenario} calibration run ended with status {status} and no "
                            f"measurement; its output is in {log_path}")
    return record


def _scratch_rules(text: str) -> Path:
    """The quick rules in a temporary file until the folder exists (the plan and fingerprint read them)."""
    handle, name = tempfile.mkstemp(prefix="quick-mlperf-", suffix=".conf")
    with os.fdopen(handle, "w", encoding="utf-8") as stream:
        stream.write(text)
    _SCRATCH.append(Path(name))
    return Path(name)


#: the scratch quick rules of this process, removed at its end when they never reached a folder
_SCRATCH: list[Path] = []


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    parser = argparse.ArgumentParser(prog=prog, description=plain(__doc__), formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--system", type=Path, required=True, help="system YAML, e.g. configs/systems/example.yaml")
    parser.add_argument("--type", choices=list(layout.SYSTEM_TYPES), metavar="TYPE",
                        help="system type: edge, datacenter, or both as datacenter,edge (default: the YAML's "
                             "system_type)")
    parser.add_argument("--optional", action="store_true", help="also the type's optional scenarios (edge: MultiStream)")
    parser.add_argument("--folder", type=Path, help="the campaign's folder (default: results/campaigns/<system>-<precision>); "
                                                    "the same folder resumes a stopped campaign")
    parser.add_argument("--backend", default="folded", choices=["reference", "trimmed", "folded"])
    parser.add_argument("--precision", default="fp32", choices=list(PRECISIONS))
    parser.add_argument("--dataset-path", type=Path, help=DATASET_LOOKUP_HELP)
    parser.add_argument("--mlperf-conf", type=Path, default=DEFAULT_MLPERF_CONF, help="benchmark rules (default: %(default)s)")
    parser.add_argument("--user-conf", type=Path, help="system tuning (default: the shipped one of --precision)")
    parser.add_argument("--retries", type=int, default=2, help="more tries of a TEST01 whose speed check alone failed, "
                                                               "each with its performance run made again first "
                                                               "(default: %(default)s)")
    parser.add_argument("--quick", action="store_true", help="10 s runs: the whole chain in minutes, not valid for submission")
    parser.add_argument("--dry-run", action="store_true", help="check everything and print the plan; run nothing")
    args = parser.parse_args(argv)
    # the campaign speaks in its own lines on stdout; the packer's and the report's file-by-file INFO stays out
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.retries < 0:
        parser.error("--retries must be 0 or more")
    try:
        campaign = prepare(args)
        if args.dry_run:
            print_plan(campaign)
            if git_commit()["dirty"]:
                print("(the checkout has uncommitted changes: commit them before the campaign runs)")
            return 0
        with locked(campaign.folder), stop_on_signals():
            if campaign.quick and not (campaign.folder / QUICK_RULES_FILE).is_file():
                shutil.move(str(campaign.mlperf_conf), campaign.folder / QUICK_RULES_FILE)
                campaign.mlperf_conf = campaign.folder / QUICK_RULES_FILE
            campaign.manifest.save(campaign.folder)
            print_plan(campaign)
            if campaign.quick:
                campaign.user_conf = quick_user_conf(campaign)
            stopped = execute(campaign)
            if stopped is not None:
                print_table(campaign)
                return stopped
            return finish(campaign)
    except CampaignStopped as stop:
        print(f"campaign {stop}; run the same command again to go on from here", file=sys.stderr)
        return stop.status
    except (CampaignError, SystemConfigError, SubmissionError, ConfigError, DatasetError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    finally:
        for scratch in _SCRATCH:  # quick rules that never moved into a campaign folder
            scratch.unlink(missing_ok=True)

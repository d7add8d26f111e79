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
run) or a run refused its input; 3 a run's inference failed, or an error of this program's own (its traceback
logged); 130 / 143 stopped by SIGINT / SIGTERM (run the same command again to go on).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from common.errors import EXIT_INFERENCE_FAILED, RunInterrupted, Seq2CNNError, run_command
from common.files import sha256_of_file
from common.text import plain
from model.precision import BACKEND_NAMES, PRECISIONS, check_precision
from qsl.locations import DATASET_LOOKUP_HELP
from qsl.reviews import checked_test_labels, dataset_root
from readback.provenance import git_commit
from sut.settings import DEFAULT_MLPERF_CONF, default_user_conf
from tools.campaign.launcher import (
    REPO,
    RunPySettings,
    locked,
    run_py_command_line,
    start_run_py,
    stop_on_signals,
    wait_for_run_py,
)
from tools.campaign.manifest import CampaignError, Fingerprint, Manifest, Try
from tools.campaign.outcome import Outcome, outcome_of
from tools.campaign.plan import PlannedRun, campaign_scenarios, plan_campaign
from tools.campaign.preflight import check_disk, check_folder, check_system, fingerprint_now
from tools.campaign.quick import keep_quick_rules, quick_rules, quick_user_conf
from tools.report.page import write_report
from tools.submission import layout
from tools.submission.checker import SubmissionChecker
from tools.submission.pack import assemble
from tools.submission.system_description import SystemConfig, load_system_config

log = logging.getLogger("tools.campaign")

#: run.py's exit statuses (see its --help) other than 0 and 1 stop a campaign with these statuses (any other,
#: such as a run killed by a signal, with 3)
STOPPING_STATUSES = {2: 2, 3: 3, 130: 130, 143: 143}


class CampaignRunFailed(Seq2CNNError):
    """A run of the campaign ended with a status other than 0 or 1 (bad input, inference failed, stopped, or
    killed): nothing to go on with. ``exit_code`` is the campaign's (:data:`STOPPING_STATUSES`)."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status
        self.exit_code = STOPPING_STATUSES.get(status, EXIT_INFERENCE_FAILED)


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

    def run_settings(self) -> RunPySettings:
        """What every run.py run of the campaign is given: its backend, precision, config files and dataset."""
        return RunPySettings(self.backend, self.precision, self.mlperf_conf, self.user_conf, self.dataset_path)


def clock_text(seconds: float) -> str:
    """``seconds`` as h:mm:ss."""
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def print_plan(campaign: Campaign) -> None:
    kind = "quick campaign (10 s runs, NOT valid for submission)" if campaign.quick else "campaign under the full rules"
    print(f"Plan: {campaign.system.system_name} ({campaign.system_type}), {campaign.backend} {campaign.precision}, "
          f"{kind}, in {campaign.folder}")
    print(f"      rules {campaign.mlperf_conf}, tuning {campaign.user_conf}")
    for number, run in enumerate(campaign.plan, 1):
        print(f"  {number}. {run.scenario:<12} {run.kind:<11} expected {clock_text(run.expected_s)}")
    total = sum(run.expected_s for run in campaign.plan)
    print(f"  total expected {clock_text(total)} (from the settings; reused runs take none)", flush=True)


def try_command_line(campaign: Campaign, run: PlannedRun, output: Path) -> list[str]:
    """The run.py command line of a try of ``run`` into ``output``: the campaign's settings, then its kind's
    options (TEST01's against the accuracy and performance runs the tree uses)."""
    options: list[str] = []
    if run.kind == "accuracy":
        options = ["--accuracy"]
    elif run.kind == "TEST01":
        options = ["--compliance", "TEST01",
                   "--accuracy-run", str(campaign.chosen[f"{run.scenario}-accuracy"]),
                   "--performance-run", str(campaign.chosen[f"{run.scenario}-performance"])]
    return run_py_command_line(run.scenario, output, campaign.run_settings(), *options)
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
    output.parent.mkdir(parents=True, exist_ok=True)
    process = start_run_py(try_command_line(campaign, run, output), log_path)
    try:
        status = wait_for_run_py(process)
    except RunInterrupted:  # the child ended first: its status recorded
        record.exit_status = process.returncode
        campaign.manifest.save(campaign.folder)
        raise
    record.exit_status = status
    outcome = outcome_of(output, run.kind, campaign.runs_fingerprint())
    record.outcome, record.good = outcome.text, outcome.good
    campaign.manifest.save(campaign.folder)
    return output, status


def make_run(campaign: Campaign, run: PlannedRun, head: str, note: str = "") -> None:
    """Make one try of ``run`` with its progress lines; it becomes the run the tree uses.
    :class:`CampaignRunFailed` when run.py ended with a status that stops the campaign."""
    elapsed = time.monotonic() - campaign.started
    remaining = sum(r.expected_s for r in campaign.plan if r.name not in campaign.chosen) + \
        (run.expected_s if run.name in campaign.chosen else 0)
    print(f"{head}: starting (expected {clock_text(run.expected_s)}; elapsed {clock_text(elapsed)}, "
          f"ETA {clock_text(remaining)})" + note, flush=True)
    began = time.monotonic()
    output, status = make_try(campaign, run)
    outcome = outcome_of(output, run.kind, campaign.runs_fingerprint())
    print(f"{head}: {outcome.text} ({clock_text(time.monotonic() - began)}) -> {output.relative_to(campaign.folder)}",
          flush=True)
    if status not in (0, 1):  # bad input, inference failed, stopped, or killed: nothing to go on with
        log_file = campaign.folder / "logs" / f"{output.name}.log"
        message = f"{head}: run.py ended with status {status}; its output is in {log_file}"
        print(message, flush=True)
        raise CampaignRunFailed(message, status)
    campaign.chosen[run.name], campaign.outcomes[run.name] = output, outcome


def execute(campaign: Campaign) -> None:
    """Every run of the plan, reusing what can be reused; :class:`CampaignRunFailed` when a run stops the
    campaign.

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
        make_run(campaign, run, head)
        tries = 1 + (campaign.retries if run.kind == "TEST01" else 0)
        for attempt in range(2, tries + 1):
            if not campaign.outcomes[run.name].speed_only:
                break
            print(f"{head}: only the speed check failed (accuracy passed): making the performance run and TEST01 "
                  f"again, try {attempt} of {tries}", flush=True)
            performance = next(r for r in campaign.plan if r.scenario == run.scenario and r.kind == "performance")
            for again in (performance, run):
                make_run(campaign, again, f"[{number}/{total}] {again.scenario} {again.kind}",
                         f", try {attempt} of {tries}")

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


def default_folder(config: SystemConfig, precision: str, quick: bool) -> Path:
    return REPO / "results" / "campaigns" / f"{config.system_id}-{precision}{'-quick' if quick else ''}"


def prepare(args: argparse.Namespace, scratch: Path) -> Campaign:
    """Every check before the first run; the campaign to execute. A quick campaign's rules wait in ``scratch``
    until its folder exists (:func:`tools.campaign.quick.quick_rules`)."""
    config = load_system_config(args.system)
    system_type = check_system(config, args.type)
    scenarios = campaign_scenarios(system_type, args.optional)
    folder = (args.folder or default_folder(config, args.precision, args.quick)).resolve()
    user_conf = (args.user_conf or default_user_conf(args.precision)).resolve()
    check_precision(args.backend, "cpu", args.precision)  # before any run: every run would refuse it
    mlperf_conf = args.mlperf_conf.resolve()
    for path in (mlperf_conf, user_conf):
        if not path.is_file():
            raise CampaignError(f"{path} is not a file; pass an existing --mlperf-conf / --user-conf")
    if args.quick:
        mlperf_conf = quick_rules(folder, mlperf_conf, scratch)
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


def run_campaign(campaign: Campaign) -> int:
    """The campaign in its folder, which it holds (:func:`~tools.campaign.launcher.locked`): its manifest and plan,
    a quick campaign's own files, every run, then the tree; the exit status."""
    if campaign.quick:
        campaign.mlperf_conf = keep_quick_rules(campaign.mlperf_conf, campaign.folder)
    campaign.manifest.save(campaign.folder)
    print_plan(campaign)
    if campaign.quick:
        campaign.user_conf = quick_user_conf(campaign.folder, [run.scenario for run in campaign.plan],
                                             campaign.run_settings())
    try:
        execute(campaign)
    except CampaignRunFailed as failed:  # its line said why: the table, and the run's status
        print_table(campaign)
        return failed.exit_code
    return finish(campaign)


def parse_args(argv: list[str] | None, prog: str | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=prog, description=plain(__doc__), formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--system", type=Path, required=True, help="system YAML, e.g. configs/systems/example.yaml")
    parser.add_argument("--type", choices=list(layout.SYSTEM_TYPES), metavar="TYPE",
                        help="system type: edge, datacenter, or both as datacenter,edge (default: the YAML's "
                             "system_type)")
    parser.add_argument("--optional", action="store_true", help="also the type's optional scenarios (edge: MultiStream)")
    parser.add_argument("--folder", type=Path, help="the campaign's folder (default: results/campaigns/<system>-<precision>); "
                                                    "the same folder resumes a stopped campaign")
    parser.add_argument("--backend", default="folded", choices=list(BACKEND_NAMES),
                        help="how every run computes the model, as run.py's --backend (default: %(default)s)")
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
    if args.retries < 0:
        parser.error("--retries must be 0 or more")
    return args


def campaign_command(args: argparse.Namespace) -> int:
    """The command once parsed: the checks, then the plan (``--dry-run``) or the campaign; its exit status. A stop
    by SIGINT or SIGTERM says how to go on and exits 130 or 143."""
    with tempfile.TemporaryDirectory(prefix="campaign-") as scratch:  # a quick campaign's rules until its folder exists
        campaign = prepare(args, Path(scratch))
        if args.dry_run:
            print_plan(campaign)
            if git_commit()["dirty"]:
                print("(the checkout has uncommitted changes: commit them before the campaign runs)")
            return 0
        try:
            with locked(campaign.folder), stop_on_signals():
                return run_campaign(campaign)
        except RunInterrupted as stop:
            print(f"campaign stopped by {signal.Signals(stop.signum).name}; run the same command again to go on "
                  "from here", file=sys.stderr)
            return stop.exit_code


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    args = parse_args(argv, prog)
    # the campaign speaks in its own lines on stdout; the packer's and the report's file-by-file INFO stays out
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return run_command(lambda: campaign_command(args), log)

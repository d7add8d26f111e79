"""A quick campaign's own files: its rules (``quick-mlperf.conf``) and what LoadGen expects of this machine
(``quick-user.conf``), measured first by short calibration runs.

A quick campaign runs under ``mlperf.conf`` with ``min_duration`` at 10 s (:func:`tools.campaign.plan.quick_rules_text`).
LoadGen prepares a query set for the minimum duration at the pace the user.conf expects; fixed values cannot
serve every machine: one faster than expected runs out of queries before the minimum duration, and its run is
INVALID. So one short ``run.py`` run per scenario (``calibration/``) measures this machine first, and the
campaign's runs load a user.conf that expects :data:`QUICK_EXPECTED_SPEEDUP` times what was measured.

Both files are written once per folder: a resumed campaign keeps them, so that its runs stay comparable. Until
the folder exists, the rules live in a scratch folder the caller owns (:func:`quick_rules`, then
:func:`keep_quick_rules`); this module holds no state of its own.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Iterable

from common.files import write_text_atomically
from readback.run_record import RunRecord, RunRecordError, read_run_record
from tools.campaign.launcher import RunPySettings, run_py, run_py_command_line
from tools.campaign.manifest import CampaignError
from tools.campaign.plan import QUICK_MIN_DURATION_MS, quick_rules_text

QUICK_RULES_FILE = "quick-mlperf.conf"
#: a quick campaign's user.conf: the system's, with what LoadGen expects of this machine measured first
QUICK_USER_FILE = "quick-user.conf"
#: the factor between what a calibration run measured and what LoadGen is told to expect: Offline's
#: ``target_qps`` is the rate measured times this, SingleStream's and MultiStream's ``target_latency`` the
#: median latency measured divided by it; so a quick run's query set (LoadGen adds 10 %) lasts 2.2 x its
#: minimum duration at the pace measured, and at least its minimum duration on a machine up to 2.2 x faster
QUICK_EXPECTED_SPEEDUP = 2.0
#: seconds of each calibration run: one short run.py run per scenario (Offline's sizes itself), each in
#: ``calibration/``
QUICK_CALIBRATION_SECONDS = 2
CALIBRATION_FOLDER = "calibration"


def quick_rules(folder: Path, mlperf_conf: Path, scratch: Path) -> Path:
    """The quick rules of ``mlperf_conf`` for a campaign in ``folder``: the folder's own file when it holds them,
    else a copy in ``scratch`` (a temporary folder of the caller's), which the plan and the fingerprint read
    until :func:`keep_quick_rules` moves it into the folder; :class:`CampaignError` when the folder holds others."""
    text = quick_rules_text(mlperf_conf)
    rules = folder / QUICK_RULES_FILE
    if rules.is_file():
        if rules.read_text(encoding="utf-8") != text:
            raise CampaignError(f"{rules} differs from the quick rules of {mlperf_conf}; pass another --folder")
        return rules
    copy = scratch / QUICK_RULES_FILE
    write_text_atomically(copy, text)
    return copy


def keep_quick_rules(rules: Path, folder: Path) -> Path:
    """The quick rules in ``folder``: ``rules`` moved there from the scratch folder unless it holds them already."""
    kept = folder / QUICK_RULES_FILE
    if not kept.is_file():
        shutil.move(str(rules), kept)
    return kept


def quick_user_conf(folder: Path, scenarios: Iterable[str], settings: RunPySettings) -> Path:
    """The user.conf of a quick campaign's runs in ``folder`` (all of them, so that each scenario's runs load
    one file): ``settings.user_conf``, with what LoadGen expects of this machine measured first by one
    calibration run of each of ``scenarios`` (:func:`calibration_run`): Offline's ``target_qps`` at
    :data:`QUICK_EXPECTED_SPEEDUP` times the rate measured, SingleStream's and MultiStream's ``target_latency``
    at the median latency measured divided by it. Written once per folder: a resumed campaign keeps it."""
    path = folder / QUICK_USER_FILE
    if path.is_file():
        print(f"Quick campaign: what LoadGen expects of this machine as measured before ({QUICK_USER_FILE})",
              flush=True)
        return path
    quick_s = QUICK_MIN_DURATION_MS / 1e3
    planned = set(scenarios)
    lines = [f"# A quick campaign's expectations of this machine (python -m tools.campaign --quick), measured by "
             f"{QUICK_CALIBRATION_SECONDS} s runs,", f"# so that each {quick_s:g} s run lasts at least {quick_s:g} s "
             f"on a machine up to {QUICK_EXPECTED_SPEEDUP * 1.1:.1f} x faster than it measured:"]
    said = []
    for scenario in (name for name in ("SingleStream", "MultiStream", "Offline") if name in planned):
        record = calibration_run(folder, scenario, settings)
        if scenario == "Offline":
            measured = float(record.result.headline.value)
            target = round(QUICK_EXPECTED_SPEEDUP * measured)
            lines += [f"# Offline: {measured:,.0f} samples/s measured", f"seq2cnn.Offline.target_qps = {target}"]
            said.append(f"Offline {measured:,.0f} samples/s (expects {target:,})")
        else:
            median_ms = record.result.latencies_ns[50.0] / 1e6
            target_ms = median_ms / QUICK_EXPECTED_SPEEDUP
            lines += [f"# {scenario}: median latency {median_ms:.4f} ms measured",
                      f"seq2cnn.{scenario}.target_latency = {target_ms:.4f}"]
            said.append(f"{scenario} {median_ms:.3f} ms median (expects {target_ms:.3f} ms)")
    text = settings.user_conf.read_text(encoding="utf-8").rstrip("\n") + "\n\n" + "\n".join(lines) + "\n"
    write_text_atomically(path, text)
    print(f"Quick campaign: measured {'; '.join(said)} -> {QUICK_USER_FILE}, which its runs load", flush=True)
    return path


def calibration_run(folder: Path, scenario: str, settings: RunPySettings) -> RunRecord:
    """One short run.py performance run of ``scenario`` into ``calibration/`` of ``folder``: its record (VALID or
    not: only its measurements count); :class:`CampaignError` when it did not end well."""
    number = 1
    while (folder / CALIBRATION_FOLDER / f"{scenario}-{number}").exists():
        number += 1
    output = folder / CALIBRATION_FOLDER / f"{scenario}-{number}"
    output.parent.mkdir(parents=True, exist_ok=True)
    log_path = folder / "logs" / f"calibration-{scenario}-{number}.log"
    print(f"Quick campaign: measuring {scenario} on this machine ({QUICK_CALIBRATION_SECONDS} s run -> "
          f"{output.relative_to(folder)})", flush=True)
    status = run_py(run_py_command_line(scenario, output, settings, "--time", str(QUICK_CALIBRATION_SECONDS)),
                    log_path)
    try:
        record = read_run_record(output) if status in (0, 1) else None
    except RunRecordError:
        record = None
    if record is None or record.result is None or not record.result.latencies_ns or \
            record.result.headline is None:
        raise CampaignError(f"the quick campaign's {scenario} calibration run ended with status {status} and no "
                            f"measurement; its output is in {log_path}")
    return record

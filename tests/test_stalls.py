"""A backend that stops answering ends the run with exit 3 within twice the stall bound, in every scenario;
the bound itself follows the batches measured so far, between its floor and ceiling.

The runs are real LoadGen runs over a backend that answers its first two batches at once and, on its third,
waits until the test releases it (a hang that the child process can end once ``run.main`` has returned, so
that LoadGen finishes and the next scenario can run in the same process). The bound comes from the run's own
options (``--stall-timeout 2 --stall-timeout-max 2``), not from this machine's speed.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from common.errors import EXIT_INFERENCE_FAILED
from readback.loadgen_log import TRACE_FILE
from readback.run_record import read_run_record
from sut.config import RunConfig, RunError
from sut.stall import STALL_FACTOR, BatchClock, StallLimits

REPO = Path(__file__).resolve().parent.parent
SCENARIOS = ("SingleStream", "MultiStream", "Offline", "Server")
BOUND_S = 2.0

#: the child: runs ``run.main`` once per case over a backend that hangs on its third batch; prints, per case,
#: the exit code and the seconds from the hang to main's return
CHILD = r"""
import json, sys, threading, time
import numpy as np
import run
from sut.loadgen_driver import loadgen_running


class HangingBackend:
    name = "hanging"

    def __init__(self):
        self.calls, self.release, self.hung_at = 0, threading.Event(), None

    def labels(self, token_ids):
        self.calls += 1
        if self.calls == 3:
            self.hung_at = time.monotonic()
            self.release.wait()
        return np.zeros(len(token_ids), dtype=np.int64)


run._end_process = lambda code: None  # the exit code is what main returns; the child goes on
outcomes = {}
for case in json.loads(sys.argv[1]):
    backend = HangingBackend()
    code = run.main(case["args"], backend=backend)
    returned = time.monotonic()
    outcomes[case["out"]] = {"code": code, "after_hang_s": None if backend.hung_at is None else returned - backend.hung_at}
    backend.release.set()  # the hung batch returns; the SUT answers the rest empty and LoadGen ends
    while loadgen_running():
        time.sleep(0.05)
print("OUTCOMES " + json.dumps(outcomes), flush=True)
"""


def scenario_args(scenario: str, dataset_path: Path) -> list[str]:
    """A 1 s run of 100 reviews whose third batch comes early, with a stall bound of :data:`BOUND_S`."""
    args = ["--scenario", scenario, "--dataset-path", str(dataset_path), "--count", "100", "--time", "1",
            "--stall-timeout", f"{BOUND_S:g}", "--stall-timeout-max", f"{BOUND_S:g}"]
    if scenario in ("Offline", "Server"):
        args += ["--qps", "200", "--max-batchsize", "8"]
    else:  # an expected latency of our own: no calibration, whose batches would count before LoadGen's
        args += ["--target-latency", "1"]
    return args


@pytest.mark.slow
def test_a_backend_that_hangs_ends_the_run_with_exit_3_within_twice_the_bound(dataset_path, tmp_path):
    cases = [{"out": str(tmp_path / scenario),
              "args": [*scenario_args(scenario, dataset_path), "--output-dir", str(tmp_path / scenario)]}
             for scenario in SCENARIOS]
    child = subprocess.run([sys.executable, "-c", CHILD, json.dumps(cases)], cwd=REPO, capture_output=True, text=True,
                           timeout=600, env=os.environ | {"PYTHONPATH": str(REPO)})
    found = re.search(r"^OUTCOMES (.*)$", child.stdout, re.MULTILINE)
    assert found, f"child ended with {child.returncode}:\n{child.stderr[-4000:]}"
    outcomes = json.loads(found.group(1))
    for scenario in SCENARIOS:
        outcome = outcomes[str(tmp_path / scenario)]
        assert outcome["code"] == EXIT_INFERENCE_FAILED, f"{scenario}: exit {outcome['code']}\n{child.stderr[-3000:]}"
        assert outcome["after_hang_s"] is not None and outcome["after_hang_s"] < 2 * BOUND_S, (scenario, outcome)
        record = read_run_record(tmp_path / scenario)
        assert record.status == "failed", record
        article = "an" if scenario == "Offline" else "a"
        assert f"inference stalled: {article} {scenario} batch of " in record.error, record.error
        assert f"past the stall bound of {BOUND_S:.1f} s" in record.error and "hanging backend" in record.error
        waited = float(re.search(r"for ([\d.]+) s without an answer", record.error).group(1))
        assert BOUND_S <= waited < 2 * BOUND_S
        assert not (tmp_path / scenario / TRACE_FILE).exists(), "a failed run keeps an empty trace file"
    assert "inference failed, run stopped: inference stalled" in child.stderr
    assert "error of this program's own" not in child.stderr


def test_the_bound_is_the_ceiling_until_a_batch_completes_then_follows_the_slowest_per_review():
    clock = BatchClock(StallLimits(floor_s=1.0, ceiling_s=50.0))
    assert clock.bound_s(10)[0] == 50.0 and "no batch had completed" in clock.bound_s(10)[1]
    clock.start(1, reviews=4)
    clock.stop(1)
    slowest = clock._slowest_s_per_review
    assert slowest > 0 and clock.completed == 1
    assert clock.bound_s(1)[0] == min(50.0, max(1.0, STALL_FACTOR * slowest))
    huge = int(50.0 / (STALL_FACTOR * slowest)) + 10  # a batch whose expected time is past the ceiling
    assert clock.bound_s(huge)[0] == 50.0


def test_a_batch_past_its_bound_is_named_and_one_within_it_is_not():
    clock = BatchClock(StallLimits(floor_s=0.05, ceiling_s=0.05))
    clock.start(7, reviews=3, batch="batch 7", where="Ray actor 1 (pid 42 on 127.0.0.1)")
    patient = BatchClock(StallLimits(floor_s=3600.0, ceiling_s=3600.0))
    patient.start(8, reviews=3)
    time.sleep(0.1)
    key, stall = clock.stalled()
    assert key == 7 and stall.reviews == 3 and stall.waited_s >= 0.05 and stall.bound_s == 0.05
    assert stall.message().startswith("inference stalled: batch 7 of 3 review(s) has been in Ray actor 1 (pid 42")
    assert "raise --stall-timeout" in stall.message()
    assert patient.stalled() is None
    clock.forget(7)
    assert clock.stalled() is None and clock.completed == 0  # a forgotten batch is not a measurement


def test_an_executor_that_watches_its_own_batches_gets_the_ceiling_only():
    clock = BatchClock(StallLimits(floor_s=1.0, ceiling_s=9.0), derived=False)
    clock.start(1, reviews=1)
    clock.stop(1)
    assert clock.bound_s(1)[0] == 9.0


@pytest.mark.parametrize(("floor", "ceiling"), [(0, None), (-1, None), (10, 5), (1, float("inf"))])
def test_a_stall_bound_that_cannot_work_is_refused_before_anything_loads(floor, ceiling):
    with pytest.raises(RunError, match="the stall bound needs 0 < --stall-timeout <= --stall-timeout-max"):
        RunConfig(stall_timeout_s=floor, stall_timeout_max_s=ceiling).check()


def test_the_ceiling_defaults_to_the_floor_when_the_floor_is_larger():
    assert RunConfig(stall_timeout_s=900).stall_limits == StallLimits(900, 900)
    assert RunConfig().stall_limits == StallLimits()

"""An exception raised by inference is an inference failure, whatever its Python type (``SystemExit`` and
``KeyboardInterrupt`` too), and so is a batch answered with a label too few: exit 3, ``run.json`` ``failed``,
the ``error:`` line and the record saying what happened, in every scenario, in this process and on Ray actors.

Each case is a real LoadGen run whose backend fails on its third batch. The runs of one scenario share a
child process (the dataset loads once there); ``run._end_process`` is replaced there so that the child
records each exit code and waits for LoadGen to end before the next run. On Ray, the actors run the real
trimmed backend (quick to start) with a failure planted in the actor class (defined in the child's
``__main__``, so Ray ships it to the actors by value), on one cluster on loopback that the five runs join.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from common.errors import EXIT_INFERENCE_FAILED
from readback.run_record import read_run_record

REPO = Path(__file__).resolve().parent.parent
#: the Python types a backend raises; DatasetError is one of the project's own bad-input types; SystemExit and
#: KeyboardInterrupt are no Exception, but from a backend they end the run as any error does
RAISED = ("ValueError", "TypeError", "MemoryError", "AssertionError", "DatasetError", "SystemExit", "KeyboardInterrupt")
#: a backend that raises nothing but answers its third batch with one label fewer than the batch's reviews
TOO_FEW_LABELS = "too-few-labels"
FAILURES = (*RAISED, TOO_FEW_LABELS)
SCENARIOS = ("SingleStream", "MultiStream", "Offline", "Server")

#: the child: runs ``run.main`` once per failure type and prints {failure: exit code} as JSON
CHILD = r"""
import json, sys, time
import numpy as np
import run
from qsl.errors import DatasetError
from sut.loadgen_driver import loadgen_running

ERRORS = {"ValueError": ValueError, "TypeError": TypeError, "MemoryError": MemoryError,
          "AssertionError": AssertionError, "DatasetError": DatasetError, "SystemExit": SystemExit,
          "KeyboardInterrupt": KeyboardInterrupt}


def raise_planted(failure):
    raise ERRORS[failure](f"planted {failure} in the third batch")


class FailingBackend:
    name = "failing"

    def __init__(self, failure):
        self.failure, self.calls = failure, 0

    def labels(self, token_ids):
        self.calls += 1
        labels = np.zeros(len(token_ids), dtype=np.int64)
        if self.calls == 3:
            if self.failure == "too-few-labels":
                return labels[1:]
            raise_planted(self.failure)
        return labels


def plant_in_ray_actors(failure):
    import sut.ray_pool as ray_pool

    class FailingActor(ray_pool.BackendActor):
        planted = failure
        calls = 0

        def labels(self, batch):
            FailingActor.calls += 1
            if FailingActor.calls == 3:
                raise_planted(self.planted)
            return super().labels(batch)

    ray_pool.BackendActor = FailingActor


run._end_process = lambda code: None  # the exit code is what main returns; the child goes on
codes = {}
for case in json.loads(sys.argv[1]):
    if case["ray"]:
        plant_in_ray_actors(case["failure"])
        backend = None
    else:
        backend = FailingBackend(case["failure"])
    codes[case["out"]] = run.main(case["args"], backend=backend)
    while loadgen_running():  # LoadGen ends its test on its own once every sample is answered
        time.sleep(0.05)
print("CODES " + json.dumps(codes), flush=True)
"""

#: a one-node Ray cluster on loopback for the runs to join; prints its address, lives until stdin closes
CLUSTER = """
import os, sys
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
from ray.cluster_utils import Cluster
cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "include_dashboard": False})
print(cluster.address, flush=True)
sys.stdin.read()
cluster.shutdown()
"""


#: seconds of a MultiStream run on a Ray actor of the trimmed backend: its queries run one after the other, each
#: 8 reviews on one thread (0.56 s here), so the third batch must come within the run on a machine 3x slower
RAY_MULTISTREAM_SECONDS = 4


def scenario_args(scenario: str, dataset_path: Path, seconds: float = 1) -> list[str]:
    """A short run of 100 reviews in which the third batch comes early in every scenario."""
    args = ["--scenario", scenario, "--dataset-path", str(dataset_path), "--count", "100", "--time", f"{seconds:g}"]
    if scenario in ("Offline", "Server"):
        args += ["--qps", "200", "--max-batchsize", "8"]
    else:  # an expected latency of our own: no calibration, whose batches would count before LoadGen's
        args += ["--target-latency", "1"]
    return args


def run_cases(cases: list[dict], env: dict[str, str] | None = None) -> dict[str, int]:
    child = subprocess.run([sys.executable, "-c", CHILD, json.dumps(cases)], cwd=REPO, capture_output=True,
                           text=True, timeout=600, env=os.environ | {"PYTHONPATH": str(REPO)} | (env or {}))
    found = re.search(r"^CODES (.*)$", child.stdout, re.MULTILINE)
    assert found, f"child ended with {child.returncode}:\n{child.stderr[-4000:]}"
    return {"codes": json.loads(found.group(1)), "stderr": child.stderr}


def failure_said(failure: str) -> str:
    """A pattern of what the run's error says of ``failure``, as the record and the ``error:`` line have it."""
    if failure == TOO_FEW_LABELS:
        return r"the failing backend answered a batch of (\d+) reviews with int64 labels of shape \((\d+),\)"
    planted = f"planted {failure} in the third batch"
    if failure in ("SystemExit", "KeyboardInterrupt"):
        return re.escape(f"{failure} raised inside the backend: {planted}")
    return re.escape(f"{failure}: {planted}")


def assert_failed(run_dir: Path, code: int, failure: str, stderr: str) -> None:
    assert code == EXIT_INFERENCE_FAILED, f"{run_dir.name}: exit {code}\n{stderr[-3000:]}"
    record = read_run_record(run_dir)
    said = re.search(failure_said(failure), record.error)
    assert record.status == "failed" and said, record.error
    if failure == TOO_FEW_LABELS:
        assert int(said.group(2)) == int(said.group(1)) - 1, said.group(0)
    assert re.search(f"^error: inference failed, run stopped: .*{failure_said(failure)}", stderr, re.MULTILINE), \
        stderr[-3000:]


@pytest.mark.slow
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_any_error_in_a_local_backend_is_exit_3_and_a_failed_run(scenario, dataset_path, tmp_path):
    cases = [{"ray": False, "failure": failure, "out": str(tmp_path / failure),
              "args": [*scenario_args(scenario, dataset_path), "--output-dir", str(tmp_path / failure)]}
             for failure in FAILURES]
    result = run_cases(cases)
    for failure in FAILURES:
        assert_failed(tmp_path / failure, result["codes"][str(tmp_path / failure)], failure, result["stderr"])
    assert "error of this program's own" not in result["stderr"]


@pytest.fixture(scope="module")
def loopback_cluster(ray_installed):
    """The address of a one-node Ray cluster on 127.0.0.1 (and the token its clients need). Its temp folder is
    one of its own (``RAY_TMPDIR``): Ray's cluster helper writes ``ray/ray_current_cluster`` there, and would
    otherwise replace and then delete the one in ``/tmp/ray``, whatever a user's ``ray start`` had put there."""
    auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": os.urandom(16).hex(), "RAY_USAGE_STATS_ENABLED": "0"}
    # short: Ray's socket paths under it must fit in 107 bytes
    temp = tempfile.mkdtemp(prefix="seq2cnn-ray-", dir="/tmp")
    helper = subprocess.Popen([sys.executable, "-c", CLUSTER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=os.environ | auth | {"RAY_TMPDIR": temp})
    try:
        address = helper.stdout.readline().strip()
        assert re.fullmatch(r"127\.0\.0\.1:\d+", address), address or helper.stderr.read()[-3000:]
        yield address, auth
    finally:
        helper.stdin.close()
        helper.wait(timeout=120)
        shutil.rmtree(temp, ignore_errors=True)


#: on Ray, each failure type in one scenario, each scenario at least once (a run on Ray costs ~10 s here)
RAY_CASES = [("SingleStream", "ValueError"), ("MultiStream", "TypeError"), ("Offline", "MemoryError"),
             ("Server", "AssertionError"), ("SingleStream", "DatasetError")]


@pytest.mark.slow
def test_any_error_in_a_ray_actor_backend_is_exit_3_and_a_failed_run(loopback_cluster, dataset_path, tmp_path):
    address, auth = loopback_cluster
    cases = [{"ray": True, "failure": failure, "out": str(tmp_path / f"{scenario}-{failure}"),
              "args": [*scenario_args(scenario, dataset_path, RAY_MULTISTREAM_SECONDS if scenario == "MultiStream" else 1),
                       "--ray", "--ray-address", address, "--backend", "trimmed",
                       "--ray-actors", "1", "--ray-actor-cpus", "1", "--output-dir", str(tmp_path / f"{scenario}-{failure}")]}
             for scenario, failure in RAY_CASES]
    result = run_cases(cases, env=auth)
    for scenario, failure in RAY_CASES:
        out = tmp_path / f"{scenario}-{failure}"
        assert_failed(out, result["codes"][str(out)], failure, result["stderr"])
        assert read_run_record(out).cluster is not None
    assert "error of this program's own" not in result["stderr"]

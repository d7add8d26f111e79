"""The SUT on Ray actors (``run.py --ray``): real Ray, real LoadGen runs, real reviews and weights.

Every Ray instance is started by the run (or, for the two-node cluster and the ``ray start`` cluster, by the
test) and stopped with it, bound to 127.0.0.1. Faults are real: actor processes are stopped (SIGSTOP, so that
they hold their batches) and killed (SIGKILL) while the run goes on.

The tests leave nothing of Ray that changes a later run: a cluster a test starts keeps its files (among them
``ray_current_cluster``, which a later ``ray.init()`` would join) in a temp folder of its own, and the last test
checks that no Ray process of these tests is left and that Ray's own ``ray_current_cluster`` is as it was.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from conftest import require_installed

from model.weights import WeightsError
from readback.accuracy import decode_accuracy_log
from readback.cluster import ActorInfo, ClusterInfo, NodeInfo
from sut.ray_actor import stage_weights
from sut.ray_cluster import ClusterError, check_reachable, ray_address_file
from sut.ray_wire import decode_batch, decode_result, encode_batch, encode_result

REPO = Path(__file__).resolve().parent.parent
#: Ray must be there in CI (the Makefile installs it); elsewhere its tests are skipped without it
try:
    import ray  # noqa: F401 - only whether it imports
    HAVE_RAY = True
except ImportError:
    if os.environ.get("CI"):
        raise
    HAVE_RAY = False
needs_ray = pytest.mark.skipif(not HAVE_RAY, reason="Ray is not installed: pip install -e '.[ray]'")
#: how long a run on Ray may take before the test calls it hung (s): generous, for slow machines
RUN_TIMEOUT_S = 600
ACTOR_READY = re.compile(r"Ray actor (\d+) ready: pid (\d+)")


#: the variable, set for this module's tests, that marks every process they start (Ray's inherit it)
SUITE_MARK = "SEQ2CNN_RAY_TESTS"
#: how long the Ray processes of a stopped instance may take to end (s): Ray drains a node for up to 30 s
RAY_EXIT_TIMEOUT_S = 60
#: Ray's variables that would point a run at a cluster or a token other than a test's own
RAY_ADDRESS_AND_AUTH = ("RAY_ADDRESS", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")


def file_state(path: Path) -> str | None:
    """The text of ``path``, None where there is no such file."""
    try:
        return path.read_text()
    except FileNotFoundError:
        return None


@contextlib.contextmanager
def ray_temp_root():
    """A temp folder of the test's own for Ray's files (its sessions and ``ray_current_cluster``): under /tmp,
    since Ray's Unix socket paths in it must stay under 108 bytes; deleted afterwards."""
    root = Path(tempfile.mkdtemp(prefix="seq2cnn-ray-", dir="/tmp"))
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def closed_port() -> int:
    """A port on 127.0.0.1 where nothing listens (free when asked)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def ray_processes_of_the_tests(mark: str) -> list[str]:
    """``PID NAME COMMAND`` of each Ray process (raylet, gcs_server, ``ray::`` workers, Ray's Python helpers,
    ``ray start``) alive now whose environment holds ``SUITE_MARK=mark``: one started by these tests."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if f"{SUITE_MARK}={mark}".encode() not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            name = (entry / "comm").read_text().strip()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:  # ended meanwhile, or not ours to read
            continue
        if name in ("raylet", "gcs_server") or name.startswith("ray::") or "/ray/" in command or "bin/ray " in command:
            found.append(f"{entry.name} {name} {command[:160]}")
    return found


@pytest.fixture(scope="module", autouse=True)
def ray_left_behind():
    """Marks the processes this module's tests start (:data:`SUITE_MARK` in the environment, which Ray's
    processes inherit) and records Ray's ``ray_current_cluster`` before them, for the module's last test."""
    mark = f"{os.getpid()}-{os.urandom(4).hex()}"
    address_file = ray_address_file()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(SUITE_MARK, mark)
        yield {"mark": mark, "address_file": address_file, "address_before": file_state(address_file)}


def run_command(*args: str) -> list[str]:
    return [sys.executable, "run.py", *args]


class LiveRun:
    """``run.py`` in a child process whose log lines the test reads as they come."""

    def __init__(self, *args: str, env: dict[str, str] | None = None):
        self.lines: list[str] = []
        self.process = subprocess.Popen(run_command(*args), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        text=True, env=os.environ | {"PYTHONPATH": str(REPO)} | (env or {}))
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line)

    def wait_for_line(self, pattern: str, count: int = 1, timeout_s: float = RUN_TIMEOUT_S) -> list[re.Match]:
        deadline = time.monotonic() + timeout_s
        while True:
            matches = [match for line in list(self.lines) if (match := re.search(pattern, line))]
            if len(matches) >= count:
                return matches
            if self.process.poll() is not None:
                self._reader.join(timeout=5)
                pytest.fail(f"the run ended before logging {pattern!r}:\n{self.output[-4000:]}")
            if time.monotonic() > deadline:
                self.process.kill()
                pytest.fail(f"the run did not log {pattern!r} within {timeout_s:.0f} s:\n{self.output[-4000:]}")
            time.sleep(0.02)

    def actor_pids(self, count: int) -> list[int]:
        return [int(match.group(2)) for match in self.wait_for_line(ACTOR_READY.pattern, count)]

    def finish(self, timeout_s: float = RUN_TIMEOUT_S) -> int:
        code = self.process.wait(timeout=timeout_s)
        self._reader.join(timeout=10)
        return code

    @property
    def output(self) -> str:
        return "".join(self.lines)


def record_of(run_dir: Path) -> dict:
    return json.loads((run_dir / "run.json").read_text())


def assert_each_sample_completed_once(record: dict, expected: int | None = None) -> None:
    samples = record["samples"]
    assert samples["issued"] == samples["completed"] > 0
    assert samples["never_completed"] == samples["completed_more_than_once"] == samples["completed_not_issued"] == 0
    if expected is not None:
        assert samples["issued"] == expected


def logged_labels(run_dir: Path, count: int) -> np.ndarray:
    accuracy_log = decode_accuracy_log(run_dir / "mlperf_log_accuracy.json", count)
    assert accuracy_log.is_valid, accuracy_log.problems()
    return accuracy_log.predictions


@pytest.fixture(scope="module")
def local_labels(test_split, folded_backend) -> np.ndarray:
    """The local folded backend's labels of all 25,000 test reviews, in sample order."""
    reviews = [ids[:1000] for ids in test_split.token_ids]
    return np.concatenate([folded_backend.labels(reviews[start:start + 2048]) for start in range(0, len(reviews), 2048)])


# Without Ray, and bad requests: refused before anything loads -----------------------------------

def test_without_ray_installed_the_flag_says_how_to_install_it(tmp_path):
    blocked = ("import sys; sys.modules['ray'] = None; import run; "
               f"sys.exit(run.main(['--scenario', 'Offline', '--ray', '--output-dir', {str(tmp_path / 'run')!r}]))")
    result = subprocess.run([sys.executable, "-c", blocked], cwd=REPO, capture_output=True, text=True, timeout=120,
                            env=os.environ | {"PYTHONPATH": str(REPO)})
    assert result.returncode == 2, result.stderr
    assert "pip install -e '.[ray]'" in result.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("options", [["--ray-actors", "2"], ["--ray-address", "auto"], ["--ray-actor-cpus", "1"]])
def test_ray_options_without_ray_are_refused(options, tmp_path, capsys):
    import run

    assert run.main(["--scenario", "Offline", *options, "--output-dir", str(tmp_path / "run")]) == 2
    assert "add --ray" in capsys.readouterr().err


@pytest.mark.parametrize(("address", "message"), [("127.0.0.1:1", "no Ray cluster answers at 127.0.0.1:1"),
                                                  ("head-without-port", "is not auto or HOST:PORT")])
def test_a_cluster_address_where_nothing_answers_is_a_prompt_error(address, message):
    started = time.monotonic()
    with pytest.raises(ClusterError, match=message):
        check_reachable(address, timeout_s=5.0)
    assert time.monotonic() - started < 30


@needs_ray
@pytest.mark.parametrize("variables", [{}, {"TMPDIR": "/var/tmp/x"}, {"RAY_TMPDIR": "/srv/r", "TMPDIR": "/var/t"}])
def test_the_address_file_is_where_ray_looks_for_it(variables, monkeypatch):
    """``ray_current_cluster``, which ``--ray-address auto`` reads and a local run must not: where Ray's own
    ``ray.init()`` finds it, for each of the variables that move Ray's temp folder."""
    from ray._common.utils import get_ray_address_file

    for variable in ("RAY_TMPDIR", "TMPDIR"):
        monkeypatch.delenv(variable, raising=False)
    for variable, value in variables.items():
        monkeypatch.setenv(variable, value)
    assert ray_address_file() == Path(get_ray_address_file(None))


def test_a_batch_and_its_answer_travel_as_one_message_each_and_come_back_whole(test_split):
    reviews = [test_split.token_ids[index] for index in (0, 5, 17)] + [np.zeros(0, np.int32)]
    sample_ids = np.array([2**63 + 5, 7, 0, 2**64 - 1], dtype=np.uint64)
    decoded_ids, decoded = decode_batch(encode_batch(sample_ids, reviews))
    assert np.array_equal(decoded_ids, sample_ids) and len(decoded) == len(reviews)
    for original, unpacked in zip(reviews, decoded, strict=True):
        assert unpacked.dtype == np.int32 and np.array_equal(original, unpacked)
    labels = np.array([1, 0, 1, 1])
    ids, answered, compute_ns = decode_result(encode_result(sample_ids, labels, 12345))
    assert np.array_equal(ids, sample_ids) and np.array_equal(answered, labels) and compute_ns == 12345
    assert decode_batch(encode_batch(np.zeros(0, np.uint64), []))[1] == []


def test_weights_that_arrive_damaged_are_refused_before_serving(tmp_path, monkeypatch):
    monkeypatch.setenv("SEQ2CNN_CACHE_DIR", str(tmp_path))
    weights = (REPO / "model" / "seq2cnn.safetensors").read_bytes()
    expected = (REPO / "model" / "seq2cnn.safetensors.sha256").read_text().split()[0]
    staged = stage_weights(weights, expected, "seq2cnn.safetensors")
    assert staged.read_bytes() == weights
    with pytest.raises(WeightsError, match="damaged on the way"):
        stage_weights(weights[:-1] + b"\0", expected, "seq2cnn.safetensors")



def test_the_actors_module_loads_nothing_of_the_driver():
    """Every Ray worker imports the actor's module (Ray ships the class by reference): it brings neither the
    driver's pool, cluster or stall watch, nor Ray itself."""
    code = ("import sys, sut.ray_actor; print(sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.') "
            "or m in ('sut.ray_pool', 'sut.ray_cluster', 'sut.stall', 'sut.config', 'readback.cluster')))")
    loaded = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert loaded.stdout.strip() == "[]", loaded.stderr

def two_node_cluster() -> ClusterInfo:
    nodes = [NodeInfo(f"node{i}", f"10.0.0.{i}", 8.0, 1.0, 64 << 30) for i in (1, 2)]
    actors = [ActorInfo(i, f"node{i + 1}", f"10.0.0.{i + 1}", 1000 + i, "cuda", [str(i)], 1.0, None) for i in (0, 1)]
    return ClusterInfo("10.0.0.1:6379", "2.60.0", nodes, actors)


def test_the_system_description_counts_the_nodes_the_actors_used_and_names_ray():
    from tools.submission.system_description import SystemConfig, system_description

    config = SystemConfig(Path("box.yaml"), "Team", "Box", "closed", "available", "datacenter")
    description = system_description(config, two_node_cluster())
    assert description["number_of_nodes"] == 2
    assert "Ray 2.60.0: 2 backend actor(s) on cuda, over 2 of the cluster's 2 node(s)" in description["sw_notes"]
    assert system_description(config)["number_of_nodes"] == 1


def test_measurements_say_how_a_run_on_ray_was_spread():
    from tools.submission.documents import ray_description

    spread = ray_description(two_node_cluster())
    assert spread["nodes_with_actors"] == 2 and [actor["gpus"] for actor in spread["actors"]] == [["0"], ["1"]]


# Real runs on Ray -----------------------------------------------------------------------------

@needs_ray
@pytest.mark.slow
def test_offline_accuracy_on_two_actors_gives_the_local_labels(tmp_path, local_labels):
    run_dir = tmp_path / "run"
    result = subprocess.run(run_command("--scenario", "Offline", "--accuracy", "--ray", "--ray-actors", "2",
                                        "--ray-actor-cpus", "1", "--output-dir", str(run_dir)),
                            cwd=REPO, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    assert result.returncode == 0, result.stderr[-4000:]
    record = record_of(run_dir)
    assert_each_sample_completed_once(record, 25_000)
    assert np.array_equal(logged_labels(run_dir, 25_000), local_labels)
    cluster = record["cluster"]
    assert cluster["address"] == "local" and len(cluster["actors"]) == 2
    assert {actor["node_address"] for actor in cluster["actors"]} == {"127.0.0.1"}
    assert len({actor["pid"] for actor in cluster["actors"]}) == 2 and os.getpid() not in {a["pid"] for a in cluster["actors"]}
    assert cluster["actors_lost"] == 0 and "2 backend actor(s) on cpu" in result.stdout
    assert {actor["framework"] for actor in cluster["actors"]} == {record["backend"]["framework"]}
    assert record["backend"]["framework"].startswith("numba ")


@needs_ray
@pytest.mark.slow
@pytest.mark.parametrize(("scenario", "options"), [
    ("SingleStream", []), ("MultiStream", []), ("Server", ["--qps", "50"]),
])
def test_short_runs_on_ray_complete_every_sample(scenario, options, tmp_path):
    run_dir = tmp_path / "run"
    result = subprocess.run(run_command("--scenario", scenario, "--time", "2", *options, "--ray", "--output-dir",
                                        str(run_dir)), cwd=REPO, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    assert result.returncode == 0, result.stderr[-4000:]
    record = record_of(run_dir)
    assert record["status"] == "finished" and record["result"] is not None
    assert_each_sample_completed_once(record)
    assert len(record["cluster"]["actors"]) >= 1


@needs_ray
@pytest.mark.slow
def test_an_onnx_runtime_on_a_ray_actor_gives_the_local_labels(tmp_path, test_split, folded_backend):
    require_installed("onnxruntime")
    run_dir = tmp_path / "run"
    result = subprocess.run(run_command("--scenario", "Offline", "--accuracy", "--count", "200", "--ray",
                                        "--ray-actors", "1", "--backend", "onnxruntime-folded", "--output-dir",
                                        str(run_dir)), cwd=REPO, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    assert result.returncode == 0, result.stderr[-4000:]
    record = record_of(run_dir)
    assert_each_sample_completed_once(record, 200)
    reviews = [ids[:1000] for ids in test_split.head(200).token_ids]
    assert np.array_equal(logged_labels(run_dir, 200), folded_backend.labels(reviews))
    assert record["backend"]["framework"].startswith("ONNX Runtime ")
    assert [actor["framework"] for actor in record["cluster"]["actors"]] == [record["backend"]["framework"]]


@needs_ray
@pytest.mark.slow
def test_an_actor_killed_mid_offline_run_has_its_batches_resubmitted(tmp_path, local_labels):
    """Actor 0 is stopped before LoadGen starts, so it holds batches it cannot finish; killed once the query
    is issued, its batches must go to actor 1: every sample once, the same labels. The local Ray instance
    listens on loopback only."""
    run_dir = tmp_path / "run"
    live = LiveRun("--scenario", "Offline", "--accuracy", "--ray", "--ray-actors", "2", "--ray-actor-cpus", "1",
                   "--max-batchsize", "256", "--output-dir", str(run_dir))
    actors = live.actor_pids(2)
    victim = actors[0]
    os.kill(victim, signal.SIGSTOP)
    local_instance = [(where, name) for where, name, pid in listening_sockets()
                      if name in ("gcs_server", "raylet") or pid in (*actors, live.process.pid)]
    assert any(name == "gcs_server" for _, name in local_instance)
    assert all(is_loopback(where) for where, _ in local_instance), f"beyond loopback: {local_instance}"
    live.wait_for_line("Ray actor 0 took its first batch")  # the stopped actor now holds a batch it cannot finish
    os.kill(victim, signal.SIGKILL)
    assert live.finish() == 0, live.output[-4000:]
    record = record_of(run_dir)
    assert record["cluster"]["actors_lost"] == 1 and record["cluster"]["batches_resubmitted"] >= 1
    assert_each_sample_completed_once(record, 25_000)
    assert np.array_equal(logged_labels(run_dir, 25_000), local_labels)
    assert f"pid {victim}" in live.output and "resubmitted to actor 1" in live.output
    from tools.report.page import write_report

    page = write_report(run_dir, tmp_path / "report").read_text()
    assert "1 actor(s) lost" in page and f"<td>{victim}</td>" in page


@needs_ray
@pytest.mark.slow
def test_an_actor_stopped_and_never_killed_is_declared_hung_and_the_run_goes_on(tmp_path, local_labels):
    """Actor 0 is stopped (SIGSTOP) before LoadGen starts and never killed by the test: it takes batches it
    cannot answer. The pool's watch thread must declare it hung once a batch it holds is past the stall bound
    (here at least 2 s, at most 60 s), kill it, and send its batches to actor 1: exit 0, every sample once,
    the local run's labels, ``actors_hung`` 1."""
    run_dir = tmp_path / "run"
    live = LiveRun("--scenario", "Offline", "--accuracy", "--ray", "--ray-actors", "2", "--ray-actor-cpus", "1",
                   "--max-batchsize", "256", "--stall-timeout", "2", "--stall-timeout-max", "60",
                   "--output-dir", str(run_dir))
    victim = live.actor_pids(2)[0]
    os.kill(victim, signal.SIGSTOP)
    try:
        assert live.finish() == 0, live.output[-4000:]
    finally:
        with contextlib.suppress(ProcessLookupError):  # the pool killed it; if not, it must not outlive the test
            os.kill(victim, signal.SIGKILL)
    record = record_of(run_dir)
    cluster = record["cluster"]
    assert cluster["actors_hung"] == 1 and cluster["actors_lost"] == 0 and cluster["batches_resubmitted"] >= 1
    assert_each_sample_completed_once(record, 25_000)
    assert np.array_equal(logged_labels(run_dir, 25_000), local_labels)
    hung = re.search(r"Ray actor 0 \(pid (\d+) on 127\.0\.0\.1\) hung: batch \d+ of \d+ sample\(s\) unanswered for "
                     r"([\d.]+) s, past the stall bound of ([\d.]+) s", live.output)
    assert hung, live.output[-4000:]
    assert int(hung.group(1)) == victim and 2 <= float(hung.group(3)) <= 60
    assert "resubmitted to actor 1" in live.output and "1 hung and killed" in live.output
    ours = [line for line in live.lines if re.match(r"\d{4}-\d\d-\d\d [\d:,]+ WARNING ", line)]
    assert len(ours) == 1 and " hung: " in ours[0], ours  # the hung actor is the run's one warning


@needs_ray
@pytest.mark.slow
def test_all_actors_killed_stops_the_run_with_exit_3_not_a_hang(tmp_path):
    run_dir = tmp_path / "run"
    live = LiveRun("--scenario", "Offline", "--accuracy", "--ray", "--ray-actors", "2", "--ray-actor-cpus", "1",
                   "--max-batchsize", "256", "--output-dir", str(run_dir))
    pids = live.actor_pids(2)
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    live.wait_for_line("Offline accuracy run of")
    time.sleep(1.0)
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    killed = time.monotonic()
    assert live.finish(timeout_s=120) == 3, live.output[-4000:]
    assert time.monotonic() - killed < 120
    assert "all 2 Ray backend actors died" in live.output
    record = record_of(run_dir)
    assert record["status"] == "failed" and "NoActorsLeftError" in record["error"]
    assert record["cluster"]["actors_lost"] == 2


@needs_ray
@pytest.mark.slow
def test_a_pool_abandoned_mid_run_keeps_the_threads_that_answered_loadgen(test_split):
    """After a failure LoadGen's test still runs; a thread that answered it must not end then (LoadGen's log
    thread reads that thread's buffers: a segfault instead of exit 3). abandon() answers every batch and stops
    the actors, and leaves the pool's completion and watch threads parked."""
    from model.paths import DEFAULT_WEIGHTS
    from sut.ray_cluster import RayCluster
    from sut.ray_pool import ActorPool, actor_spec

    cluster = RayCluster(None).start()
    try:
        pool = ActorPool(cluster, actor_spec("trimmed", "cpu", "fp32", 1, 1, DEFAULT_WEIGHTS), DEFAULT_WEIGHTS, 1)
        answered: list[str] = []
        done = threading.Event()
        reviews = [ids[:1000] for ids in test_split.token_ids[:8]]
        pool.submit(np.arange(8), reviews, lambda ids, labels: (answered.append("result"), done.set()),
                    lambda ids, error: (answered.append("error"), done.set()))
        pool.abandon()
        assert done.wait(timeout=60) and len(answered) == 1  # answered once, by its result or as abandoned
        names = {thread.name for thread in threading.enumerate() if thread.is_alive()}
        assert {"ray-completion", "ray-stall-watch"} <= names
    finally:
        cluster.stop()


@needs_ray
@pytest.mark.slow
@pytest.mark.parametrize(("options", "message"), [
    (["--device", "cuda"], "the Ray cluster has none"),
    (["--ray-actor-cpus", "100000"], "fits on no node of the Ray cluster"),
    (["--ray-actors", "100000", "--ray-actor-cpus", "1"], "lower --ray-actors or --ray-actor-cpus"),
])
def test_actors_the_cluster_cannot_hold_are_a_clear_error(options, message, tmp_path):
    result = subprocess.run(run_command("--scenario", "Offline", "--time", "1", "--ray", *options, "--output-dir",
                                        str(tmp_path / "run")), cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr[-3000:]
    assert message in result.stderr


TWO_NODES = """
import os, sys, time
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"   # nodes on 127.0.0.1 bind to loopback only
from ray.cluster_utils import Cluster
cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
cluster.add_node(num_cpus=1)
print(cluster.address, flush=True)
sys.stdin.read()   # until the test closes stdin
cluster.shutdown()
"""


def listening_sockets() -> list[tuple[str, str, int]]:
    """(local address, process name, pid) of every listening TCP socket of this machine."""
    output = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, check=True).stdout
    return [(line.split()[3], match.group(1), int(match.group(2)))
            for line in output.splitlines() if (match := re.search(r'users:\(\("([^"]+)",pid=(\d+)', line))]


def is_loopback(address: str) -> bool:
    return re.match(r"(\[::ffff:)?127\.|\[::1\]", address) is not None


@needs_ray
@pytest.mark.slow
def test_a_two_node_cluster_on_loopback_runs_one_actor_per_node(tmp_path):
    """Ray's own single-machine cluster (two raylets, one CPU each); nothing of it, of the actors or of the
    driver listens beyond loopback. Its files, and the ``ray_current_cluster`` that ``ray.cluster_utils`` writes
    (and deletes, whatever was there before), go to a temp folder of the test's own (``RAY_TMPDIR``)."""
    auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": os.urandom(16).hex(), "RAY_USAGE_STATS_ENABLED": "0"}
    with ray_temp_root() as temp_root:
        helper = subprocess.Popen([sys.executable, "-c", TWO_NODES], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, cwd=tmp_path,
                                  env=os.environ | auth | {"RAY_TMPDIR": str(temp_root)})
        try:
            address = helper.stdout.readline().strip()
            assert re.fullmatch(r"127\.0\.0\.1:\d+", address), address or helper.stderr.read()[-3000:]
            run_dir = tmp_path / "run"
            live = LiveRun("--scenario", "SingleStream", "--time", "2", "--ray", "--ray-address", address,
                           "--ray-actors", "2", "--ray-actor-cpus", "1", "--output-dir", str(run_dir), env=auth)
            actors = live.actor_pids(2)
            sockets = listening_sockets()  # while the cluster, the driver and the actors are all up
            assert live.finish() == 0, live.output[-4000:]
            record = record_of(run_dir)
            cluster = record["cluster"]
            assert cluster["address"] == address and len(cluster["nodes"]) == 2
            assert len({actor["node_id"] for actor in cluster["actors"]}) == 2  # one actor per node: 1 CPU each
            assert_each_sample_completed_once(record)
            ours = [(where, name, pid) for where, name, pid in sockets if name in ("gcs_server", "raylet")
                    or name.startswith("ray::") or pid in (*actors, live.process.pid)]
            assert any(name == "gcs_server" for _, name, _ in ours) and any(pid in actors for _, _, pid in ours)
            exposed = [socket for socket in ours if not is_loopback(socket[0])]
            assert not exposed, f"sockets of the cluster listening beyond loopback: {exposed}"
        finally:
            helper.stdin.close()  # the helper shuts its cluster down
            try:
                helper.wait(timeout=RAY_EXIT_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                helper.kill()
                helper.wait(timeout=10)


@needs_ray
@pytest.mark.slow
def test_a_local_run_starts_its_own_instance_whatever_ray_address_or_a_stale_address_file_say(tmp_path):
    """``ray start`` records its cluster in Ray's ``ray_current_cluster``, and only ``ray stop`` deletes it: a
    head that ended otherwise leaves it naming a dead cluster. ``ray.init()`` without an address joined the
    cluster it names (or ``RAY_ADDRESS``), and every later local ``--ray`` run ended with exit 2, "When
    connecting to an existing cluster, num_cpus and num_gpus must not be provided". Both name a dead head here
    (the file is put back as it was): the run starts its own instance, says so, and is VALID."""
    address_file = ray_address_file()
    before = file_state(address_file)
    dead_head = f"127.0.0.1:{closed_port()}"
    run_dir = tmp_path / "run"
    address_file.parent.mkdir(parents=True, exist_ok=True)
    try:
        address_file.write_text(dead_head)
        result = subprocess.run(run_command("--scenario", "Offline", "--ray", "--count", "200", "--time", "2",
                                            "--output-dir", str(run_dir)), cwd=REPO, capture_output=True, text=True,
                                timeout=RUN_TIMEOUT_S, env=os.environ | {"RAY_ADDRESS": dead_head})
        assert file_state(address_file) == dead_head  # a local instance records nothing there
    finally:
        if before is None:
            address_file.unlink(missing_ok=True)
        else:
            address_file.write_text(before)
    assert result.returncode == 0, result.stderr[-4000:]
    assert "starting a local Ray instance of the run's own" in result.stderr
    assert f"RAY_ADDRESS={dead_head} is not used" in result.stderr
    record = record_of(run_dir)
    assert record["cluster"]["address"] == "local" and record["result"]["valid"] is True
    assert_each_sample_completed_once(record)


@needs_ray
def test_ray_address_auto_with_a_stale_address_file_is_a_prompt_error_that_names_the_file(tmp_path):
    """``--ray-address auto`` joins the cluster Ray's ``ray_current_cluster`` names (here one in a Ray temp folder
    of the test's own, ``RAY_TMPDIR``); where that head is gone, exit 2 at once with a message that names the file
    and what to do: Ray itself retried for minutes, at the machine's own address instead of 127.0.0.1."""
    address_file = tmp_path / "ray" / "ray_current_cluster"
    address_file.parent.mkdir()
    dead_head = f"127.0.0.1:{closed_port()}"
    address_file.write_text(dead_head)
    started = time.monotonic()
    result = subprocess.run(run_command("--scenario", "Offline", "--ray", "--ray-address", "auto", "--count", "200",
                                        "--time", "2", "--output-dir", str(tmp_path / "run")), cwd=REPO,
                            capture_output=True, text=True, timeout=300,
                            env={key: value for key, value in os.environ.items() if key != "RAY_ADDRESS"}
                            | {"RAY_TMPDIR": str(tmp_path)})
    assert result.returncode == 2, result.stderr[-4000:]
    assert time.monotonic() - started < 120
    assert (f"--ray-address auto: {address_file} names {dead_head}, where no Ray cluster answers" in result.stderr
            and "delete it" in result.stderr), result.stderr[-3000:]


@dataclass
class LiveHead:
    """A cluster started with ``ray start --head --block`` on 127.0.0.1, its files in ``temp_root / "ray"``."""
    process: subprocess.Popen
    port: int
    node_id: str
    temp_root: Path
    #: what a run beside it needs: the head's HOME (with its token) and cache, loopback only, no usage report
    env: dict[str, str]

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


@pytest.fixture(scope="class")
def live_head(tmp_path_factory):
    """One ``ray start --head`` cluster for the tests of a class (see :class:`TestBesideAClusterOfRayStart`)."""
    from common.caches import cache_dir

    home = tmp_path_factory.mktemp("home")
    (home / ".ray").mkdir()
    (home / ".ray" / "auth_token").write_text(os.urandom(16).hex())  # token authentication: on
    env = {"HOME": str(home), "SEQ2CNN_CACHE_DIR": str(cache_dir()), "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
           "RAY_USAGE_STATS_ENABLED": "0"}
    head_env = {key: value for key, value in os.environ.items() if key not in RAY_ADDRESS_AND_AUTH} | env
    port = closed_port()
    ray_cli = Path(sys.executable).parent / "ray"
    with ray_temp_root() as temp_root, open(temp_root / "head.log", "w") as head_log:
        head = subprocess.Popen([str(ray_cli), "start", "--head", "--block", "--node-ip-address", "127.0.0.1",
                                 "--port", str(port), "--include-dashboard", "false", "--num-cpus", "1",
                                 "--temp-dir", str(temp_root / "ray")],
                                stdout=head_log, stderr=subprocess.STDOUT, env=head_env, cwd=temp_root)
        try:
            # ray start writes the cluster's address into the --temp-dir given, once the head is up
            address_file = temp_root / "ray" / "ray_current_cluster"
            deadline = time.monotonic() + 120
            while file_state(address_file) is None:
                if head.poll() is not None or time.monotonic() > deadline:
                    head.kill()
                    head_log.flush()
                    pytest.fail("ray start --head did not start within 120 s:\n"
                                + (temp_root / "head.log").read_text()[-3000:])
                time.sleep(0.2)
            assert file_state(address_file) == f"127.0.0.1:{port}"
            while True:  # its node id, once the autoscaler's status has it (a few seconds after the start)
                status = subprocess.run([str(ray_cli), "status", "--address", f"127.0.0.1:{port}"],
                                        capture_output=True, text=True, timeout=60,
                                        env=head_env | {"RAY_AUTH_MODE": "token"})
                if (node := re.search(r"node_([0-9a-f]{56})", status.stdout)) or time.monotonic() > deadline:
                    break
                time.sleep(1)
            assert node, f"ray status named no node within 120 s:\n{status.stdout}{status.stderr[-2000:]}"
            yield LiveHead(head, port, node.group(1), temp_root, env)
        finally:
            head.terminate()  # ray start --block drains its node and stops its processes on SIGTERM
            try:
                head.wait(timeout=RAY_EXIT_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                head.kill()
                head.wait(timeout=10)


class TestBesideAClusterOfRayStart:
    """The README's single-machine cluster, ``ray start --head`` on loopback, started once for these tests (a
    Ray start-up costs seconds) in a temp folder of its own (``--temp-dir``), and stopped by ending its blocking
    ``ray start``: not by ``ray stop``, which stops every Ray process of this user on the machine."""

    @needs_ray
    @pytest.mark.slow
    def test_a_local_run_beside_it_starts_an_instance_of_its_own(self, live_head, tmp_path, monkeypatch):
        """The run sees the live cluster in its Ray temp folder's ``ray_current_cluster`` (``RAY_TMPDIR`` names the
        head's folder), where a user's ``ray start`` puts it; ``ray.init()`` without an address joined it (or
        failed on the run's CPU count, as above). The run keeps to an instance of its own, the cluster lives on."""
        for variable in RAY_ADDRESS_AND_AUTH:  # a local instance of this process sets RAY_AUTH_MODE
            monkeypatch.delenv(variable, raising=False)
        run_dir = tmp_path / "run"
        result = subprocess.run(run_command("--scenario", "SingleStream", "--time", "2", "--target-latency", "1",
                                            "--ray", "--ray-actors", "1", "--ray-actor-cpus", "1", "--output-dir",
                                            str(run_dir)), cwd=REPO, capture_output=True, text=True,
                                timeout=RUN_TIMEOUT_S,
                                env=os.environ | live_head.env | {"RAY_TMPDIR": str(live_head.temp_root)})
        assert result.returncode == 0, result.stderr[-4000:]
        assert "starting a local Ray instance of the run's own" in result.stderr
        cluster = record_of(run_dir)["cluster"]
        assert cluster["address"] == "local" and len(cluster["nodes"]) == 1
        assert cluster["nodes"][0]["node_id"] != live_head.node_id
        assert {actor["node_id"] for actor in cluster["actors"]} == {cluster["nodes"][0]["node_id"]}
        assert live_head.process.poll() is None, "the live cluster's ray start ended"
        check_reachable(live_head.address, timeout_s=10)
        assert file_state(live_head.temp_root / "ray" / "ray_current_cluster") == live_head.address

    @needs_ray
    @pytest.mark.slow
    def test_ray_address_auto_joins_it_on_loopback(self, live_head, tmp_path, monkeypatch):
        """``--ray-address auto`` joins the cluster named in the ``ray_current_cluster`` of the run's Ray temp
        folder, at 127.0.0.1: Ray made that the machine's own address, where the cluster does not listen, unless
        RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 was set (the run sets it; here nothing else does)."""
        for variable in (*RAY_ADDRESS_AND_AUTH, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"):  # a local instance sets both
            monkeypatch.delenv(variable, raising=False)
        env = {key: value for key, value in live_head.env.items() if key != "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"}
        run_dir = tmp_path / "run"
        result = subprocess.run(run_command("--scenario", "SingleStream", "--time", "2", "--target-latency", "1",
                                            "--ray", "--ray-address", "auto", "--ray-actors", "1", "--ray-actor-cpus",
                                            "1", "--output-dir", str(run_dir)), cwd=REPO, capture_output=True,
                                text=True, timeout=RUN_TIMEOUT_S,
                                env=os.environ | env | {"RAY_TMPDIR": str(live_head.temp_root)})
        assert result.returncode == 0, result.stderr[-4000:]
        assert f"--ray-address auto: joining the Ray cluster at {live_head.address}, named in" in result.stderr
        record = record_of(run_dir)
        assert record["cluster"]["address"] == live_head.address
        assert [node["node_id"] for node in record["cluster"]["nodes"]] == [live_head.node_id]
        assert_each_sample_completed_once(record)

    @needs_ray
    @pytest.mark.slow
    def test_it_is_joined_with_its_token(self, live_head, tmp_path, monkeypatch):
        """``ray start --head`` where a token is at hand in ``~/.ray/auth_token`` (a local instance of an earlier
        run leaves one) enables Ray's token authentication; a run given its address and no RAY_AUTH_MODE sends
        the token and runs (it retried for 20 s, logging InvalidAuthToken, then failed with 'Is a cluster running
        there?')."""
        for variable in RAY_ADDRESS_AND_AUTH:  # a run of its own would set one
            monkeypatch.delenv(variable, raising=False)
        run_dir = tmp_path / "run"
        live = LiveRun("--scenario", "SingleStream", "--time", "2", "--target-latency", "1", "--ray", "--ray-address",
                       live_head.address, "--ray-actors", "1", "--ray-actor-cpus", "1", "--output-dir", str(run_dir),
                       env=live_head.env)
        code = live.finish()
        assert code == 0, live.output[-4000:]
        assert f"joining {live_head.address} with Ray's authentication token" in live.output
        assert "InvalidAuthToken" not in live.output
        record = record_of(run_dir)
        assert_each_sample_completed_once(record)
        assert [node["node_id"] for node in record["cluster"]["nodes"]] == [live_head.node_id]


def test_the_ray_tests_leave_no_ray_process_and_ray_current_cluster_as_it_was(ray_left_behind):
    """The module's last test: no Ray process that these tests started is left once Ray's drain is over (at
    most :data:`RAY_EXIT_TIMEOUT_S`), and Ray's ``ray_current_cluster``, which a later ``ray.init()`` would join,
    is as it was before them."""
    deadline = time.monotonic() + RAY_EXIT_TIMEOUT_S
    while (left := ray_processes_of_the_tests(ray_left_behind["mark"])) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not left, "Ray processes of these tests still running:\n" + "\n".join(left)
    address_file = ray_left_behind["address_file"]
    after = file_state(address_file)
    assert after == ray_left_behind["address_before"], (
        f"{address_file} named {ray_left_behind['address_before']!r} before the Ray tests and {after!r} after them: "
        "a test started a cluster (ray start, ray.cluster_utils) without a temp folder of its own (--temp-dir, "
        "RAY_TMPDIR), or its cluster was not stopped; a later ray.init() without an address would join it")

"""Runs under faults and hostile conditions: signals, a full disk, unusable output folders and devices, an
overloaded Server. Each ends within a bounded time, with its documented exit code and a message that names
what to do, and leaves no half-written file.

Runs that must end the process (signals, a full disk: LoadGen's threads cannot be stopped) run in a child
process through ``run.main`` with a real backend wrapped to pace it, mark its first batch, or fill the disk.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import run
from readback.run_record import read_run_record

REPO = Path(__file__).resolve().parent.parent
#: seconds a run has to end after a signal (it ends within about a second here)
STOP_BOUND_S = 30

CHILD_RUN = """
import os, sys, time
import run
from model.backends import create_backend

class MisbehavingBackend:
    '''The folded backend, 5 ms a batch at least; touches $MARKER after its first batch; from its third
    batch on, fills the disk under $FILL_DISK (when set) until no byte is left.'''
    name = "misbehaving"
    def __init__(self):
        self.inner, self.calls = create_backend("folded"), 0
    def labels(self, token_ids):
        self.calls += 1
        if self.calls == 3 and os.environ.get("FILL_DISK"):
            try:
                with open(os.path.join(os.environ["FILL_DISK"], "filler"), "wb") as filler:
                    while True:
                        filler.write(b"\\0" * 65536)
                        filler.flush()
            except OSError:
                pass
        started = time.perf_counter()
        labels = self.inner.labels(token_ids)
        time.sleep(max(0.0, 0.005 - (time.perf_counter() - started)))
        if self.calls == 1:
            open(os.environ["MARKER"], "w").close()
        return labels
    def logits(self, token_ids):
        return self.inner.logits(token_ids)

sys.exit(run.main(sys.argv[1:], backend=MisbehavingBackend()))
"""


def start_child(args: list[str], tmp_path: Path, **env: str) -> tuple[subprocess.Popen, Path]:
    marker = tmp_path / "first-batch-done"
    process = subprocess.Popen([sys.executable, "-c", CHILD_RUN, *args], cwd=REPO, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True,
                               env=os.environ | {"PYTHONPATH": str(REPO), "MARKER": str(marker), **env})
    return process, marker


def wait_for(condition, process: subprocess.Popen, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if process.poll() is not None:
            pytest.fail(f"the run ended before the test could act: {process.communicate()[1][-3000:]}")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail("the run did not reach the point the test waits for")
        time.sleep(0.05)


@pytest.mark.slow
@pytest.mark.parametrize(("scenario", "signum"), [
    ("SingleStream", signal.SIGINT), ("Server", signal.SIGTERM), ("Offline", signal.SIGINT), ("MultiStream", signal.SIGTERM),
])
def test_a_signal_mid_run_stops_it_promptly_and_marks_it_interrupted(scenario, signum, dataset_path, tmp_path):
    out = tmp_path / "run"
    # a rate, or an expected latency, of our own: no calibration before LoadGen starts (its first batch is the marker)
    rate = ["--qps", "100"] if scenario in ("Server", "Offline") else ["--target-latency", "1"]
    process, marker = start_child(["--scenario", scenario, "--time", "600", "--count", "200", *rate, "--dataset-path",
                                   str(dataset_path), "--output-dir", str(out)], tmp_path)
    wait_for(marker.exists, process)
    sent = time.monotonic()
    process.send_signal(signum)
    try:
        _, stderr = process.communicate(timeout=STOP_BOUND_S)
    except subprocess.TimeoutExpired:
        process.kill()
        pytest.fail(f"the run did not stop within {STOP_BOUND_S} s of {signum.name}")
    stopped_s = time.monotonic() - sent
    assert process.returncode == 128 + signum, stderr[-3000:]
    assert f"{signum.name} received" in stderr and f"{out} keeps what was written" in stderr
    assert "terminate called" not in stderr and "Traceback" not in stderr
    record = read_run_record(out)
    assert record.status == "interrupted" and signum.name in record.error and record.wall_seconds is not None
    assert (out / "mlperf_log_detail.txt").stat().st_size > 0  # what LoadGen wrote is on disk
    assert not [path.name for path in out.iterdir() if path.name.startswith(".")]  # no temporary or reserve file
    assert stopped_s < STOP_BOUND_S


@pytest.mark.slow
def test_sigterm_during_archive_extraction_leaves_no_staging_folder(dataset_path, tmp_path):
    if not dataset_path.name.endswith((".tar.gz", ".tgz", ".tar")):
        pytest.skip("the dataset is a folder: nothing is extracted")
    cache = tmp_path / "cache"
    process, _ = start_child(["--scenario", "Offline", "--dataset-path", str(dataset_path),
                              "--output-dir", str(tmp_path / "run")], tmp_path, SEQ2CNN_CACHE_DIR=str(cache))
    datasets = cache / "datasets"

    def staging_has_files() -> bool:
        stagings = [path for path in datasets.glob(".*") if path.is_dir()] if datasets.is_dir() else []
        return any(sum(1 for _ in staging.rglob("*.txt")) > 200 for staging in stagings)

    wait_for(staging_has_files, process)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=STOP_BOUND_S)
    assert process.returncode == 143, stderr[-3000:]
    assert "SIGTERM received" in stderr and "it had not started: nothing was written" in stderr
    assert "Traceback" not in stderr and list(datasets.iterdir()) == []
    assert not (tmp_path / "run").exists()  # the run had not started: no folder was claimed


@contextlib.contextmanager
def small_disk(path: Path, size: str):
    """A tmpfs of ``size`` mounted at ``path`` (needs the right to mount, as root has on CI)."""
    path.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True,
                             check=False)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small file system here: {mounted.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


@pytest.mark.slow
def test_a_disk_that_fills_mid_run_is_exit_2_naming_the_file_and_the_record_says_failed(dataset_path, tmp_path):
    with small_disk(tmp_path / "disk", "4m") as disk:
        out = disk / "run"
        process, _ = start_child(["--scenario", "SingleStream", "--time", "1", "--target-latency", "1", "--count", "100",
                                  "--dataset-path", str(dataset_path), "--output-dir", str(out)], tmp_path,
                                 FILL_DISK=str(disk))  # an expected latency of our own: the batches counted are the run's
        _, stderr = process.communicate(timeout=180)
        assert process.returncode == 2, stderr[-3000:]
        assert "No space left on device" in stderr and str(out) in stderr and "free some space" in stderr
        record = read_run_record(out)
        assert record.status == "failed" and "No space left on device" in record.error
        assert not [path.name for path in out.iterdir() if path.name.startswith(".")]  # no temporary file left


@pytest.mark.parametrize("where", ["under-a-file", "dangling-link", "in-proc"])
def test_an_output_folder_that_cannot_be_made_is_exit_2_before_loading(where, tmp_path, capsys):
    if where == "under-a-file":
        (tmp_path / "file").write_text("")
        out, expected = tmp_path / "file" / "run", "is a file, not a folder"
    elif where == "dangling-link":
        out, expected = tmp_path / "link", "which does not exist; a run's folder must be new"
        out.symlink_to(tmp_path / "nowhere")
    else:
        out, expected = Path("/proc/self/run"), "cannot create the run folder"
    started = time.monotonic()
    code = run.main(["--output-dir", str(out), "--dataset-path", str(tmp_path / "never-read")])
    error = capsys.readouterr().err
    assert code == 2 and expected in error and "Traceback" not in error, error
    assert time.monotonic() - started < 60


@pytest.mark.parametrize(("device", "expected"), [("bogus", "is not a torch device"), ("meta", "run on cpu or cuda")])
def test_an_unknown_device_is_exit_2_before_loading(device, expected, tmp_path, capsys):
    code = run.main(["--device", device, "--output-dir", str(tmp_path / "out"), "--dataset-path", str(tmp_path / "x")])
    assert code == 2 and expected in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_two_runs_started_at_once_with_the_default_folder_each_get_their_own(dataset_path, tmp_path):
    command = [sys.executable, str(REPO / "run.py"), "--scenario", "SingleStream", "--time", "0.3", "--count", "50",
               "--dataset-path", str(dataset_path)]
    processes = [subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(2)]
    outputs = [process.communicate(timeout=300) for process in processes]
    assert [process.returncode for process in processes] == [0, 0], [err[-2000:] for _, err in outputs]
    folders = sorted((tmp_path / "results").iterdir())
    assert len(folders) == 2 and all(read_run_record(folder).status == "finished" for folder in folders)


@pytest.mark.slow
def test_a_server_run_far_above_capacity_ends_early_within_its_memory_plan(dataset_path, tmp_path, paced, capsys):
    """100 times the capacity: LoadGen ends the run once the backlog passes the plan's bound, so the run lasts
    about its duration (not the 100 x duration it takes to serve every generated query)."""
    duration_s, seconds_per_batch = 2.0, 0.005  # one review per batch: 200 queries/s on any machine fast enough
    out = tmp_path / "overloaded"
    code = run.main(["--scenario", "Server", "--qps", "20000", "--time", str(duration_s), "--max-batchsize", "1",
                     "--count", "100", "--dataset-path", str(dataset_path), "--output-dir", str(out)],
                    backend=paced(seconds_per_batch))
    assert code == 0
    record = read_run_record(out)
    plan = record.load_plan
    assert plan.queries == 40_001 and plan.max_outstanding_queries == 401  # 1% of the queries LoadGen generates
    assert record.result.valid is False and record.result.ended_for_backlog
    assert "Backlog    : LoadGen ended the run early" in capsys.readouterr().out
    # the failed checks as LoadGen's own summary says them ("Early stopping satisfied: NO", ...), each with its NO
    summary = (out / "mlperf_log_summary.txt").read_text().splitlines()
    said_no = {" ".join(line.split(":")[0].split()).lower() for line in summary
               if "satisfied" in line and line.split(":")[-1].strip() == "NO"}
    assert said_no and set(record.result.failed_checks_text().removesuffix(": NO").split(": NO; ")) == said_no
    # issuing stopped once about 400 were outstanding: a few hundred queries of the 40,000 generated, each completed
    assert record.samples.issued == record.samples.completed < 2 * plan.max_outstanding_queries
    assert record.result.used_settings["generated_query_count"] == pytest.approx(plan.queries, rel=0.05)
    assert plan.memory_bytes <= plan.memory_bound_bytes
    # serving the backlog takes (bound x seconds per batch) = 2 s: the run ends within 3 times its duration
    assert record.wall_seconds < 3 * duration_s

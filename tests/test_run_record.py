"""run.json: one writer, one reader, a version, and every field's type checked on reading."""

from __future__ import annotations

import json
import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from common.files import atomic_directory, atomic_write, write_text_atomically
from readback.accuracy import AccuracySummary
from readback.loadgen_log import Figure, LoadGenResult
from readback.run_record import (
    RECORD_VERSION,
    BackendInfo,
    DatasetInfo,
    RunRecord,
    RunRecordError,
    SutInfo,
    read_finished_run,
    read_run_record,
)
from readback.run_files import RESERVE_FILE
from readback.run_process import RunProcess, process_state, this_process
from readback.timings import SampleCounts
from sut.settings import load_run_settings


def a_record(**changes) -> RunRecord:
    settings = load_run_settings("SingleStream", "performance", duration_s=1).record()
    record = RunRecord(
        version=RECORD_VERSION, kind="performance", status="finished", scenario="SingleStream",
        started_utc="2026-01-02T03:04:05+00:00", command=["run.py", "--time", "1"], config={"scenario": "SingleStream"},
        backend=BackendInfo("folded", "cpu", None, "model/seq2cnn.safetensors", "ab" * 32),
        sut=SutInfo(64, 16384, 0.5, 1), dataset=DatasetInfo("data.tar.gz", 100, 25_000), settings=settings,
        versions={"python": "3.11"}, git={"commit": "abc", "dirty": False}, machine={"processor": "cpu"},
        wall_seconds=1.5, samples=SampleCounts(10, 10, 0, 0, 0),
        result=LoadGenResult("SingleStream", "performance", True,
                             headline=Figure("early-stopping p90 latency estimate", "early_stopping_latency_ss", 4e5, "ns"),
                             latencies_ns={90.0: 3.9e5, 99.9: 1e6}),
        accuracy=AccuracySummary(0.9, 90, 100, False, 0.88, "MODEL.md", {"99%": None}, {"entries": 100}, [], None),
    )
    for name, value in changes.items():
        setattr(record, name, value)
    return record


def test_a_record_reads_back_as_written(tmp_path):
    record = a_record()
    record.write(tmp_path)
    again = read_run_record(tmp_path)
    assert again == record
    assert again.result.latencies_ns == {90.0: 3.9e5, 99.9: 1e6} and again.settings.quick_run
    assert json.loads((tmp_path / "run.json").read_text())["version"] == RECORD_VERSION
    assert [path.name for path in tmp_path.iterdir()] == ["run.json"]


def test_a_record_of_another_format_version_is_refused(tmp_path):
    a_record().write(tmp_path)
    data = json.loads((tmp_path / "run.json").read_text())
    del data["version"]
    (tmp_path / "run.json").write_text(json.dumps(data))
    with pytest.raises(RunRecordError, match="format version 1 \\(no version field\\), this release reads version 2"):
        read_run_record(tmp_path)


def test_a_field_of_the_wrong_type_is_named(tmp_path):
    a_record().write(tmp_path)
    data = json.loads((tmp_path / "run.json").read_text())
    data["result"]["headline"]["value"] = "fast"
    data["kind"] = "benchmark"
    (tmp_path / "run.json").write_text(json.dumps(data))
    with pytest.raises(RunRecordError) as raised:
        read_run_record(tmp_path, "performance run")
    message = str(raised.value)
    assert message.startswith(f"performance run {tmp_path}:") and "2 problem(s)" in message
    assert "kind:" in message and "result.headline.value:" in message


def test_missing_and_truncated_records_say_what_to_do(tmp_path):
    with pytest.raises(RunRecordError, match="no run.json there; pass the folder of a run made by run.py"):
        read_run_record(tmp_path)
    (tmp_path / "run.json").write_text('{"version": 2, "kind":')
    with pytest.raises(RunRecordError, match="is not valid JSON"):
        read_run_record(tmp_path)


def test_only_a_finished_run_is_read_as_finished(tmp_path):
    a_record(status="failed", error="RuntimeError: boom").write(tmp_path)
    with pytest.raises(RunRecordError, match="did not finish \\(status 'failed': RuntimeError: boom\\)"):
        read_finished_run(tmp_path)


def test_an_atomic_write_that_fails_leaves_the_earlier_file_and_no_temporary(tmp_path):
    target = tmp_path / "result.txt"
    write_text_atomically(target, "earlier")
    with pytest.raises(RuntimeError):
        with atomic_write(target) as stream:
            stream.write(b"half of the new")
            raise RuntimeError("disk full")
    assert target.read_text() == "earlier"
    assert [path.name for path in tmp_path.iterdir()] == ["result.txt"]


def test_an_atomic_directory_appears_whole_or_not_at_all(tmp_path):
    target = tmp_path / "tree"
    with pytest.raises(KeyboardInterrupt):
        with atomic_directory(target) as staging:
            (staging / "a.txt").write_text("a")
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []
    with atomic_directory(target) as staging:
        (staging / "a.txt").write_text("a")
    assert [path.name for path in target.iterdir()] == ["a.txt"] and list(tmp_path.iterdir()) == [target]


def test_paths_in_the_record_are_strings(tmp_path):
    record = a_record()
    record.write(tmp_path)
    data = json.loads((tmp_path / "run.json").read_text())
    assert data["settings"]["config_files"][0]["path"] == str(record.settings.config_files[0].path)


def test_a_running_record_says_whether_its_process_is_alive_gone_or_elsewhere():
    me = this_process()
    assert process_state(me) == "alive"
    assert "still going (pid" in a_record(status="running", process=me).unfinished_reason()
    reused = RunProcess(me.pid, me.hostname, me.boot_id, (me.start_ticks or 0) + 1)  # same pid, another process
    assert process_state(reused) == "gone"
    rebooted = RunProcess(me.pid, me.hostname, "another-boot", me.start_ticks)
    assert "is gone: it was killed" in a_record(status="running", process=rebooted).unfinished_reason()
    elsewhere = RunProcess(me.pid, platform.node() + "-elsewhere", me.boot_id, me.start_ticks)
    assert "was made on " in a_record(status="running", process=elsewhere).unfinished_reason()
    assert "did not record its end" in a_record(status="running").unfinished_reason()  # a record without a process


REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_a_run_killed_with_sigkill_is_said_to_be_killed_by_every_reader(dataset_path, tmp_path):
    run_dir = tmp_path / "run"
    child = subprocess.Popen([sys.executable, "run.py", "--scenario", "SingleStream", "--time", "600", "--count", "100",
                              "--dataset-path", str(dataset_path), "--output-dir", str(run_dir)], cwd=REPO,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 300
        while not (run_dir / "mlperf_log_detail.txt").is_file():  # LoadGen has started: the record says running
            assert child.poll() is None and time.monotonic() < deadline, child.stderr.read()[-3000:]
            time.sleep(0.1)
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=60)
    assert read_run_record(run_dir).status == "running" and (run_dir / RESERVE_FILE).exists()
    with pytest.raises(RunRecordError, match=rf"the run's process \(pid {child.pid}\) is gone: it was killed .*"
                                             rf"{RESERVE_FILE}: remove the folder\): make it again"):
        read_finished_run(run_dir)
    from tools.report.page import write_report

    page = write_report(run_dir, tmp_path / "report").read_text()
    assert f"the run&#x27;s process (pid {child.pid}) is gone: it was killed" in page or \
        f"the run's process (pid {child.pid}) is gone: it was killed" in page

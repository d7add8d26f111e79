"""The SUT's batching policies: Offline length batches on a small real QSL, Server batching in real LoadGen runs."""

import json
import logging
import os
import subprocess
import sys
import threading
from pathlib import Path

import mlperf_loadgen as lg
import numpy as np
import pytest

import run
import sut.system
from qsl.library import ImdbQSL, SampleNotLoadedError
from qsl.token_cache import TokenizedSplit
from readback.run_files import SUT_TIMINGS_FILE
from readback.run_record import read_run_record
from readback.timings import read_sut_timings
from sut.local_executor import LocalExecutor
from sut.settings import load_run_settings
from sut.system import Seq2CNNSystem, server_batch_wait_s


class LengthEcho:
    """A backend that labels a review by whether it is longer than 5 ids."""

    name = "length-echo"

    def labels(self, token_ids):
        return np.array([int(len(ids) > 5) for ids in token_ids], dtype=np.int64)


def echo():
    """A local executor over :class:`LengthEcho`."""
    return LocalExecutor("length-echo", "unused.safetensors", given=LengthEcho())


def system(qsl, scenario, max_batch_size=8, max_batch_tokens=1 << 20, batch_wait_s=0.0, workers=1):
    return Seq2CNNSystem(echo(), qsl, scenario, max_batch_size=max_batch_size, max_batch_tokens=max_batch_tokens,
                         batch_wait_s=batch_wait_s, workers=workers)


@pytest.fixture
def qsl():
    lengths = [3, 9, 1, 7, 7, 12, 0, 4]
    split = TokenizedSplit([np.ones(n, np.int16) for n in lengths], np.zeros(len(lengths), np.int64),
                           [f"r{i}" for i in range(len(lengths))])
    library = ImdbQSL(split)
    library.load_samples(list(range(len(lengths))))
    yield library
    library.destroy()


def test_offline_batches_are_sorted_by_length_and_cut_by_budget(qsl):
    sut = system(qsl, "Offline", max_batch_size=3, max_batch_tokens=20)
    batches = sut._length_sorted_batches(np.arange(100, 108, dtype=np.uint64), np.arange(8))
    lengths = [[len(qsl.token_ids(index)) for index in indices] for _, indices in batches]
    assert lengths == [[12], [9, 7], [7, 4, 3], [1, 0]]
    pairs = [(int(sample_id), int(index)) for ids, indices in batches for sample_id, index in zip(ids, indices)]
    assert sorted(pairs) == [(100 + index, index) for index in range(8)]  # each sample once, with its own id
    sut.shutdown()


def test_a_review_longer_than_the_budget_gets_a_batch_of_its_own(qsl):
    sut = system(qsl, "Offline", max_batch_size=8, max_batch_tokens=5)
    batches = sut._length_sorted_batches(np.arange(8, dtype=np.uint64), np.arange(8))
    assert [len(qsl.token_ids(index)) for index in batches[0][1]] == [12]
    sut.shutdown()


def test_unloaded_sample_is_an_error(qsl):
    qsl.unload_samples([2])
    with pytest.raises(SampleNotLoadedError, match="sample 2"):
        qsl.token_ids(2)


def test_an_offline_query_whose_sort_fails_part_way_answers_each_sample_once(qsl, tmp_path, monkeypatch):
    """A real LoadGen Offline test whose query is queued in parts of 3: the second part's lengths fail. The run
    stops with that error, and every sample is answered exactly once: the first part by the workers, the rest
    failed (answering all of them again would complete the first part twice)."""
    monkeypatch.setattr(sut.system, "OFFLINE_SORT_SAMPLES", 3)
    monkeypatch.setattr(sut.system, "OFFLINE_SORT_BATCHES", 1)
    real_lengths, parts = qsl.lengths, []

    def lengths(indices):
        parts.append(len(indices))
        if len(parts) == 2:
            raise RuntimeError("planted: the second part's lengths")
        return real_lengths(indices)

    monkeypatch.setattr(qsl, "lengths", lengths)
    system_under_test = system(qsl, "Offline", max_batch_size=2)
    settings = lg.TestSettings()
    settings.scenario = lg.TestScenario.Offline
    settings.mode = lg.TestMode.AccuracyOnly
    log_settings = lg.LogSettings()
    log_settings.log_output.outdir = str(tmp_path)
    log_settings.enable_trace = False
    try:
        lg.StartTestWithLogSettings(system_under_test.handle, qsl.handle, settings, log_settings)
    finally:
        system_under_test.shutdown()
    assert parts == [3, 3] and str(system_under_test.error) == "planted: the second part's lengths"
    counts = system_under_test.ledger.counts()
    assert (counts.issued, counts.completed) == (8, 8)
    assert counts.completed_more_than_once == counts.never_completed == counts.completed_not_issued == 0
    assert len(json.loads((tmp_path / "mlperf_log_accuracy.json").read_text())) == 8


def test_bad_batching_parameters_are_refused(qsl):
    with pytest.raises(ValueError):
        system(qsl, "Server", max_batch_size=0)
    with pytest.raises(ValueError, match="unknown scenario"):
        system(qsl, "Batch")


class ThreadRecorder(LengthEcho):
    """:class:`LengthEcho` that keeps each thread it was called on."""

    def __init__(self):
        self.threads: list[threading.Thread] = []

    def labels(self, token_ids):
        current = threading.current_thread()
        if not any(thread is current for thread in self.threads):
            self.threads.append(current)
        return super().labels(token_ids)


@pytest.mark.slow
def test_every_loadgen_test_of_a_process_runs_on_one_thread(dataset_path, tmp_path):
    """LoadGen gives each thread that completes samples a logger of its own; one that ends between two tests
    (a thread made per test) left its log thread freeing that logger with a read of it pending: SIGSEGV in
    the next test, now and then (find-peak's probes, two runs in one process). A SingleStream query runs on
    the test's thread, so the backend sees that thread."""
    backend = ThreadRecorder()
    for name in ("first", "second"):
        args = ["--scenario", "SingleStream", "--time", "1", "--count", "100", "--target-latency", "1",
                "--dataset-path", str(dataset_path), "--output-dir", str(tmp_path / name)]
        assert run.main(args, backend=backend) == 0
    assert [thread.name for thread in backend.threads] == ["loadgen"]


def server_run(dataset_path, out, backend, *options: str):
    """A one-second Server run of the first 500 reviews with a 1 s latency bound (so the batch wait cap is 100 ms)."""
    args = ["--scenario", "Server", "--time", "1", "--count", "500", "--target-latency", "1000",
            "--dataset-path", str(dataset_path), "--output-dir", str(out), *options]
    assert run.main(args, backend=backend) == 0
    return read_run_record(out)


@pytest.mark.slow
def test_server_gathers_queued_queries_into_batches_up_to_the_batch_size(dataset_path, tmp_path, paced):
    """Batches of 20 ms at 400 queries/s: queries queue behind each batch, and the next batch takes 4 of them."""
    backend = paced(0.02)
    record = server_run(dataset_path, tmp_path / "busy", backend, "--qps", "400", "--max-batchsize", "4")
    assert max(backend.batch_sizes) == 4
    assert sum(size == 4 for size in backend.batch_sizes) > len(backend.batch_sizes) / 2
    assert sum(backend.batch_sizes) == record.samples.completed == record.samples.issued


@pytest.mark.slow
def test_server_query_waits_for_company_at_most_the_batch_wait(dataset_path, tmp_path, folded_backend):
    """At 20 queries/s most queries arrive alone: with a 40 ms batch wait they wait for it, without one they do not."""
    waiting = server_run(dataset_path, tmp_path / "wait", folded_backend, "--qps", "20", "--batch-wait-ms", "40")
    eager = server_run(dataset_path, tmp_path / "eager", folded_backend, "--qps", "20", "--batch-wait-ms", "0")
    assert waiting.sut.batch_wait_ms == 40 and eager.sut.batch_wait_ms == 0
    latencies = read_sut_timings(tmp_path / "wait" / SUT_TIMINGS_FILE).latencies_ms
    waited = np.median(latencies)
    immediate = np.median(read_sut_timings(tmp_path / "eager" / SUT_TIMINGS_FILE).latencies_ms)
    assert waited >= 20, f"median latency {waited:.1f} ms with a 40 ms batch wait"
    assert np.percentile(latencies, 90) < 40 + 200, "the batch wait is a bound, not a queue"
    assert immediate < waited - 20, f"median latency {immediate:.1f} ms without a batch wait"


def test_batch_wait_is_capped_at_a_tenth_of_the_latency_bound(caplog):
    settings = load_run_settings("Server", "performance")  # mlperf.conf: a 15 ms bound
    with caplog.at_level(logging.WARNING, logger="sut.system"):
        assert server_batch_wait_s(5.0, settings) == pytest.approx(0.0015)
    assert "capped at 1.5 ms" in caplog.text
    assert server_batch_wait_s(0.5, settings) == pytest.approx(0.0005)


REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("scenario", ["Offline", "Server"])
def test_loadgen_logs_the_same_responses_whether_answered_from_arrays_or_objects(scenario, dataset_path, tmp_path):
    """The array path (LoadGen's C API over response records) and the binding's objects give LoadGen the same
    response for each sample; run.json says which path answered."""
    logged = {}
    for path in ("arrays", "objects"):
        out = tmp_path / path
        args = ["--scenario", scenario, "--accuracy", "--count", "300", "--backend", "trimmed", "--max-batchsize", "64",
                "--dataset-path", str(dataset_path), "--output-dir", str(out)]
        env = os.environ | {"PYTHONPATH": str(REPO), "SEQ2CNN_COMPLETION": path}
        done = subprocess.run([sys.executable, str(REPO / "run.py"), *args], cwd=REPO, capture_output=True, text=True,
                              timeout=300, env=env)
        assert done.returncode == 0, done.stderr[-3000:]
        assert read_run_record(out).sut.completion == path
        entries = json.loads((out / "mlperf_log_accuracy.json").read_text())
        logged[path] = sorted((entry["qsl_idx"], entry["data"]) for entry in entries)
    assert len(logged["arrays"]) == 300 and logged["arrays"] == logged["objects"]
    assert {data for _, data in logged["arrays"]} == {"0000000000000000", "0100000000000000"}  # both classes, int64 LE

"""Backend calls outside the LoadGen test (:mod:`sut.watched_phase`) are held to the test's guarantees.

The quick run's measurement (:mod:`sut.calibration`) is such a phase: a backend that stops answering there
ends the run with exit 3 within twice the stall bound computed from the batches finished so far (not the
ceiling), and one that raises, whatever the Python type, is an inference failure (exit 3); both name the
measurement, and no run folder is claimed. A Ray pool's synchronous ``labels`` is watched the same way. The
measurement works for any review count a run accepts (a set smaller than a query repeats reviews), and
Offline's runs batches of the size the run will run.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import threading
import time

import numpy as np
import pytest

from common.errors import EXIT_INFERENCE_FAILED, InferenceFailedError, InferenceStalledError
from sut.calibration import PHASE, measure_offline_rate, measure_query_latency
from sut.config import OFFLINE_BATCHING
from sut.local_executor import LocalExecutor
from sut.stall import StallLimits
from sut.watched_phase import run_watched_phase

#: the stall bound's floor the runs are given (s): the measurement's batches take far less, so the bound is this
BOUND_S = 2.0
#: scenarios whose quick runs measure the backend first (Server's rate is --qps)
MEASURED = ("SingleStream", "MultiStream", "Offline")
#: what a failure of the measurement says it was doing
NAMED = f"while {PHASE}"


class FailsOnItsThirdBatch:
    """A backend that answers its first two batches (the measurement's warm-up and first batch) and, on its
    third, hangs until the test releases it (``mode`` "hang") or raises ValueError (``mode`` "raise")."""

    name = "failing"

    def __init__(self, mode: str):
        self.mode, self.calls, self.release, self.failed_at = mode, 0, threading.Event(), None
        self.lock = threading.Lock()

    def labels(self, token_ids):
        with self.lock:
            self.calls += 1
            third = self.calls == 3
        if third:
            self.failed_at = time.monotonic()
            if self.mode == "raise":
                raise ValueError("planted failure in the third batch")
            self.release.wait()
        return np.zeros(len(token_ids), dtype=np.int64)


def quick_run(scenario: str, dataset_path, out, *extra: str) -> list[str]:
    return ["--scenario", scenario, "--time", "5", "--count", "100", "--dataset-path", str(dataset_path),
            "--output-dir", str(out), *extra]


#: each scenario's measurement with a backend that hangs (each waits the 2 s bound: SingleStream's alone in the
#: edit-test loop) and one that raises
FAILURES = [pytest.param("hang", scenario, marks=[pytest.mark.slow] if scenario != "SingleStream" else [])
            for scenario in MEASURED] + [("raise", scenario) for scenario in MEASURED]


@pytest.mark.parametrize(("mode", "scenario"), FAILURES)
def test_a_backend_that_fails_while_a_quick_run_measures_it_ends_the_run_with_exit_3(mode, scenario, dataset_path,
                                                                                      tmp_path, capsys):
    import run

    backend = FailsOnItsThirdBatch(mode)
    try:
        code = run.main(quick_run(scenario, dataset_path, tmp_path / "run", "--stall-timeout", f"{BOUND_S:g}"),
                        backend=backend)
        returned = time.monotonic()
    finally:
        backend.release.set()
    error = capsys.readouterr().err
    assert code == EXIT_INFERENCE_FAILED, error
    assert backend.failed_at is not None, "the measurement ended before its third batch"
    if mode == "hang":
        # the bound follows the two batches that completed: the floor, far below the 600 s ceiling
        assert f"inference failed, run stopped: inference stalled {NAMED}: a batch of " in error
        assert f"past the stall bound of {BOUND_S:.1f} s (20x the" in error
        assert returned - backend.failed_at < 2 * BOUND_S
    else:
        assert f"inference failed, run stopped: {NAMED}: ValueError: planted failure in the third batch" in error
    assert "error of this program's own" not in error
    assert not (tmp_path / "run").exists()  # LoadGen had not started: no folder claimed


@pytest.mark.parametrize("count", [1, 7, 8, 9])
def test_the_measurement_works_for_any_review_count(count, test_split, folded_backend):
    """A set smaller than a query or a batch repeats reviews, as LoadGen's queries do."""
    executor = LocalExecutor("folded", "unused", given=folded_backend)
    part = test_split.head(count)
    limits = StallLimits()
    for samples in (1, 8):
        mean_s = run_watched_phase(PHASE, executor, limits, lambda calls: measure_query_latency(calls, part, samples,
                                                                                                seconds=0.05))
        assert mean_s > 0
    rate = run_watched_phase(PHASE, executor, limits,
                             lambda calls: measure_offline_rate(calls, part, *OFFLINE_BATCHING, seconds=0.05))
    assert rate > 0


def test_offline_measures_batches_of_the_size_the_run_runs(test_split, paced):
    """With --count 200 the run's Offline batches hold up to 4,096 (repeated) reviews: so do the measurement's,
    not one batch of the 200 (batch size alone changes the folded backend's rate about 2x)."""
    backend = paced(0.0)
    executor = LocalExecutor("folded", "unused", given=backend)
    run_watched_phase(PHASE, executor, StallLimits(),
                      lambda calls: measure_offline_rate(calls, test_split.head(200), *OFFLINE_BATCHING, seconds=0.2))
    sizes = backend.batch_sizes  # the warm-up and at least one batch, however fast the machine
    assert len(sizes) >= 2 and max(sizes) <= OFFLINE_BATCHING[0], sizes
    assert min(sizes) > 1000, sizes  # each far beyond the set's 200, cut by the run's review and token limits


def test_an_error_of_the_phase_s_own_code_is_not_called_an_inference_failure(folded_backend):
    executor = LocalExecutor("folded", "unused", given=folded_backend)

    def buggy(calls):
        calls.labels([np.array([1, 2, 3], dtype=np.int16)])
        return [][0]

    with pytest.raises(IndexError):
        run_watched_phase(PHASE, executor, StallLimits(), buggy)


@pytest.mark.slow
def test_a_ray_pools_synchronous_labels_is_watched(ray_installed, test_split, caplog):
    """On Ray the pool watches its own batches (a hung actor is declared hung past its bound and killed; with
    none left the batch fails): the measurement's call on it ends within twice that bound, and an error raised
    in the actor's backend is an inference failure naming the phase."""
    from model.paths import DEFAULT_WEIGHTS
    from sut.ray_executor import RayExecutor

    limits = StallLimits(BOUND_S, 60.0)
    executor = RayExecutor("trimmed", DEFAULT_WEIGHTS, threads=1, actors=1, actor_cpus=1, stall_limits=limits)
    executor.open()
    actor = executor.pool.info.actors[0]
    pid = actor.pid
    assert actor.node_address == "127.0.0.1"
    try:
        reviews = [ids[:1000] for ids in test_split.token_ids[:8]]
        labels = run_watched_phase(PHASE, executor, limits, lambda calls: calls.labels(reviews))
        assert labels.shape == (8,)
        out_of_vocabulary = [np.array([1, 60, 30_000], dtype=np.int16)]  # the embedding has 5,200 rows
        with pytest.raises(InferenceFailedError, match=f"^{NAMED}: backend actor 0: .*IndexError"):
            run_watched_phase(PHASE, executor, limits, lambda calls: calls.labels(out_of_vocabulary))
        os.kill(pid, signal.SIGSTOP)
        stopped = time.monotonic()
        with pytest.raises(InferenceFailedError, match=f"^{NAMED}: NoActorsLeftError: all 1 Ray backend actors "
                                                       r"died \(0 lost, 1 hung and killed"):
            run_watched_phase(PHASE, executor, limits, lambda calls: calls.labels(reviews))
        ended = time.monotonic() - stopped
        hung = re.search(r"Ray actor 0 \(pid \d+ on 127\.0\.0\.1\) hung: .* past the stall bound of ([\d.]+) s",
                         caplog.text)
        assert hung, caplog.text
        assert float(hung.group(1)) < limits.ceiling_s and ended < 2 * float(hung.group(1))
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        executor.close(drain=False)


def test_a_stall_of_an_executor_that_does_not_watch_itself_names_the_phase():
    class Hangs:
        name = "hanging"
        release = threading.Event()

        def labels(self, token_ids):
            self.release.wait()

    backend = Hangs()
    executor = LocalExecutor("folded", "unused", given=backend)
    try:
        with pytest.raises(InferenceStalledError, match=f"^inference stalled {NAMED}: a batch of 2 review"):
            run_watched_phase(PHASE, executor, StallLimits(0.1, 0.1), lambda calls: calls.labels([np.ones(3)] * 2))
    finally:
        backend.release.set()


@pytest.mark.slow
def test_a_quick_multistream_run_of_fewer_reviews_than_a_query_runs(dataset_path, tmp_path, capsys):
    """LoadGen repeats samples of a set smaller than a query; the measurement before it does too (it built
    queries of 8 distinct reviews from a set of 1: IndexError, exit 3)."""
    import run
    from readback.run_record import read_run_record

    code = run.main(["--scenario", "MultiStream", "--count", "1", "--time", "2", "--dataset-path", str(dataset_path),
                     "--output-dir", str(tmp_path / "run")])
    assert code == 0, capsys.readouterr().err
    record = read_run_record(tmp_path / "run")
    assert record.result.valid, record.result

"""How fast the backend runs on this machine, to size a quick run's queries (Offline's rate, SingleStream's
and MultiStream's latency): :func:`calibrate`, step 2c of a run (:mod:`sut.runner`).

An Offline run is one query of ``expected rate x min_duration`` samples, and
it lasts as long as the system needs for them: a quick run (``--time T``)
sized from ``user.conf``'s rate lasts T only if the system runs at exactly that
rate. When ``--time`` is given without ``--qps``, the runner measures the
backend first (about :data:`CALIBRATION_SECONDS`, on length-sorted batches of
the size the run's batches have, of reviews drawn at random from the run's set
as LoadGen draws a query's, as many batches at once as the executor runs) and
sets the expected rate to :data:`MARGIN` times what it
measured. LoadGen adds 10% of its own (its ``kSlack``), so the query holds
2.2 T seconds of work at the measured pace. The run lasts about 2.2 T when the
machine keeps that pace, longer when it gets busier, and at least T (which a
VALID run needs) as long as the machine does not run it more than 2.2 times
as fast as it ran the calibration: a machine busy during its second of
calibration and idle afterwards runs faster during the run than it measured.

SingleStream and MultiStream are the same problem in latency: LoadGen prepares
queries for twice ``min_duration`` at the expected latency (``target_latency``),
and a machine that answers faster runs out of them early, INVALID (it stops
issuing once ``min_duration`` and ``min_query_count`` are met, so prepared
queries left over cost only their memory). A quick run of either without
``--target-latency`` measures the mean time the executor takes for a query
(:func:`measure_query_latency`; a whole query through LoadGen and the SUT takes
longer) and expects :data:`MARGIN` times less: the prepared queries last at
least 4 T at the measured pace, so the run lasts T on a machine up to 4 times
faster. Their quick runs also go on until LoadGen's early-stopping estimate has
the queries it needs (64 and 662, the minimum query count of
:func:`sut.settings.load_run_settings`); where those take longer than LoadGen's
``max_duration`` allows at the measured pace, the calibration raises it, and
says how long the run will take.

Reviews are drawn with replacement, as LoadGen draws a query's samples: a set
of fewer reviews than a query or a batch (``--count 1``) repeats them, and the
batches are as large as the run's (with ``--count 200``, batches of 4,096
reviews, not one of 200: batch size alone changes the folded backend's rate).
The measurement calls the backend through :mod:`sut.watched_phase`, watched as
the LoadGen test is.
"""

from __future__ import annotations

import itertools
import logging
import math
import threading
import time
from typing import TYPE_CHECKING

import numpy as np

from model.batching import length_sorted_batches
from qsl.token_cache import TokenizedSplit
from qsl.vocabulary import MAX_LENGTH
from readback.benchmark import SCENARIOS as BENCHMARK_SCENARIOS
from sut.load_plan import OFFLINE_SLACK, SEQUENTIAL_SLACK, memory_bound_bytes, plan_bytes_per_query
from sut.settings import Override, RunSettings
from sut.watched_phase import WatchedCalls, run_watched_phase

if TYPE_CHECKING:
    from sut.config import RunConfig
    from sut.executor import Executor

log = logging.getLogger(__name__)

#: how long the measurement runs (s), after one warm-up batch
CALIBRATION_SECONDS = 1.0
#: reviews drawn at random for the measurement (at least; Offline draws enough for 4 of the run's batches)
CALIBRATION_REVIEWS = 8192
#: Offline draws at least this many of the run's largest batches, so that the measurement cycles through several
OFFLINE_CALIBRATION_BATCHES = 4
#: the expected rate is the measured one times this, so that the run lasts at least --time even when the
#: machine is faster during the run than during the calibration (less busy), by up to MARGIN x LoadGen's 1.1
#: (:data:`sut.load_plan.OFFLINE_SLACK`)
MARGIN = 2.0
#: a quick SingleStream or MultiStream run may last this many times the measured time of the queries its
#: early-stopping estimate needs (a query through LoadGen and the SUT takes longer than the backend alone)
EARLY_STOPPING_ROOM = 2.0
#: what the measurement is, for its log lines and the errors of :func:`sut.watched_phase.run_watched_phase`
PHASE = "measuring the backend for the quick run's queries"


def calibrate(config: RunConfig, run_settings: RunSettings, split: TokenizedSplit, executor: Executor) -> None:
    """Size a quick run's queries from what ``executor`` measures on reviews of ``split``, an override of
    ``run_settings``: Offline's expected rate, SingleStream's and MultiStream's expected latency. The measurement
    is watched as the run is (:mod:`sut.watched_phase`): a batch past its stall bound, or the backend failing
    with an error of any Python type, is an inference failure (exit 3)."""
    expect = _expect_rate if config.scenario == "Offline" else _expect_latency
    run_watched_phase(PHASE, executor, config.stall_limits, lambda calls: expect(config, run_settings, split, calls))


def _expect_latency(config: RunConfig, run_settings: RunSettings, split: TokenizedSplit, calls: WatchedCalls) -> None:
    """SingleStream's and MultiStream's expected latency: the mean measured, over :data:`MARGIN`."""
    samples = int(run_settings.test_settings.multi_stream_samples_per_query) if config.scenario == "MultiStream" else 1
    mean_s = measure_query_latency(calls, split, samples)
    expected_ns = max(1, round(mean_s / MARGIN * 1e9))
    # no lower than what keeps the prepared queries within the memory bound (a long --time: fewer, slower ones)
    per_query = plan_bytes_per_query(config.scenario, samples)
    fitting_ns = math.ceil(SEQUENTIAL_SLACK * config.duration_s * 1e9 * per_query / (0.9 * memory_bound_bytes()))
    expected_ns = max(expected_ns, fitting_ns)
    lasts = SEQUENTIAL_SLACK * mean_s * 1e9 / expected_ns  # the prepared queries, in --time at the measured pace
    log.info("%s expected latency set to %.4f ms (the %.4f ms mean measured / %g%s), so that the queries LoadGen "
             "prepares (for twice --time at that pace; it stops once --time and its minimum query count are reached) "
             "last at least --time %g s, as a VALID run needs, even if the machine gets up to %.1f x faster",
             config.scenario, expected_ns / 1e6,
             mean_s * 1e3, MARGIN, ", raised so that they fit in memory" if expected_ns == fitting_ns else "",
             config.duration_s, lasts)
    setting = BENCHMARK_SCENARIOS[config.scenario].expected_latency_setting
    run_settings.add_override(Override("calibrated_latency_ms", round(expected_ns / 1e6, 6), {setting: expected_ns}))
    _make_room_for_early_stopping(config, run_settings, mean_s)


def _make_room_for_early_stopping(config: RunConfig, run_settings: RunSettings, mean_s: float) -> None:
    """A quick run goes on until it has the queries LoadGen's early-stopping estimate needs (its
    ``min_query_count``, :func:`sut.settings.load_run_settings`), but LoadGen stops at ``max_duration``: where
    they would take longer at the measured pace (``mean_s`` a query, :data:`EARLY_STOPPING_ROOM` times over for
    the time a query spends in LoadGen and the SUT), raise it so that the run can be VALID, and say how long the
    run will take."""
    needed = BENCHMARK_SCENARIOS[config.scenario].early_stopping_queries
    needed_s = needed * mean_s
    if needed_s <= config.duration_s:
        return
    max_duration_ms = int(run_settings.test_settings.max_duration_ms)
    room_ms = math.ceil(EARLY_STOPPING_ROOM * needed_s * 1e3)
    raised = room_ms > max_duration_ms
    log.info("%s: LoadGen's early-stopping estimate needs at least %d queries, about %.1f s at the %.4f ms measured, "
             "more than --time %g s: the run goes on until they are done%s", config.scenario, needed, needed_s,
             mean_s * 1e3, config.duration_s, f" (max_duration raised to {room_ms / 1e3:g} s)" if raised else "")
    if raised:
        run_settings.add_override(Override("calibrated_max_duration_s", room_ms / 1e3, {"max_duration_ms": room_ms}))


def _expect_rate(config: RunConfig, run_settings: RunSettings, split: TokenizedSplit, calls: WatchedCalls) -> None:
    """Offline's expected rate: :data:`MARGIN` times the rate measured in the run's batches."""
    measured = measure_offline_rate(calls, split, *config.batching())
    rate = round(MARGIN * measured, 1)
    log.info("Offline expected rate set to %s samples/s: %g x the %s measured, so that the query (LoadGen adds 10%%) "
             "lasts at least --time %g s, as a VALID run needs, even if the machine gets up to %.1f x faster "
             "(about %.0f s at the measured pace)", f"{rate:,.1f}", MARGIN, f"{measured:,.0f}", config.duration_s,
             MARGIN * OFFLINE_SLACK, MARGIN * OFFLINE_SLACK * config.duration_s)
    run_settings.add_override(Override("calibrated_qps", rate, {"offline_expected_qps": rate}))


def drawn_reviews(split: TokenizedSplit, count: int, rng: np.random.Generator) -> list[np.ndarray]:
    """``count`` reviews of ``split`` (truncated to :data:`MAX_LENGTH` ids) drawn at random with replacement,
    as LoadGen draws a query's samples: a split of fewer reviews repeats them."""
    return [split.token_ids[index][:MAX_LENGTH] for index in rng.integers(0, len(split), size=count)]


def measure_offline_rate(calls: WatchedCalls, split: TokenizedSplit, max_batch_size: int, max_batch_tokens: int,
                         seconds: float = CALIBRATION_SECONDS) -> float:
    """Reviews per second the backend computes in the run's Offline batches (length-sorted, at most
    ``max_batch_size`` reviews and ``max_batch_tokens`` ids) of reviews drawn from ``split``, running as many
    batches at once as the executor can (:attr:`WatchedCalls.parallel_batches`), one after the other until
    ``seconds`` have passed."""
    rng = np.random.default_rng(0)
    reviews = drawn_reviews(split, max(CALIBRATION_REVIEWS, OFFLINE_CALIBRATION_BATCHES * max_batch_size), rng)
    batches = [[reviews[position] for position in batch]
               for batch in length_sorted_batches([len(ids) for ids in reviews], max_batch_size, max_batch_tokens)]
    order = [int(index) for index in rng.permutation(len(batches))]  # lengths mixed, as a query's parts mix them
    calls.labels(batches[order[0]])  # warm-up
    taken = itertools.count(1)  # the n-th batch taken is batches[order[n % len(order)]], the warm-up's next
    done = [0] * calls.parallel_batches
    started = time.perf_counter()
    deadline = started + seconds

    def run(runner: int) -> None:
        while time.perf_counter() < deadline:
            batch = batches[order[next(taken) % len(order)]]
            calls.labels(batch)
            done[runner] += len(batch)

    _run_on_threads(run, calls.parallel_batches)
    elapsed = time.perf_counter() - started
    rate = sum(done) / elapsed
    log.info("calibration: %s backend ran %d reviews in %.2f s (batches of up to %d reviews): %.0f reviews/s",
             calls.executor.describe().backend, sum(done), elapsed, max(len(batch) for batch in batches), rate)
    return rate


def measure_query_latency(calls: WatchedCalls, split: TokenizedSplit, samples_per_query: int,
                          seconds: float = CALIBRATION_SECONDS) -> float:
    """The mean time (s) the backend takes for one query of ``samples_per_query`` reviews drawn from ``split``
    (SingleStream: 1, MultiStream: 8), one query after the other as LoadGen issues them."""
    rng = np.random.default_rng(0)
    reviews = drawn_reviews(split, max(CALIBRATION_REVIEWS, samples_per_query), rng)
    queries = [reviews[start:start + samples_per_query]
               for start in range(0, len(reviews) - samples_per_query + 1, samples_per_query)]
    calls.labels(queries[0])  # warm-up
    times = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        query = queries[len(times) % len(queries)]
        started = time.perf_counter()
        calls.labels(query)
        times.append(time.perf_counter() - started)
    mean = float(np.mean(times))
    log.info("calibration: %s backend ran %d queries of %d review(s): %.3f ms each on average",
             calls.executor.describe().backend, len(times), samples_per_query, mean * 1e3)
    return mean


def _run_on_threads(run, threads: int) -> None:
    """``run(i)`` on ``threads`` threads, ``i`` = 0 .. threads - 1; the first error raised is raised here once
    every thread has ended. Daemon threads: a thread blocked in a backend that stopped answering must not keep
    the process alive once the watching thread has given up on it."""
    errors: list[BaseException] = []

    def target(runner: int) -> None:
        try:
            run(runner)
        except BaseException as error:  # noqa: BLE001 - raised on the calling thread
            errors.append(error)

    workers = [threading.Thread(target=target, args=(runner,), name=f"calibration-{runner}", daemon=True)
               for runner in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    if errors:
        raise errors[0]

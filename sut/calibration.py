"""How fast the backend runs on this machine, to size a quick run's queries (Offline's rate, SingleStream's
and MultiStream's latency).

An Offline run is one query of ``expected rate x min_duration`` samples, and
it lasts as long as the system needs for them: a quick run (``--time T``)
sized from ``user.conf``'s rate lasts T only if the system runs at exactly that
rate. When ``--time`` is given without ``--qps``, the runner measures the
backend first (about :data:`CALIBRATION_SECONDS`, on length-sorted batches of
random test reviews, as the Offline SUT batches them, as many at once as the
executor runs) and sets the expected rate to :data:`MARGIN` times what it
measured. LoadGen adds 10% of its own (its ``kSlack``), so the query holds
2.2 T seconds of work at the measured pace. The run lasts about 2.2 T when the
machine keeps that pace, longer when it gets busier, and at least T (which a
VALID run needs) as long as the machine does not run it more than 2.2 times
as fast as it ran the calibration: a machine busy during its second of
calibration and idle afterwards ran 1.7 times as fast (a loaded 2-core
machine), which the margin of 1.1 used before could not absorb.

SingleStream and MultiStream are the same problem in latency: LoadGen prepares
queries for twice ``min_duration`` at the expected latency (``target_latency``),
and a machine that answers faster runs out of them early, INVALID (it stops
issuing once ``min_duration`` and ``min_query_count`` are met, so prepared
queries left over cost only their memory). A quick run of either without
``--target-latency`` measures the mean time the executor takes for a query
(:func:`measure_query_latency`; a whole query through LoadGen and the SUT takes
longer) and expects :data:`MARGIN` times less: the prepared queries last at
least 4 T at the measured pace, so the run lasts T on a machine up to 4 times
faster.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from model.batching import length_sorted_batches
from qsl.token_cache import TokenizedSplit
from qsl.vocabulary import MAX_LENGTH
from sut.executor import Executor

log = logging.getLogger(__name__)

#: how long the measurement runs (s), after one warm-up batch
CALIBRATION_SECONDS = 1.0
#: reviews drawn at random for the measurement
CALIBRATION_REVIEWS = 8192
#: the expected rate is the measured one times this, so that the run lasts at least --time even when the
#: machine is faster during the run than during the calibration (less busy), by up to MARGIN x LoadGen's 1.1
#: (:data:`sut.load_plan.OFFLINE_SLACK`)
MARGIN = 2.0


def measure_offline_rate(executor: Executor, split: TokenizedSplit, max_batch_size: int, max_batch_tokens: int,
                         seconds: float = CALIBRATION_SECONDS) -> float:
    """Reviews per second ``executor`` computes in Offline-style batches of random reviews of ``split``, running
    as many batches at once as it can (:attr:`Executor.parallel_batches`)."""
    rng = np.random.default_rng(0)
    chosen = rng.choice(len(split), size=min(len(split), CALIBRATION_REVIEWS), replace=False)
    reviews = [split.token_ids[index][:MAX_LENGTH] for index in chosen]
    batches = [[reviews[position] for position in batch]
               for batch in length_sorted_batches([len(ids) for ids in reviews], max_batch_size, max_batch_tokens)]
    order = rng.permutation(len(batches))  # lengths mixed, as a random query of the run mixes them
    executor.labels(batches[order[0]])  # warm-up
    started = time.perf_counter()
    deadline = started + seconds

    def run(batch_index: int) -> int:
        if time.perf_counter() >= deadline:
            return 0
        batch = batches[batch_index]
        executor.labels(batch)
        return len(batch)

    with ThreadPoolExecutor(max_workers=executor.parallel_batches, thread_name_prefix="calibration") as pool:
        done = sum(pool.map(run, order))
    elapsed = time.perf_counter() - started
    rate = done / elapsed
    log.info("calibration: %s backend ran %d reviews in %.2f s: %.0f reviews/s", executor.describe().backend,
             done, elapsed, rate)
    return rate


def measure_query_latency(executor: Executor, split: TokenizedSplit, samples_per_query: int,
                          seconds: float = CALIBRATION_SECONDS) -> float:
    """The mean time (s) ``executor`` takes for one query of ``samples_per_query`` random reviews of ``split``
    (SingleStream: 1, MultiStream: 8), one query after the other as LoadGen issues them."""
    rng = np.random.default_rng(0)
    chosen = rng.choice(len(split), size=min(len(split), CALIBRATION_REVIEWS), replace=False)
    reviews = [split.token_ids[index][:MAX_LENGTH] for index in chosen]
    queries = [reviews[start:start + samples_per_query]
               for start in range(0, len(reviews) - samples_per_query + 1, samples_per_query)]
    executor.labels(queries[0])  # warm-up
    times = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        query = queries[len(times) % len(queries)]
        started = time.perf_counter()
        executor.labels(query)
        times.append(time.perf_counter() - started)
    mean = float(np.mean(times))
    log.info("calibration: %s backend ran %d queries of %d review(s): %.3f ms each on average",
             executor.describe().backend, len(times), samples_per_query, mean * 1e3)
    return mean

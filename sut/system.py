"""The Seq2CNN system-under-test: one SUT for the four LoadGen scenarios, over any executor.

The SUT schedules; an executor (:mod:`sut.executor`: this process's backend, or Ray actors) runs each batch.
How each scenario is scheduled:

- SingleStream and MultiStream: the query is computed inside ``issue_queries``
  on LoadGen's thread, as one batch (1 review, or the query's 8 reviews): no
  thread hand-off on the latency path, and the responses written into memory
  reserved once (:class:`sut.responses.ResponseBuffer`: LoadGen has one such
  query outstanding at a time).
- Offline: ``issue_queries`` sorts the query's reviews by length, cuts them
  into batches of at most ``max_batch_size`` reviews and ``max_batch_tokens``
  token ids (similar lengths batch well on every backend), enqueues them and
  returns at once; worker threads run the batches.
- Server: ``issue_queries`` enqueues and returns at once. A worker takes the
  oldest query and, for at most ``batch_wait_s``, gathers the queries that
  arrive behind it into one batch of up to ``max_batch_size`` reviews: under
  load the batches fill without waiting, at low load a query waits at most
  ``batch_wait_s`` (keep it a small part of the latency target).

Failures: an exception inside inference (any ``BaseException``, ``SystemExit``
and ``KeyboardInterrupt`` too, which must not unwind into LoadGen's threads),
or a backend that does not return one label per review, whatever the executor,
is recorded in :attr:`error`, the :attr:`failed` event is set, and every sample
in hand or arriving later is completed with an empty response so that no
LoadGen thread waits forever; the LoadGen driver (:mod:`sut.loadgen_driver`) then
stops the run with an inference failure (exit 3).

Stalls: :attr:`clock` (:class:`sut.stall.BatchClock`) times every hand-over of a batch to the executor, so
that a batch that never returns is seen (:meth:`Seq2CNNSystem.stalled`, asked by the LoadGen driver): the run
then fails as above, with :class:`common.errors.InferenceStalledError`.

Bookkeeping: :attr:`ledger` (:class:`sut.ledger.SampleLedger`) counts every
sample LoadGen issued and every one completed, so a run can prove that each
was completed exactly once, and times each sample from the moment
``issue_queries`` received it to the moment its response went back.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Sequence

import mlperf_loadgen as lg
import numpy as np

from common.errors import InferenceStalledError
from model.batching import length_sorted_batches
from qsl.library import ImdbQSL
from sut.executor import Executor, check_labels
from sut.ledger import SampleLedger
from sut.responses import ResponseBuffer, complete_samples, complete_without_result
from sut.settings import RunSettings
from sut.stall import BatchClock, StallLimits

log = logging.getLogger(__name__)

#: The Server batch wait never exceeds this fraction of the latency target.
MAX_WAIT_FRACTION_OF_TARGET = 0.1
INLINE_SCENARIOS = {"SingleStream", "MultiStream"}
QUEUED_SCENARIOS = {"Server", "Offline"}
#: samples of one inline query answered from the reserved response memory (MultiStream's are 8; more are
#: answered all the same, from an array made for them)
INLINE_QUERY_SAMPLES = 64
_STOP = object()


def server_batch_wait_s(requested_ms: float, run_settings: RunSettings) -> float:
    """The Server batch wait in seconds: as requested, capped at a tenth of the latency target."""
    target_s = run_settings.test_settings.server_target_latency_ns / 1e9
    wait_s = min(requested_ms / 1e3, MAX_WAIT_FRACTION_OF_TARGET * target_s)
    if wait_s < requested_ms / 1e3:
        log.warning("--batch-wait-ms %.3g capped at %.3g ms, a tenth of the %.3g ms latency target",
                    requested_ms, wait_s * 1e3, target_s * 1e3)
    return wait_s


class Seq2CNNSystem:
    """LoadGen SUT over ``executor`` and ``qsl`` for ``scenario``; ``handle`` is LoadGen's SUT. The batching
    limits (reviews, token ids, the Server wait in s) and the worker threads come from :class:`sut.config.RunConfig`."""

    def __init__(self, executor: Executor, qsl: ImdbQSL, scenario: str, *,
                 max_batch_size: int, max_batch_tokens: int, batch_wait_s: float, workers: int,
                 stall_limits: StallLimits = StallLimits()):
        if scenario not in INLINE_SCENARIOS | QUEUED_SCENARIOS:
            raise ValueError(f"unknown scenario {scenario!r}")
        if max_batch_size < 1 or max_batch_tokens < 1 or workers < 1 or batch_wait_s < 0:
            raise ValueError("batch size, token budget and workers must be at least 1, the batch wait at least 0")
        self.executor = executor
        self.backend_name = executor.describe().backend
        self.qsl = qsl
        self.scenario = scenario
        self.max_batch_size = max_batch_size
        self.max_batch_tokens = max_batch_tokens
        self.batch_wait_s = batch_wait_s
        self.ledger = SampleLedger()
        self.error: BaseException | None = None
        self.failed = threading.Event()
        #: every batch handed to the executor, until it returns; an executor that watches its own batches in
        #: flight (Ray's pool) gets only the ceiling as a backstop here
        self.clock = BatchClock(stall_limits, derived=not executor.watches_own_stalls)
        self._batch_name = f"{'an' if scenario[0] in 'AEIOU' else 'a'} {scenario} batch"
        self._where = executor.stall_location
        #: inline scenarios answer each query from memory reserved once (one query is outstanding at a time)
        self._responses = ResponseBuffer(INLINE_QUERY_SAMPLES) if scenario in INLINE_SCENARIOS else None
        self._queue: queue.Queue = queue.Queue()
        self._workers: list[threading.Thread] = []
        if scenario in QUEUED_SCENARIOS:
            self._workers = [
                threading.Thread(target=self._work, name=f"sut-worker-{i}", daemon=True) for i in range(workers)
            ]
            for worker in self._workers:
                worker.start()
        self.handle = lg.ConstructSUT(self.issue_queries, self.flush_queries)

    # LoadGen callbacks -------------------------------------------------

    def issue_queries(self, query_samples: Sequence[lg.QuerySample]) -> None:
        samples = [(sample.id, sample.index) for sample in query_samples]
        self.ledger.record_issued([sample_id for sample_id, _ in samples])
        if self._responses is not None:  # SingleStream, MultiStream
            self._run_batch(samples)
        elif self.scenario == "Offline":
            for batch in self._length_sorted_batches(samples):
                self._queue.put(batch)
        else:
            self._queue.put(samples)

    def _length_sorted_batches(self, samples: list[tuple[int, int]]) -> list[list[tuple[int, int]]]:
        """Samples longest first, cut at ``max_batch_size`` reviews or ``max_batch_tokens`` ids."""
        lengths = [len(self.qsl.token_ids(index)) for _, index in samples]
        batches = length_sorted_batches(lengths, self.max_batch_size, self.max_batch_tokens)
        return [[samples[position] for position in batch] for batch in batches]

    def flush_queries(self) -> None:
        """Nothing is held back waiting for more work, so there is nothing to flush."""

    # Work ----------------------------------------------------------------

    def _run_batch(self, samples: list[tuple[int, int]]) -> None:
        sample_ids = [sample_id for sample_id, _ in samples]
        if self.failed.is_set():
            complete_without_result(sample_ids)
            self.ledger.record_completed(sample_ids)
            return
        key = threading.get_ident()  # one batch at a time on each thread that hands batches over
        self.clock.start(key, len(sample_ids), self._batch_name, self._where)
        try:
            self.executor.run(sample_ids, [self.qsl.token_ids(index) for _, index in samples], self._complete,
                              self._fail)
        except BaseException as error:  # noqa: BLE001 - any inference failure must stop the run, not hang it
            self._fail(sample_ids, error)
        finally:
            self.clock.stop(key)

    def _complete(self, sample_ids: Sequence[int], labels: np.ndarray) -> None:
        """A batch's labels (on the thread that ran it, or the executor's completion thread): to LoadGen."""
        ids = _as_list(sample_ids)
        try:
            labels = check_labels(labels, len(ids), self.backend_name)
        except BaseException as error:  # noqa: BLE001
            self._fail(ids, error)
            return
        if self.failed.is_set():
            complete_without_result(ids)
        elif self._responses is not None:
            self._responses.complete(ids, labels)
        else:
            complete_samples(ids, labels)
        self.ledger.record_completed(ids)

    def _fail(self, sample_ids: Sequence[int], error: BaseException) -> None:
        """A batch cannot complete: stop the run, and answer its samples so that LoadGen does not wait."""
        ids = _as_list(sample_ids)
        if self.error is None:
            self.error = error
            log.error("inference failed in the %s backend: %s: %s", self.backend_name, type(error).__name__, error,
                      exc_info=error)
        self.failed.set()
        complete_without_result(ids)
        self.ledger.record_completed(ids)

    def stalled(self) -> bool:
        """Whether a batch handed to the executor is past its stall bound; the run then fails (:attr:`error`
        says which batch, how long it waited and the bound). The stalled batch's own samples stay unanswered:
        the thread that holds it does not return."""
        found = self.clock.stalled()
        if found is None:
            return False
        if self.error is None:
            self.error = InferenceStalledError(found[1].message())
            log.error("%s", self.error)
        self.failed.set()
        return True

    def _work(self) -> None:
        while True:
            task = self._queue.get()
            if task is _STOP:
                return
            batch = list(task)
            if self.scenario == "Server":
                self._gather_waiting(batch)
            self._run_batch(batch)

    def _gather_waiting(self, batch: list[tuple[int, int]]) -> None:
        """Add queries that are queued or arrive within ``batch_wait_s`` to ``batch``, up to the batch size."""
        deadline = time.perf_counter() + self.batch_wait_s
        while len(batch) < self.max_batch_size:
            remaining = deadline - time.perf_counter()
            try:
                more = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
            except queue.Empty:
                return
            if more is _STOP:
                self._queue.put(_STOP)
                return
            batch.extend(more)

    def reset_ledger(self, capacity: int) -> None:
        """Start a new ledger reserved for ``capacity`` samples, for the next LoadGen test over this SUT."""
        self.ledger = SampleLedger(capacity)

    # Shutdown ------------------------------------------------------------

    def shutdown(self) -> None:
        """Stop the workers (after the queued work) and release LoadGen's SUT."""
        for _ in self._workers:
            self._queue.put(_STOP)
        for worker in self._workers:
            worker.join()
        self._workers = []
        lg.DestroySUT(self.handle)


def _as_list(sample_ids: Sequence[int]) -> list[int]:
    """Sample ids as LoadGen's calls take them: the SUT's own list as it is, an executor's array as a list."""
    return sample_ids.tolist() if isinstance(sample_ids, np.ndarray) else list(sample_ids)

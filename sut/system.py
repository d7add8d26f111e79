"""The Seq2CNN system-under-test: one SUT for the four LoadGen scenarios, over any executor.

The SUT schedules; an executor (:mod:`sut.executor`: this process's backend, or Ray actors) runs each batch.
How each scenario is scheduled:

- SingleStream and MultiStream: the query is computed inside ``issue_queries``
  on LoadGen's thread, as one batch (1 review, or the query's 8 reviews): no
  thread hand-off on the latency path, and the responses written into memory
  reserved once (:class:`sut.responses.ResponseBuffer`: LoadGen has one such
  query outstanding at a time).
- Offline: ``issue_queries`` sorts the query's reviews by length (in parts of
  :data:`OFFLINE_SORT_SAMPLES` or more, so that work starts early), cuts them
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
from model.batching import length_sorted_cuts
from qsl.library import ImdbQSL
from sut.executor import Executor, check_labels
from sut.ledger import SampleLedger
from sut.loadgen_c_api import c_api
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
#: an Offline query is sorted by length in parts of this many samples, or of this many batches if more, each
#: part's batches queued as soon as it is cut: the workers start after the first part instead of after a sort
#: of the whole query (a million samples: 30 ms on the critical path), and the batches stay as tight as
#: those of one sort (each holds at most 1/64 of a part's range of lengths)
OFFLINE_SORT_SAMPLES = 1 << 16
OFFLINE_SORT_BATCHES = 16


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
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._workers: list[threading.Thread] = []
        if scenario in QUEUED_SCENARIOS:
            self._workers = [
                threading.Thread(target=self._work, name=f"sut-worker-{i}", daemon=True) for i in range(workers)
            ]
            for worker in self._workers:
                worker.start()
        # Never one QuerySample object per sample: Offline and Server queries arrive as two arrays through
        # LoadGen's C API (sut.loadgen_c_api), where it is reached; SingleStream and MultiStream queries (and
        # the others without it) as two lists of ints through the binding's "fast" SUT, which costs a one-sample
        # query less than a call through ctypes (measured with an instant backend: p90 2.8 against 5.6 us)
        api = c_api() if scenario in QUEUED_SCENARIOS else None
        self._array_sut = api.construct_sut("Seq2CNN", self._issue_arrays, self.flush_queries) if api else None
        self.handle = (self._array_sut.handle if self._array_sut is not None
                       else lg.ConstructFastSUT(self.issue_queries, self.flush_queries))
        #: how queries and responses cross to LoadGen: ``arrays`` (its C API) or ``objects`` (its binding)
        self.completion = "arrays" if self._array_sut is not None else "objects"

    # LoadGen callbacks -------------------------------------------------

    def _issue_arrays(self, response_ids: np.ndarray, indices: np.ndarray) -> None:
        """The C API's issue callback (on LoadGen's thread): as :meth:`issue_queries`. Nothing may escape into
        LoadGen here (ctypes would drop it): a failure fails the query's samples, so that LoadGen does not wait."""
        try:
            self.issue_queries(response_ids, indices)
        except BaseException as error:  # noqa: BLE001 - answered, not raised into LoadGen's thread
            self._fail(response_ids, error)

    def issue_queries(self, response_ids: Sequence[int], indices: Sequence[int]) -> None:
        """LoadGen's issue callback: sample ``response_ids[i]`` asks for QSL sample ``indices[i]`` (lists of ints
        from the binding, uint64 and int64 arrays from the C API)."""
        if self._responses is not None:  # SingleStream, MultiStream
            self.ledger.record_issued(response_ids)
            self._run_batch(response_ids, indices)
        elif self.scenario == "Offline":
            self._queue_offline(response_ids, indices)
        else:
            self.ledger.record_issued(response_ids)
            self._queue.put((response_ids, indices))

    def _queue_offline(self, response_ids: Sequence[int], indices: Sequence[int]) -> None:
        """Queue an Offline query's batches part by part. Should a part fail (its lengths, its sort), the samples
        not yet queued are failed, and only those: the queued ones are answered by the workers, once."""
        chunk = max(OFFLINE_SORT_SAMPLES, OFFLINE_SORT_BATCHES * self.max_batch_size)
        queued = recorded = 0  # samples handed to the workers, and recorded as issued, so far
        try:
            for start in range(0, len(response_ids), chunk):
                ids = np.asarray(response_ids[start:start + chunk], dtype=np.uint64)
                self.ledger.record_issued(ids)
                recorded = start + len(ids)
                part = np.asarray(indices[start:start + chunk], dtype=np.int64)
                for batch in self._length_sorted_batches(ids, part):
                    self._queue.put(batch)
                queued = start + len(ids)
        except BaseException as error:  # noqa: BLE001 - answered, so that LoadGen does not wait for them
            self.ledger.record_issued(np.asarray(response_ids[recorded:], dtype=np.uint64))
            self._fail(np.asarray(response_ids[queued:], dtype=np.uint64), error)

    def _length_sorted_batches(self, ids: np.ndarray, indices: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """The query's samples (response ids, QSL indices) longest first, cut at ``max_batch_size`` reviews or
        ``max_batch_tokens`` ids: (ids, indices) array pairs, one per batch."""
        order, bounds = length_sorted_cuts(self.qsl.lengths(indices), self.max_batch_size, self.max_batch_tokens)
        ids, indices = ids[order], indices[order]  # once, so that each batch is a view
        return [(ids[start:end], indices[start:end]) for start, end in zip(bounds[:-1], bounds[1:])]

    def flush_queries(self) -> None:
        """Nothing is held back waiting for more work, so there is nothing to flush."""

    # Work ----------------------------------------------------------------

    def _run_batch(self, sample_ids: Sequence[int], indices: Sequence[int]) -> None:
        """Run the batch of LoadGen samples ``sample_ids`` (a list, or a uint64 array), QSL ``indices``."""
        if self.failed.is_set():
            complete_without_result(sample_ids)
            self.ledger.record_completed(sample_ids)
            return
        key = threading.get_ident()  # one batch at a time on each thread that hands batches over
        self.clock.start(key, len(sample_ids), self._batch_name, self._where)
        try:
            self.executor.run(sample_ids, self.qsl.reviews(indices), self._complete, self._fail)
        except BaseException as error:  # noqa: BLE001 - any inference failure must stop the run, not hang it
            self._fail(sample_ids, error)
        finally:
            self.clock.stop(key)

    def _complete(self, sample_ids: Sequence[int], labels: np.ndarray) -> None:
        """A batch's labels (on the thread that ran it, or the executor's completion thread): to LoadGen."""
        ids = sample_ids
        try:
            labels = check_labels(labels, len(ids), self.backend_name)
        except BaseException as error:  # noqa: BLE001
            self._fail(ids, error)
            return
        if self.failed.is_set():
            complete_without_result(ids)
        elif self._responses is not None:
            self._responses.complete(_as_list(ids), labels)
        else:
            complete_samples(ids, labels)
        self.ledger.record_completed(ids)

    def _fail(self, sample_ids: Sequence[int], error: BaseException) -> None:
        """A batch cannot complete: stop the run, and answer its samples so that LoadGen does not wait."""
        ids = sample_ids
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
            ids, indices = task
            if self.scenario == "Server":
                ids, indices = _as_list(ids, copy=True), _as_list(indices, copy=True)
                self._gather_waiting(ids, indices)
            self._run_batch(ids, indices)

    def _gather_waiting(self, ids: list[int], indices: list[int]) -> None:
        """Add queries that are queued or arrive within ``batch_wait_s`` to the batch (``ids``, ``indices``), up
        to the batch size."""
        deadline = time.perf_counter() + self.batch_wait_s
        while len(ids) < self.max_batch_size:
            remaining = deadline - time.perf_counter()
            try:
                more = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
            except queue.Empty:
                return
            if more is _STOP:
                self._queue.put(_STOP)
                return
            ids.extend(_as_list(more[0]))
            indices.extend(_as_list(more[1]))

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
        if self._array_sut is not None:
            self._array_sut.destroy()
        else:
            lg.DestroyFastSUT(self.handle)


def _as_list(values: Sequence[int], copy: bool = False) -> list[int]:
    """Ids or indices as a list of ints: a list as it is (a copy when ``copy``), an array's values."""
    if isinstance(values, list):
        return list(values) if copy else values
    return values.tolist() if isinstance(values, np.ndarray) else list(values)

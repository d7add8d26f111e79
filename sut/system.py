"""The Seq2CNN system-under-test: one SUT for the four LoadGen scenarios.

How each scenario is served:

- SingleStream and MultiStream: the query is computed inside ``issue_queries``
  on LoadGen's thread, as one batch (1 review, or the query's 8 reviews): no
  thread hand-off on the latency path.
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
or a backend that does not return one label per review (:class:`InferenceError`),
is recorded in :attr:`error`, the :attr:`failed` event is set, and every sample
in hand or arriving later is completed with an empty response so that no
LoadGen thread waits forever; the runner then stops the run with the error and
a non-zero exit code.

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

from model.backends import Backend
from model.batching import length_sorted_batches
from qsl.library import ImdbQSL
from sut.ledger import SampleLedger
from sut.responses import complete_samples, complete_without_result

log = logging.getLogger(__name__)

INLINE_SCENARIOS = {"SingleStream", "MultiStream"}
QUEUED_SCENARIOS = {"Server", "Offline"}
_STOP = object()


class InferenceError(RuntimeError):
    """Inference went wrong inside the SUT: a backend's bad answer, or a non-``Exception`` it raised."""


class Seq2CNNSystem:
    """LoadGen SUT over ``backend`` and ``qsl`` for ``scenario``; ``handle`` is LoadGen's SUT."""

    def __init__(
        self, backend: Backend, qsl: ImdbQSL, scenario: str, *,
        max_batch_size: int = 32, max_batch_tokens: int = 1 << 30, batch_wait_s: float = 0.0, workers: int = 1,
    ):
        if scenario not in INLINE_SCENARIOS | QUEUED_SCENARIOS:
            raise ValueError(f"unknown scenario {scenario!r}")
        if max_batch_size < 1 or max_batch_tokens < 1 or workers < 1 or batch_wait_s < 0:
            raise ValueError("batch size, token budget and workers must be at least 1, the batch wait at least 0")
        self.backend = backend
        self.qsl = qsl
        self.scenario = scenario
        self.max_batch_size = max_batch_size
        self.max_batch_tokens = max_batch_tokens
        self.batch_wait_s = batch_wait_s
        self.ledger = SampleLedger()
        self.error: BaseException | None = None
        self.failed = threading.Event()
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
        if self.scenario in INLINE_SCENARIOS:
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
        self._dispatch(samples, sample_ids)

    def _dispatch(self, samples: list[tuple[int, int]], sample_ids: list[int]) -> None:
        """Compute a batch here and complete it to LoadGen (:class:`sut.ray_system.RaySystem` sends it to an
        actor instead)."""
        try:
            labels = self._labels(samples)
        except BaseException as error:  # noqa: BLE001 - any inference failure must stop the run, not hang it
            self._record_failure(error)
            complete_without_result(sample_ids)
        else:
            complete_samples(sample_ids, labels)
        self.ledger.record_completed(sample_ids)

    def _labels(self, samples: list[tuple[int, int]]) -> np.ndarray:
        """The backend's labels for ``samples``: one int64 per review, or :class:`InferenceError`."""
        labels = np.asarray(self.backend.labels([self.qsl.token_ids(index) for _, index in samples]))
        if labels.shape != (len(samples),) or not np.issubdtype(labels.dtype, np.integer):
            raise InferenceError(
                f"the {self.backend.name} backend answered a batch of {len(samples)} reviews with {labels.dtype} "
                f"labels of shape {labels.shape}; a backend returns one integer label per review (shape "
                f"({len(samples)},)): fix the backend"
            )
        return labels

    def _record_failure(self, error: BaseException) -> None:
        if self.error is None:
            self.error = error
            log.error("inference failed in the %s backend: %s: %s", self.backend.name, type(error).__name__, error, exc_info=error)
        self.failed.set()

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

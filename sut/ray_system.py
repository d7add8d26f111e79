"""The SUT with its batches run on Ray backend actors (``run.py --ray``).

Scheduling stays that of :class:`sut.system.Seq2CNNSystem` (inline SingleStream and MultiStream queries,
Offline batches by length, Server's bounded-wait batching); only where a batch runs changes: instead of
computing it, the SUT hands it to :class:`sut.ray_pool.ActorPool`, which returns at once (or waits while
every actor is full, so that the Server batcher gathers the queries that arrive meanwhile into its next
batch). Results come back on the pool's completion thread, with their own sample ids, and are completed
to LoadGen and recorded in the ledger there. A batch that cannot complete (every actor died, a backend
error) is completed with an empty response and fails the run (exit 3), as a local backend error does.
"""

from __future__ import annotations

import numpy as np

from qsl.library import ImdbQSL
from sut.ray_pool import ActorPool
from sut.responses import complete_samples, complete_without_result
from sut.system import Seq2CNNSystem


class RaySystem(Seq2CNNSystem):
    """:class:`Seq2CNNSystem` over an :class:`ActorPool` (the pool is also its ``backend``, for its name)."""

    def __init__(self, pool: ActorPool, qsl: ImdbQSL, scenario: str, **batching):
        super().__init__(pool, qsl, scenario, **batching)
        self.pool = pool

    def _dispatch(self, samples: list[tuple[int, int]], sample_ids: list[int]) -> None:
        """Hand the batch to the pool; its result completes on the pool's completion thread."""
        try:
            self.pool.submit(sample_ids, [self.qsl.token_ids(index) for _, index in samples], self._complete,
                             self._fail)
        except BaseException as error:  # noqa: BLE001 - must not unwind into LoadGen's thread
            self._fail(np.asarray(sample_ids, dtype=np.uint64), error)

    def _complete(self, sample_ids: np.ndarray, labels: np.ndarray) -> None:
        """A batch's labels came back (on the pool's completion thread; the actor checked them: one int64 per
        sample)."""
        ids = sample_ids.tolist()
        if self.failed.is_set():
            complete_without_result(ids)
        else:
            complete_samples(ids, labels)
        self.ledger.record_completed(ids)

    def _fail(self, sample_ids: np.ndarray, error: BaseException) -> None:
        """A batch cannot complete: stop the run, and answer its samples so that LoadGen does not wait."""
        self._record_failure(error)
        ids = sample_ids.tolist()
        complete_without_result(ids)
        self.ledger.record_completed(ids)

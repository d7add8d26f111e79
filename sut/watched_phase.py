"""A phase of a run that calls the backend outside LoadGen's test, held to the test's guarantees.

During the LoadGen test, the SUT times every batch (:class:`sut.stall.BatchClock`) and the LoadGen driver
ends the run with exit 3 when a batch is past its stall bound or the backend raised anything
(:func:`sut.executor.inference_failure`). Some phases call the backend before the test starts: the quick
run's measurement (:mod:`sut.calibration`), and through it a Ray pool's synchronous ``labels``. Each runs
through :func:`run_watched_phase`, which gives it the same guarantees, and names the phase in its errors:

- the work runs on a thread of its own while the calling thread watches (and stays free for a signal's
  :class:`common.errors.RunInterrupted`);
- every backend call goes through :meth:`WatchedCalls.labels`, timed on the same clock with the same bound
  as the test's batches: the ceiling (``--stall-timeout-max``) until a batch has completed, then
  :data:`sut.stall.STALL_FACTOR` times the slowest time per review so far, no less than ``--stall-timeout``.
  An executor that watches its own batches (Ray's pool, which declares a hung actor itself and fails the
  batch once no actor is left) gets the ceiling as a backstop, as in the test;
- a batch past its bound is :class:`common.errors.InferenceStalledError`; an error of any Python type raised
  by the backend is :class:`common.errors.InferenceFailedError` (exit 3 both). An error raised by the phase's
  own code outside the backend is this program's error and is raised as it is.

The thread of a stalled phase is left behind (a daemon, blocked in the backend): nothing can stop it from
Python; the run ends without it.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Sequence
from typing import TypeVar

import numpy as np

from common.errors import InferenceFailedError, InferenceStalledError
from sut.executor import Executor, inference_failure
from sut.stall import BatchClock, StallLimits

#: how often the watching thread looks whether the phase ended or a batch is past its bound (s)
POLL_SECONDS = 0.2

Result = TypeVar("Result")


class BackendFailed(Exception):
    """The backend raised inside :meth:`WatchedCalls.labels`: carries the inference failure to the watcher."""

    def __init__(self, failure: InferenceFailedError):
        super().__init__(str(failure))
        self.failure = failure


class WatchedCalls:
    """The backend calls of one watched phase: each :meth:`labels` call is one batch on :attr:`clock`.

    Safe to call from several threads at once (each call has its own key on the clock).
    """

    def __init__(self, executor: Executor, limits: StallLimits):
        self.executor = executor
        self.clock = BatchClock(limits, derived=not executor.watches_own_stalls)
        self._keys = itertools.count()
        self._where = executor.stall_location

    @property
    def parallel_batches(self) -> int:
        """How many batches the executor can run at once."""
        return self.executor.parallel_batches

    def labels(self, token_ids: Sequence[np.ndarray]) -> np.ndarray:
        """The executor's labels of one batch (int64, shape ``(len(token_ids),)``), timed on :attr:`clock`; any
        error raised inside it is :class:`BackendFailed`."""
        key = next(self._keys)
        self.clock.start(key, len(token_ids), "a batch", self._where)
        try:
            return self.executor.labels(token_ids)
        except BaseException as error:  # noqa: BLE001 - any type: an inference failure, as in the test
            raise BackendFailed(inference_failure(error)) from error
        finally:
            self.clock.stop(key)


def run_watched_phase(phase: str, executor: Executor, limits: StallLimits,
                      work: Callable[[WatchedCalls], Result]) -> Result:
    """Run ``work`` (which calls the backend only through the :class:`WatchedCalls` it is given) on a thread of
    its own, watched as the LoadGen test is (see the module docstring), and return what it returns.

    ``phase`` completes the sentence "while ...", e.g. "measuring the backend for the quick run's queries".
    :class:`InferenceStalledError` when a batch is past its stall bound, :class:`InferenceFailedError` when the
    backend raised; an error of ``work``'s own code is raised as it is.
    """
    calls = WatchedCalls(executor, limits)
    outcome: list[tuple[bool, object]] = []

    def target() -> None:
        try:
            outcome.append((True, work(calls)))
        except BaseException as error:  # noqa: BLE001 - handed to the watching thread
            outcome.append((False, error))

    worker = threading.Thread(target=target, name=f"watched: {phase}", daemon=True)
    worker.start()
    while worker.is_alive():
        worker.join(timeout=POLL_SECONDS)  # short waits: a signal's RunInterrupted is raised here meanwhile
        stalled = calls.clock.stalled()
        if stalled is not None and worker.is_alive():
            raise InferenceStalledError(stalled[1].message(phase))
    succeeded, value = outcome[0]
    if succeeded:
        return value  # type: ignore[return-value]
    if isinstance(value, BackendFailed):
        failure = value.failure
        raise InferenceFailedError(f"while {phase}: {failure}", failure.cause) from failure.cause
    raise value  # type: ignore[misc]

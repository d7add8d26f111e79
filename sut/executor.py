"""The seam where the SUT's batches run: an executor computes a batch's labels, here or elsewhere.

The SUT (:mod:`sut.system`) decides *which* reviews form a batch and *when*
(SingleStream inline, Offline by length, Server's bounded-wait batching); an
executor decides *where* the batch runs:

- :class:`sut.local_executor.LocalExecutor`: on the calling thread, with a
  backend of this process (:mod:`model.backends`).
- :class:`sut.ray_executor.RayExecutor`: on a pool of Ray backend actors, in
  other processes or on other machines.

:meth:`Executor.run` may return before the batch is done; exactly one of its
two callbacks is then called once, on any thread: ``complete(sample_ids,
labels)`` or ``fail(sample_ids, error)``. An exception raised by ``run``
itself fails the batch the same way. To add an executor (a GPU stream pool, a
remote server), implement this class and name it in
:func:`sut.runner.executor_class`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from common.errors import InferenceFailedError
from readback.cluster import ClusterInfo

if TYPE_CHECKING:
    from model.backends import Backend
    from sut.config import RunConfig

#: called with (sample ids, labels int64 of shape (len(sample_ids),)) of a batch that completed
Complete = Callable[[Sequence[int], np.ndarray], None]
#: called with (sample ids, the error) of a batch that cannot complete
Fail = Callable[[Sequence[int], BaseException], None]


@dataclass(frozen=True)
class ExecutorInfo:
    """What ``run.json`` records of where batches ran: the backend's name and table precision, for the
    folded backend where its tables came from (``cache`` or ``built``) and the seconds that took, and the
    software that computed (the backend's ``framework``; None for a backend that does not say)."""

    backend: str
    precision: str = "fp32"
    tables_source: str | None = None
    tables_load_seconds: float | None = None
    framework: str | None = None


class Executor(ABC):
    """Where the SUT's batches run; see the module docstring. Use as ``open()`` ... ``close()``."""

    @classmethod
    @abstractmethod
    def from_config(cls, config: RunConfig, backend: Backend | None = None) -> Executor:
        """The executor ``config`` asks for (not yet open); ``backend``, where given, replaces ``--backend``."""

    @classmethod
    def check_available(cls, config: RunConfig) -> None:
        """Refuse, before anything loads, a run this executor cannot serve here (:class:`BadInputError`)."""

    @abstractmethod
    def open(self) -> None:
        """Make the backend(s) ready: load weights, build or read tables, start actors."""

    @abstractmethod
    def run(self, sample_ids: Sequence[int], token_ids: Sequence[np.ndarray], complete: Complete, fail: Fail) -> None:
        """Compute the labels of one batch (``token_ids[i]`` is sample ``sample_ids[i]``'s unpadded review) and
        hand them to ``complete``, or the error to ``fail``."""

    @abstractmethod
    def labels(self, token_ids: Sequence[np.ndarray]) -> np.ndarray:
        """The labels of one batch, waiting for them (the quick run's measurement): called only through
        :mod:`sut.watched_phase`, which bounds the wait and maps the errors as the LoadGen test does."""

    @property
    @abstractmethod
    def parallel_batches(self) -> int:
        """How many batches can run at once (the calibration runs as many)."""

    @abstractmethod
    def describe(self) -> ExecutorInfo:
        """The backend and its tables, for ``run.json``."""

    #: whether the executor declares its own batches in flight stalled (the SUT then times its hand-overs only
    #: against the stall ceiling, :mod:`sut.stall`)
    watches_own_stalls: bool = False

    @property
    def stall_location(self) -> str:
        """Where a batch handed over waits, for a stall's message."""
        return f"the {self.describe().backend} backend"

    def cluster(self) -> ClusterInfo | None:
        """The cluster the batches ran on, its actors and faults so far; None when they ran in this process."""
        return None

    def close(self, drain: bool = True) -> None:
        """Release the backend(s); when ``drain``, after the batches in flight (a run that failed does not wait)."""


def check_labels(labels: np.ndarray, batch_size: int, backend: str) -> np.ndarray:
    """``labels`` as the int64 array of one label per review that LoadGen gets, or :class:`InferenceFailedError`."""
    if type(labels) is np.ndarray and labels.dtype == np.int64 and labels.shape == (batch_size,):
        return labels  # what every backend of this project returns: checked without the general test below
    labels = np.asarray(labels)
    if labels.shape != (batch_size,) or not np.issubdtype(labels.dtype, np.integer):
        raise InferenceFailedError(
            f"the {backend} backend answered a batch of {batch_size} reviews with {labels.dtype} labels of shape "
            f"{labels.shape}; a backend returns one integer label per review (shape ({batch_size},)): fix the backend")
    return labels


def inference_failure(error: BaseException) -> InferenceFailedError:
    """The inference failure that ``error``, raised while computing a batch, means, whatever its Python type."""
    if isinstance(error, InferenceFailedError):
        return error
    if isinstance(error, Exception):
        return InferenceFailedError(f"{type(error).__name__}: {error}", error)
    # SystemExit, KeyboardInterrupt... from the backend: inference failed, the process did not ask to end
    return InferenceFailedError(f"{type(error).__name__} raised inside the backend: {error}", error)

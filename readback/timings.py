"""A run's sample bookkeeping as read back: the counts ``run.json`` keeps and the ``sut_timings.npz`` file.

The SUT's ledger (:class:`sut.ledger.SampleLedger`) writes both; the run report reads them here.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common.errors import BadInputError


class TimingsError(BadInputError):
    """A ``sut_timings.npz`` that cannot be read."""


@dataclass(frozen=True)
class SampleCounts:
    """A run's sample bookkeeping: samples issued and completed, and the three ways that can go wrong."""

    issued: int
    completed: int
    never_completed: int
    completed_more_than_once: int
    completed_not_issued: int


@dataclass
class SutTimings:
    """Each completed sample's issue and completion time as the SUT measured them: int64 ns since the first issue,
    shape ``(completed samples,)``, in completion order."""

    issued_ns: np.ndarray
    completed_ns: np.ndarray

    @property
    def latencies_ms(self) -> np.ndarray:
        """Per-sample latency as the SUT saw it, in ms."""
        return (self.completed_ns - self.issued_ns) / 1e6


def read_sut_timings(path: Path) -> SutTimings | None:
    """The timings saved by :meth:`SampleLedger.save_timings` at ``path``; None when there is no such file."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as arrays:
            issued, completed = arrays["issued_ns"].astype(np.int64), arrays["completed_ns"].astype(np.int64)
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as error:
        raise TimingsError(f"{path} is not a timings file with int64 arrays issued_ns and completed_ns ({error}): "
                           "remove it to report without per-sample latencies") from None
    if issued.shape != completed.shape or issued.ndim != 1:
        raise TimingsError(f"{path}: issued_ns {issued.shape} and completed_ns {completed.shape} must be 1-D of one "
                           "length; remove it to report without per-sample latencies")
    return SutTimings(issued, completed)


"""Which samples LoadGen issued and the SUT completed, and when: the ledger, its counts and its timings file.

The SUT records every sample id ``issue_queries`` received and every one it
completed (:class:`SampleLedger`), so a run can prove that each was completed
exactly once (:class:`SampleCounts`, kept in ``run.json``), and the time of
both, saved as ``sut_timings.npz`` and read back by :func:`read_sut_timings`
(the run report's latency histogram and throughput over time).
"""

from __future__ import annotations

import threading
import time
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from qsl.files import atomic_write


class TimingsError(RuntimeError):
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
class SampleLedger:
    """Which LoadGen sample ids were issued, how often each was completed, and when.

    Times are ``time.perf_counter_ns()`` readings: ``issued_at`` maps a sample id
    to when ``issue_queries`` received it; ``timings`` holds one
    ``(issued_ns, completed_ns)`` pair per completion, in completion order.
    """

    issued: Counter = field(default_factory=Counter)
    completed: Counter = field(default_factory=Counter)
    issued_at: dict[int, int] = field(default_factory=dict)
    timings: list[tuple[int, int]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    #: running totals, cheap to read while the run goes on (progress)
    issued_total: int = 0
    completed_total: int = 0

    def record_issued(self, sample_ids: Sequence[int]) -> None:
        now = time.perf_counter_ns()
        with self.lock:
            self.issued.update(sample_ids)
            self.issued_total += len(sample_ids)
            for sample_id in sample_ids:
                self.issued_at[sample_id] = now

    def record_completed(self, sample_ids: Sequence[int]) -> None:
        now = time.perf_counter_ns()
        with self.lock:
            self.completed.update(sample_ids)
            self.completed_total += len(sample_ids)
            self.timings.extend((self.issued_at.get(sample_id, now), now) for sample_id in sample_ids)

    def save_timings(self, path: Path) -> int:
        """Write ``issued_ns`` and ``completed_ns`` (int64, ns since the first issue) to ``path`` (.npz).

        One entry per completed sample, in completion order; a sample's latency
        as the SUT saw it is ``completed_ns - issued_ns``. Returns the number of entries.
        """
        with self.lock:
            pairs = np.array(self.timings, dtype=np.int64).reshape(-1, 2)
        origin = pairs[:, 0].min() if len(pairs) else 0
        with atomic_write(Path(path)) as stream:
            np.savez(stream, issued_ns=pairs[:, 0] - origin, completed_ns=pairs[:, 1] - origin)
        return len(pairs)

    def counts(self) -> SampleCounts:
        """Totals, and the samples never completed, completed twice or more, or completed but never issued.

        LoadGen gives each sample of a run its own id; should an id be issued
        again, it must be completed as many times as it was issued.
        """
        with self.lock:
            return SampleCounts(
                issued=self.issued_total,
                completed=self.completed_total,
                never_completed=sum(1 for s, n in self.issued.items() if self.completed[s] < n),
                completed_more_than_once=sum(1 for s, n in self.completed.items() if n > self.issued.get(s, 0)),
                completed_not_issued=sum(1 for s in self.completed if s not in self.issued),
            )


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

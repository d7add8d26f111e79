"""Which samples LoadGen issued and the SUT completed, and when: the ledger, its counts and its timings file.

The SUT records every sample id ``issue_queries`` received and every one it
completed (:class:`SampleLedger`, in arrays reserved once per run), so a run can prove that each was completed
exactly once (:class:`SampleCounts`, kept in ``run.json``), and the time of
both, saved as ``sut_timings.npz`` and read back by :func:`read_sut_timings`
(the run report's latency histogram and throughput over time).
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from common.files import atomic_write
from readback.timings import SampleCounts

log = logging.getLogger(__name__)


class SampleLedger:
    """Which LoadGen sample ids were issued and completed, and when, in preallocated arrays.

    Each issue and each completion appends one (id, ``time.perf_counter_ns()``)
    entry: ``uint64`` ids and ``int64`` times, 32 bytes per sample in all,
    with no Python object per sample (so no garbage-collector work grows with
    the run). ``capacity`` is the number of samples LoadGen will generate (from
    the run's :class:`sut.load_plan.LoadPlan`): the arrays are reserved at that
    size and only the pages written become resident. Should a run exceed it,
    the arrays double (logged). Counts and per-sample latencies are matched by
    id once, at the end (:meth:`counts`, :meth:`save_timings`).
    """

    def __init__(self, capacity: int = 1 << 16):
        capacity = max(int(capacity), 1)
        self.lock = threading.Lock()
        # Written once now, so that the pages are resident from the start: left untouched, they became resident
        # one sample at a time, and a 30-minute soak's RSS grew by exactly the ledger's 32 bytes per sample (5%).
        self._issued_ids = np.empty(capacity, dtype=np.uint64)
        self._issued_ns = np.empty(capacity, dtype=np.int64)
        self._completed_ids = np.empty(capacity, dtype=np.uint64)
        self._completed_ns = np.empty(capacity, dtype=np.int64)
        for array in (self._issued_ids, self._issued_ns, self._completed_ids, self._completed_ns):
            array.fill(0)
        #: running totals, cheap to read while the run goes on (progress)
        self.issued_total = 0
        self.completed_total = 0

    @property
    def capacity(self) -> int:
        return len(self._issued_ids)

    def _make_room(self, needed: int) -> None:
        """Double the arrays until ``needed`` entries fit (lock held)."""
        capacity = self.capacity
        while capacity < needed:
            capacity *= 2
        if capacity == self.capacity:
            return
        log.debug("sample ledger: more samples than the %s reserved; growing to %s", f"{self.capacity:,}",
                  f"{capacity:,}")
        for name in ("_issued_ids", "_issued_ns", "_completed_ids", "_completed_ns"):
            old = getattr(self, name)
            grown = np.empty(capacity, dtype=old.dtype)
            grown[:len(old)] = old
            setattr(self, name, grown)

    def record_issued(self, sample_ids: Sequence[int]) -> None:
        """Record ``sample_ids`` as issued now."""
        now = time.perf_counter_ns()
        with self.lock:
            self.issued_total = self._append(self.issued_total, sample_ids, now, completed=False)

    def record_completed(self, sample_ids: Sequence[int]) -> None:
        """Record ``sample_ids`` as completed now."""
        now = time.perf_counter_ns()
        with self.lock:
            self.completed_total = self._append(self.completed_total, sample_ids, now, completed=True)

    def _append(self, start: int, sample_ids: Sequence[int], now: int, completed: bool) -> int:
        """Store ``sample_ids`` at ``now`` from entry ``start`` on (lock held); the new total. On every query's
        path (SingleStream: twice per review, inside LoadGen's callback): one sample is stored as a scalar,
        several times cheaper than a slice assignment from a list."""
        end = start + len(sample_ids)
        if end > len(self._issued_ids):
            self._make_room(end)
        ids, times = (self._completed_ids, self._completed_ns) if completed else (self._issued_ids, self._issued_ns)
        if end - start == 1:
            ids[start] = sample_ids[0]
            times[start] = now
        else:
            ids[start:end] = sample_ids
            times[start:end] = now
        return end

    def _entries(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Copies of the issued ids and times and the completed ids and times recorded so far."""
        with self.lock:
            issued, completed = self.issued_total, self.completed_total
            return (self._issued_ids[:issued].copy(), self._issued_ns[:issued].copy(),
                    self._completed_ids[:completed].copy(), self._completed_ns[:completed].copy())

    def save_timings(self, path: Path) -> int:
        """Write ``issued_ns`` and ``completed_ns`` (int64, ns since the first issue) to ``path`` (.npz).

        One entry per completed sample, in completion order; a sample's latency
        as the SUT saw it is ``completed_ns - issued_ns`` (a sample completed
        but never issued counts from its completion). Returns the number of entries.
        """
        issued_ids, issued_ns, completed_ids, completed_ns = self._entries()
        order = np.argsort(issued_ids, kind="stable")
        sorted_ids = issued_ids[order]
        position = np.minimum(np.searchsorted(sorted_ids, completed_ids), max(len(sorted_ids) - 1, 0))
        found = (sorted_ids[position] == completed_ids) if len(sorted_ids) else np.zeros(len(completed_ids), bool)
        started_ns = np.where(found, issued_ns[order][position] if len(sorted_ids) else 0, completed_ns)
        origin = started_ns.min() if len(started_ns) else 0
        with atomic_write(Path(path)) as stream:
            np.savez(stream, issued_ns=started_ns - origin, completed_ns=completed_ns - origin)
        return len(completed_ns)

    def counts(self) -> SampleCounts:
        """Totals, and the samples never completed, completed twice or more, or completed but never issued.

        LoadGen gives each sample of a run its own id; should an id be issued
        again, it must be completed as many times as it was issued.
        """
        issued_ids, _, completed_ids, _ = self._entries()
        issued, times_issued = np.unique(issued_ids, return_counts=True)
        completed, times_completed = np.unique(completed_ids, return_counts=True)
        # how often each issued id was completed, and each completed id issued
        completions_of_issued = _counts_of(issued, completed, times_completed)
        issues_of_completed = _counts_of(completed, issued, times_issued)
        return SampleCounts(
            issued=len(issued_ids),
            completed=len(completed_ids),
            never_completed=int(np.count_nonzero(completions_of_issued < times_issued)),
            completed_more_than_once=int(np.count_nonzero(times_completed > issues_of_completed)),
            completed_not_issued=int(np.count_nonzero(issues_of_completed == 0)),
        )


def _counts_of(ids: np.ndarray, counted_ids: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """For each of ``ids``, its count in (sorted, unique) ``counted_ids``/``counts``, 0 where absent."""
    if not len(counted_ids):
        return np.zeros(len(ids), dtype=np.int64)
    position = np.minimum(np.searchsorted(counted_ids, ids), len(counted_ids) - 1)
    return np.where(counted_ids[position] == ids, counts[position], 0)



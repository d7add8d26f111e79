"""The SUT's sample ledger: exact counts of what was issued and completed, bounded memory, no objects per sample."""

from __future__ import annotations

import gc

import numpy as np

from readback.timings import read_sut_timings
from sut.ledger import SampleLedger


def test_counts_find_every_kind_of_bookkeeping_error():
    ledger = SampleLedger(capacity=4)
    ledger.record_issued([10, 11, 12])
    ledger.record_completed([11, 10])
    ledger.record_completed([11])      # twice
    ledger.record_completed([99])      # never issued
    ledger.record_issued([13, 14])     # never completed; past the capacity: the arrays grow
    counts = ledger.counts()
    assert (counts.issued, counts.completed) == (5, 4)
    assert counts.never_completed == 3            # 12, 13, 14
    assert counts.completed_more_than_once == 2   # 11, and 99 (completed once, issued never)
    assert counts.completed_not_issued == 1
    assert ledger.capacity == 8


def test_an_id_issued_twice_must_be_completed_twice():
    ledger = SampleLedger()
    ledger.record_issued([7, 7])
    ledger.record_completed([7])
    assert ledger.counts().never_completed == 1
    ledger.record_completed([7])
    counts = ledger.counts()
    assert counts.never_completed == counts.completed_more_than_once == 0


def test_timings_pair_each_completion_with_its_own_issue(tmp_path):
    ledger = SampleLedger()
    ledger.record_issued([5, 6])
    ledger.record_issued([7])
    ledger.record_completed([7, 5])
    ledger.record_completed([6, 8])
    assert ledger.save_timings(tmp_path / "t.npz") == 4
    timings = read_sut_timings(tmp_path / "t.npz")
    assert timings.issued_ns[0] >= timings.issued_ns[1]  # 7 was issued after 5
    assert timings.issued_ns[3] == timings.completed_ns[3]  # 8 was never issued: counted from its completion
    assert (timings.completed_ns >= timings.issued_ns).all() and timings.issued_ns.min() == 0


def test_bookkeeping_makes_no_python_objects_per_sample():
    """A million samples through the ledger leave the garbage collector's object count where it was."""
    ledger = SampleLedger(capacity=1_000_000)
    ids = np.arange(1_000_000, dtype=np.uint64) + 2**40
    gc.collect()
    before = len(gc.get_objects())
    for start in range(0, len(ids), 1000):
        ledger.record_issued(ids[start:start + 1000])
        ledger.record_completed(ids[start:start + 1000][::-1])
    gc.collect()
    assert len(gc.get_objects()) - before < 100
    counts = ledger.counts()
    assert counts.issued == counts.completed == 1_000_000 and counts.never_completed == 0

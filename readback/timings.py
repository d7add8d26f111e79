"""A run's sample bookkeeping as read back: the counts ``run.json`` keeps and the ``sut_timings.npz`` file.

The SUT's ledger (:class:`sut.ledger.SampleLedger`) writes both; the run report reads them here.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common.errors import BadInputError
from common.files import atomic_write


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
    shape ``(completed samples,)``, in completion order; or, where ``stride`` > 1 (a copy thinned to fit a
    submission, :func:`thin_sut_timings`), every ``stride``-th of them."""

    issued_ns: np.ndarray
    completed_ns: np.ndarray
    stride: int = 1

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
            stride = int(arrays["stride"]) if "stride" in arrays.files else 1
    except (OSError, KeyError, ValueError, TypeError, zipfile.BadZipFile) as error:
        raise TimingsError(f"{path} is not a timings file with int64 arrays issued_ns and completed_ns ({error}): "
                           "remove it to report without per-sample latencies") from None
    if issued.shape != completed.shape or issued.ndim != 1:
        raise TimingsError(f"{path}: issued_ns {issued.shape} and completed_ns {completed.shape} must be 1-D of one "
                           "length; remove it to report without per-sample latencies")
    if stride < 1:
        raise TimingsError(f"{path}: stride {stride} must be at least 1; remove it to report without per-sample "
                           "latencies")
    return SutTimings(issued, completed, stride)


def thin_sut_timings(source: Path, target: Path, limit_bytes: int) -> tuple[SutTimings, SutTimings]:
    """Write to ``target`` every k-th sample of the timings at ``source``, the smallest k whose file stays under
    ``limit_bytes``, with ``stride`` k in it; returns (the timings read, the timings written). The samples kept
    are evenly spread over the run, so the latency distribution and the throughput over time (counts times k)
    read as the whole's."""
    whole = read_sut_timings(source)
    if whole is None:
        raise TimingsError(f"{source} does not exist")
    bytes_per_sample = 2 * np.dtype(np.int64).itemsize  # issued_ns and completed_ns
    step = max(1, -(-len(whole.issued_ns) * bytes_per_sample // limit_bytes))  # the arrays alone fit
    while True:
        kept = SutTimings(whole.issued_ns[::step].copy(), whole.completed_ns[::step].copy(), whole.stride * step)
        with atomic_write(Path(target)) as stream:
            np.savez(stream, issued_ns=kept.issued_ns, completed_ns=kept.completed_ns, stride=np.int64(kept.stride))
        if Path(target).stat().st_size <= limit_bytes or len(kept.issued_ns) <= 1:
            return whole, kept
        step += 1  # the file's headers did not fit beside the arrays

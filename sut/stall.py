"""A batch that never ends, seen: the bound past which a batch in flight is a stall, and the clock of batches.

A backend that stops answering (a deadlock in a kernel, a hung GPU, stuck
I/O, a Ray actor stopped or swapping) would leave LoadGen waiting for ever:
LoadGen has no timeout of its own for a query in flight. :class:`BatchClock`
times every batch from the moment it is handed over until it completes, and
:meth:`BatchClock.stalled` names the oldest one past its bound.

The bound of a batch of ``n`` reviews is :data:`STALL_FACTOR` times ``n``
times the slowest time per review of the batches completed so far, kept
between a floor (``--stall-timeout``, default :data:`DEFAULT_STALL_FLOOR_S`)
and a ceiling (``--stall-timeout-max``, default
:data:`DEFAULT_STALL_CEILING_S`); before any batch has completed (the first
one may include a compile), the ceiling. So a run of 0.2 ms batches is
declared stalled after the floor, and a reference-backend batch that
legitimately takes a minute is not.

Who acts on a stall: the LoadGen driver (:mod:`sut.loadgen_driver`) stops a
local run with exit 3, and so does :mod:`sut.watched_phase` for a phase that
calls the backend before the test (the quick run's measurement); the Ray pool
(:mod:`sut.ray_pool`) declares the hung actor lost and sends its batches to
the live actors.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

#: a batch is stalled after this many times its expected time (its reviews x the slowest time per review so far)
STALL_FACTOR = 20.0
#: the least time a batch may take before it is a stall (s; ``--stall-timeout``)
DEFAULT_STALL_FLOOR_S = 30.0
#: the most time a batch may take before it is a stall, and the bound before any batch completed (s;
#: ``--stall-timeout-max``)
DEFAULT_STALL_CEILING_S = 600.0


@dataclass(frozen=True)
class StallLimits:
    """The floor and the ceiling of the stall bound (s): ``--stall-timeout`` and ``--stall-timeout-max``."""

    floor_s: float = DEFAULT_STALL_FLOOR_S
    ceiling_s: float = DEFAULT_STALL_CEILING_S

    def describe(self) -> str:
        return f"--stall-timeout {self.floor_s:g} s, --stall-timeout-max {self.ceiling_s:g} s"


@dataclass(frozen=True)
class Stall:
    """A batch in flight past its bound: what it is (``batch``), where it runs, how long it has waited (s)."""

    batch: str
    reviews: int
    where: str
    waited_s: float
    bound_s: float
    basis: str

    def message(self, phase: str | None = None) -> str:
        """What happened (``phase``: while what, when not during the LoadGen test), the bound and where it came
        from, and what to do."""
        during = f" while {phase}" if phase else ""
        return (f"inference stalled{during}: {self.batch} of {self.reviews:,} review(s) has been in {self.where} for "
                f"{self.waited_s:.1f} s without an answer, past the stall bound of {self.bound_s:.1f} s ({self.basis}). "
                "The backend stopped answering (a deadlock, a hung device, stuck I/O, a stopped process); if batches "
                "of this size can take this long here, raise --stall-timeout")


class BatchClock:
    """The batches in flight, each since when and of how many reviews, and the slowest time per review of those
    that completed; :meth:`stalled` names the oldest one past its bound.

    ``derived`` False keeps the bound at the ceiling (an executor that watches its own batches, as the Ray pool
    does, is given this backstop). Safe to call from any thread: each call is one dictionary operation, atomic
    under the GIL (this clock is on SingleStream's latency path: no lock).
    """

    def __init__(self, limits: StallLimits, *, derived: bool = True):
        self.limits = limits
        self.derived = derived
        #: batch key -> (perf_counter when handed over (s), reviews, what it is, where it runs)
        self._in_flight: dict[int, tuple[float, int, str, str]] = {}
        self._slowest_s_per_review = 0.0
        self.completed = 0

    def start(self, key: int, reviews: int, batch: str = "a batch", where: str = "the backend") -> None:
        """Batch ``key`` of ``reviews`` reviews was handed over now."""
        self._in_flight[key] = (time.perf_counter(), reviews, batch, where)

    def stop(self, key: int) -> None:
        """Batch ``key`` completed (or failed) now: its time per review joins the measurements."""
        entry = self._in_flight.pop(key, None)
        if entry is None:
            return
        per_review = (time.perf_counter() - entry[0]) / max(1, entry[1])
        if per_review > self._slowest_s_per_review:
            self._slowest_s_per_review = per_review
        self.completed += 1

    def forget(self, key: int) -> None:
        """Batch ``key`` is no longer in flight, and its time says nothing (it was abandoned or handed elsewhere)."""
        self._in_flight.pop(key, None)

    def bound_s(self, reviews: int) -> tuple[float, str]:
        """The stall bound of a batch of ``reviews`` reviews (s), and how it was reached."""
        limits = self.limits
        if not self.derived:
            return limits.ceiling_s, f"{limits.describe()}; the executor watches its own batches below that"
        if not self.completed:
            return limits.ceiling_s, f"no batch had completed yet: the ceiling; {limits.describe()}"
        expected_s = reviews * self._slowest_s_per_review
        bound = min(limits.ceiling_s, max(limits.floor_s, STALL_FACTOR * expected_s))
        return bound, (f"{STALL_FACTOR:g}x the {_duration(expected_s)} expected from the slowest batch so far "
                       f"({_duration(self._slowest_s_per_review)} per review), within {limits.describe()}")

    def stalled(self) -> tuple[int, Stall] | None:
        """The key and :class:`Stall` of the batch in flight furthest past its bound, if any is past it."""
        now = time.perf_counter()
        worst: tuple[float, int, Stall] | None = None
        for key, (started, reviews, batch, where) in list(self._in_flight.items()):
            bound, basis = self.bound_s(reviews)
            waited = now - started
            if waited > bound and (worst is None or waited - bound > worst[0]):
                worst = (waited - bound, key, Stall(batch, reviews, where, waited, bound, basis))
        return (worst[1], worst[2]) if worst is not None else None

    def in_flight(self, key: int) -> bool:
        return key in self._in_flight


def _duration(seconds: float) -> str:
    """``seconds`` for a reader: 3 significant digits, in s from one second up, else in ms."""
    return f"{seconds:.3g} s" if seconds >= 1 else f"{seconds * 1e3:.3g} ms"

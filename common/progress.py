"""Progress of long work that a person can read, on a terminal and in a log file alike.

On a terminal, :func:`progress` is a tqdm bar. Written to a file or a pipe, a
bar would put every refresh into the log (a 4-minute bench left hundreds of
updates on one line); there, progress is an INFO log line when the work
passes another :data:`STEP_FRACTION` of its total (at most one such line per
:data:`STEP_MIN_S`), at least every :data:`LOG_EVERY_S` seconds, and one line
when it ends: work of a few seconds logs that one line only.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Generic, TypeVar

from tqdm import tqdm

log = logging.getLogger("progress")

#: off a terminal: a line each time the work passes another such share of its total
STEP_FRACTION = 0.1
#: off a terminal: a line at least this often while the work goes on (s)
LOG_EVERY_S = 30.0
#: off a terminal: the least time between two lines for passing a step (s)
STEP_MIN_S = 5.0

T = TypeVar("T")


def on_terminal() -> bool:
    """Whether progress goes to a terminal (standard error is a TTY)."""
    return sys.stderr.isatty()


class LoggedProgress(Generic[T]):
    """tqdm's interface (iteration, :meth:`update`, :meth:`close`, a context manager) as log lines."""

    def __init__(self, iterable: Iterable[T] | None = None, *, total: float | None = None, desc: str = "",
                 unit: str = "it", unit_scale: bool = False, **_ignored):
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)  # type: ignore[arg-type]
        self.iterable, self.total, self.desc, self.unit, self.unit_scale = iterable, total, desc, unit, unit_scale
        self.n = 0.0
        self.postfix = ""
        self._started = self._last_line = time.monotonic()
        self._next_step = STEP_FRACTION
        self._closed = False

    def __iter__(self) -> Iterator[T]:
        assert self.iterable is not None, "nothing to iterate"
        try:
            for item in self.iterable:
                yield item
                self.update(1)
        finally:
            self.close()

    def __enter__(self) -> LoggedProgress[T]:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _amount(self, value: float, unit: bool = True) -> str:
        if self.unit_scale and self.unit == "B":
            for scale, prefix in ((2**30, "Gi"), (2**20, "Mi"), (2**10, "Ki")):
                if value >= scale:
                    return f"{value / scale:,.1f} {prefix}B"
            return f"{value:,.0f} B"
        return f"{value:,.0f}" + (f" {self._units()}" if unit else "")

    def _units(self) -> str:
        if self.unit in ("B", "it") or self.unit.endswith("s"):
            return self.unit
        return self.unit + ("es" if self.unit.endswith(("ch", "sh", "x")) else "s")

    def _line(self, ending: bool = False) -> str:
        elapsed = time.monotonic() - self._started
        if self.total:
            scaled = self.unit_scale and self.unit == "B"
            count = (f"{self._amount(self.n, unit=scaled)}/{self._amount(self.total)} "
                     f"({self.n / self.total:.0%})")
        else:
            count = self._amount(self.n)
        rate = f", {self._amount(self.n / elapsed)}/s" if elapsed > 0 and self.n else ""
        postfix = f", {self.postfix}" if self.postfix else ""
        ended = "; done in" if ending else ","
        return f"{self.desc}: {count}{rate}{postfix}{ended} {elapsed:,.1f} s"

    def set_postfix(self, **values) -> None:
        """Figures shown after the count (tqdm's ``set_postfix``), e.g. ``loss=0.31``."""
        self.postfix = ", ".join(f"{name} {value}" for name, value in values.items())

    def update(self, amount: float = 1) -> None:
        self.n += amount
        now = time.monotonic()
        stepped = bool(self.total) and self.n < self.total and self.n / self.total >= self._next_step
        if stepped:
            while self.n / self.total >= self._next_step:  # type: ignore[operator]
                self._next_step += STEP_FRACTION
        if (stepped and now - self._last_line >= STEP_MIN_S) or now - self._last_line >= LOG_EVERY_S:
            log.info("%s", self._line())
            self._last_line = now

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            log.info("%s", self._line(ending=True))


def progress(iterable: Iterable[T] | None = None, **options) -> tqdm | LoggedProgress[T]:
    """A progress bar over ``iterable`` (tqdm's options: ``total``, ``desc``, ``unit``, ``unit_scale``,
    ``leave``...) on a terminal; log lines elsewhere (see the module docstring)."""
    if on_terminal():
        return tqdm(iterable, **options)
    return LoggedProgress(iterable, **options)

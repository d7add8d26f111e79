"""SIGINT and SIGTERM as an exception, so that a run stops cleanly: records that it was interrupted, leaves
nothing half-written, and exits with ``128 + signal`` (130 for SIGINT, 143 for SIGTERM).

Inside :func:`interrupts_raise`, the first SIGINT or SIGTERM raises
:class:`RunInterrupted` on the main thread, wherever it is (loading the data,
extracting the archive, waiting for LoadGen); ``finally`` blocks and the
atomic writers of :mod:`common.files` then remove their temporary files and
folders. A second signal while the first is being handled is logged and
ignored, so that the clean-up itself is not cut short.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Iterator

from common.errors import RunInterrupted

log = logging.getLogger(__name__)

HANDLED_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def interrupts_raise() -> Iterator[None]:
    """Within the block, SIGINT and SIGTERM raise :class:`RunInterrupted` (main thread only; elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []

    def handler(signum: int, frame) -> None:
        if received:
            log.warning("%s received again while stopping; the run is already stopping", signal.Signals(signum).name)
            return
        received.append(signum)
        raise RunInterrupted(signum)

    previous = {signum: signal.signal(signum, handler) for signum in HANDLED_SIGNALS}
    try:
        yield
    finally:
        for signum, action in previous.items():
            signal.signal(signum, action)

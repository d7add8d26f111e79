"""Which process makes a run, so that a reader of its folder later can tell a run still going from one whose
process was killed (SIGKILL, a crash, the kernel's out-of-memory killer, a reboot) before it recorded its end.

``run.json`` says ``running`` from the run's start until its process records the end; a process killed with
SIGKILL never does. :func:`this_process` is what the record keeps (the pid, the machine and its boot, and the
process's start time, so that a pid reused by another process is not taken for the run's);
:func:`unfinished_reason` is what every reader says of a record that still says ``running``.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from readback.run_files import RESERVE_FILE

BOOT_ID_FILE = Path("/proc/sys/kernel/random/boot_id")
ProcessState = Literal["alive", "gone", "unknown"]


@dataclass(frozen=True)
class RunProcess:
    """The process that makes a run: its pid on ``hostname``, the machine's boot (Linux's boot id) and the
    process's start time after boot in clock ticks (``/proc/PID/stat`` field 22); None where unknown."""

    pid: int
    hostname: str
    boot_id: str | None = None
    start_ticks: int | None = None


def _boot_id() -> str | None:
    try:
        return BOOT_ID_FILE.read_text().strip() or None
    except OSError:
        return None


def _start_ticks(pid: int) -> int | None:
    """The start time of process ``pid`` after boot (clock ticks), or None if there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    try:  # the command name (field 2) may hold spaces and parentheses: the fields after its last ")" are plain
        return int(stat[stat.rindex(")") + 2:].split()[19])
    except (ValueError, IndexError):
        return None


def this_process() -> RunProcess:
    """This process, as a run's record keeps it."""
    import os

    return RunProcess(os.getpid(), platform.node(), _boot_id(), _start_ticks(os.getpid()))


def process_state(process: RunProcess) -> ProcessState:
    """Whether the run's process still runs: ``unknown`` when the record comes from another machine (or this
    one has no ``/proc``), ``gone`` after a reboot or when no process of that pid and start time is left."""
    boot = _boot_id()
    if process.hostname != platform.node() or boot is None or process.boot_id is None:
        return "unknown"
    if process.boot_id != boot:
        return "gone"  # this machine was rebooted since the run started
    started = _start_ticks(process.pid)
    return "alive" if started is not None and started == process.start_ticks else "gone"


def unfinished_reason(status: str, process: RunProcess | None, error: str | None) -> str:
    """Why a run's record is not of a finished run, in words a user can act on."""
    if status != "running":
        return f"status {status!r}" + (f": {error}" if error else "")
    if process is None:
        return "status 'running': the run did not record its end"
    state = process_state(process)
    if state == "alive":
        return f"status 'running': the run is still going (pid {process.pid}): wait for it to end"
    if state == "gone":
        return (f"status 'running', and the run's process (pid {process.pid}) is gone: it was killed (SIGKILL, a crash, "
                "the out-of-memory killer or a reboot) before it could record its end. The folder keeps what LoadGen "
                f"had written and the run's hidden disk reserve {RESERVE_FILE}: remove the folder")
    return (f"status 'running': the run was made on {process.hostname} (pid {process.pid}) and did not record its end "
            "there; it may still be going, or have been killed")

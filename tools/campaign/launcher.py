"""``run.py`` in a process of its own, for every tool that makes runs (a campaign, its quick calibration, the soak).

- :func:`run_py_command_line`: the one place a ``run.py`` command line is built, from a caller's
  :class:`RunPySettings` and the run's own options;
- :func:`start_run_py`: the child starts in the checkout, its output to a log file or the caller's terminal,
  and gets SIGTERM should its parent die, even by SIGKILL (Linux's parent-death signal), so that it records
  itself ``interrupted`` rather than run on alone;
- :func:`wait_for_run_py`: its exit status; a stop of the parent (:class:`~common.errors.RunInterrupted`)
  first lets the child end its run recorded (:func:`stop_child`);
- :func:`stop_on_signals`: SIGINT and SIGTERM raise :class:`~common.errors.RunInterrupted` (exit 130, 143);
- :func:`locked`: a folder's lock, held for a campaign's life, so that two campaigns never share a folder.
"""

from __future__ import annotations

import ctypes
import fcntl
import signal
import subprocess
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from common.errors import RunInterrupted
from tools.campaign.manifest import CampaignError

REPO = Path(__file__).resolve().parents[2]
RUN_PY = REPO / "run.py"
LOCK_FILE = "campaign.lock"
#: Linux's prctl option that sends a child a signal when its parent dies (a campaign killed with SIGKILL)
PR_SET_PDEATHSIG = 1
#: how a stopped parent ends its child: wait this long (s) for it to end of itself (Ctrl-C reached it with the
#: terminal's process group), then send it this signal, and so on; then wait for it however long it takes
STOP_CHILD_STEPS = ((5.0, signal.SIGTERM), (60.0, signal.SIGKILL))


@dataclass(frozen=True)
class RunPySettings:
    """What every run of one caller passes to ``run.py``; None leaves an option to run.py's default."""

    backend: str | None = None
    precision: str | None = None
    mlperf_conf: Path | None = None
    user_conf: Path | None = None
    dataset_path: Path | None = None


def run_py_command_line(scenario: str, output: Path, settings: RunPySettings, *options: str) -> list[str]:
    """The ``run.py`` command line of one run of ``scenario`` into ``output``, under ``settings``, with the run's
    own ``options`` last."""
    command = [sys.executable, str(RUN_PY), "--scenario", scenario]
    for option, value in (("--backend", settings.backend), ("--precision", settings.precision),
                          ("--mlperf-conf", settings.mlperf_conf), ("--user-conf", settings.user_conf)):
        if value is not None:
            command += [option, str(value)]
    command += ["--output-dir", str(output)]
    if settings.dataset_path is not None:
        command += ["--dataset-path", str(settings.dataset_path)]
    return [*command, *options]


def _die_with_parent() -> None:
    """In the child: get SIGTERM when the parent dies, even by SIGKILL (it then records 'interrupted')."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass  # not Linux: a child outlives a killed campaign, and the lock keeps a second one out meanwhile


def start_run_py(command: list[str], log_path: Path | None = None) -> subprocess.Popen:
    """``command`` (a :func:`run_py_command_line`) started in the checkout: its output appended to ``log_path``,
    or to this process's own when None."""
    if log_path is None:
        return subprocess.Popen(command, cwd=REPO, preexec_fn=_die_with_parent)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as stream:  # the child holds its own copy of the file once started
        return subprocess.Popen(command, cwd=REPO, stdout=stream, stderr=subprocess.STDOUT,
                                preexec_fn=_die_with_parent)


def wait_for_run_py(process: subprocess.Popen) -> int:
    """The child's exit status. When this process is stopped meanwhile (:class:`RunInterrupted`), the child
    ends first (:func:`stop_child`), its status in ``process.returncode``, and the stop goes on."""
    try:
        return process.wait()
    except RunInterrupted:
        stop_child(process)
        raise


def run_py(command: list[str], log_path: Path | None = None) -> int:
    """``command`` in its own process, to its end (:func:`start_run_py`, :func:`wait_for_run_py`): its exit status."""
    return wait_for_run_py(start_run_py(command, log_path))


def stop_child(process: subprocess.Popen) -> None:
    """Let the child end its run recorded ('interrupted'): Ctrl-C reached it with the terminal's process group;
    otherwise (a signal to the parent alone) it gets SIGTERM after a few seconds, SIGKILL after a minute
    (:data:`STOP_CHILD_STEPS`)."""
    for wait_s, then in STOP_CHILD_STEPS:
        try:
            process.wait(timeout=wait_s)
            return
        except subprocess.TimeoutExpired:
            process.send_signal(then)
    process.wait()


@contextmanager
def stop_on_signals() -> Iterator[None]:
    """Within the block, SIGINT and SIGTERM raise :class:`RunInterrupted` (exit 130, 143), so that the run in
    flight ends recorded; each signal raises it again (a second Ctrl-C does not wait for the child)."""
    def stop(signum, _frame):
        raise RunInterrupted(signum)

    previous = {signum: signal.signal(signum, stop) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@contextmanager
def locked(folder: Path) -> Iterator[None]:
    """Hold the folder's lock for the campaign's life (released by the system whatever ends the process);
    :class:`CampaignError` when another campaign holds it."""
    folder.mkdir(parents=True, exist_ok=True)
    stream = open(folder / LOCK_FILE, "a+")
    try:
        try:
            fcntl.flock(stream, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise CampaignError(f"another campaign is running in {folder}; wait for it or stop it first") from None
        yield
    finally:
        stream.close()

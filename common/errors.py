"""The project's error families, one per outcome, and the exit code of each.

Every error this project raises on purpose derives from :class:`Seq2CNNError`
and belongs to one family; every command line (``run.py`` and each tool, through
:func:`run_command`) maps the family, never the Python type, to the process's
exit code:

- :class:`BadInputError` (exit 2): the request cannot be run as given (an
  option, a config file, the dataset, the weights, a run folder to compare
  with); the message says what, where, and what to do. Nothing was measured.
- :class:`InferenceFailedError` (exit 3): the system under test failed while
  LoadGen was running (a backend error of any Python type, a batch that got
  no answer within the stall bound, every Ray actor lost); ``run.json`` says
  ``failed``.
- :class:`RunInterrupted` (exit 128 + signal: 130 for SIGINT, 143 for
  SIGTERM): the run was stopped; ``run.json`` says ``interrupted``. It is a
  ``BaseException``, so that no ``except Exception`` swallows it.

An :class:`OSError` (a full disk, a file that went away) exits 2 as bad
input, with the file it names; any other exception is an error of the
program's own (a bug): exit 3, its traceback logged.

Exit 0 is a run that finished (a performance run may still be INVALID), exit
1 a finished run whose own verdict failed (accuracy, compliance, no VALID
peak rate).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

EXIT_DONE = 0
EXIT_VERDICT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INFERENCE_FAILED = 3
#: the output's reader went away (``| head``): 128 + SIGPIPE, as a process that SIGPIPE ended
EXIT_BROKEN_PIPE = 128 + signal.SIGPIPE


class Seq2CNNError(Exception):
    """An error of this project, worded so that a user can act on it; see the module docstring."""

    exit_code = EXIT_BAD_INPUT


class BadInputError(Seq2CNNError, RuntimeError):
    """The request cannot be run as given: an option, a file or a folder named in the message (exit 2)."""

    exit_code = EXIT_BAD_INPUT


class InferenceFailedError(Seq2CNNError, RuntimeError):
    """The system under test failed during the run, whatever the cause's Python type (exit 3).

    ``cause`` is the exception the backend or an executor raised, kept for the message.
    """

    exit_code = EXIT_INFERENCE_FAILED

    def __init__(self, message: str, cause: BaseException | None = None):
        super().__init__(message)
        self.cause = cause


class InferenceStalledError(InferenceFailedError):
    """A batch in flight got no answer within the stall bound (:mod:`sut.stall`): the backend stopped answering
    (exit 3, as any inference failure)."""


class RunInterrupted(BaseException):
    """SIGINT or SIGTERM arrived (exit ``128 + signal``).

    ``run_dir`` is set when the run had its folder, whose ``run.json`` then
    says ``interrupted``.
    """

    def __init__(self, signum: int):
        self.signum = signum
        self.run_dir: Path | None = None
        super().__init__(f"{signal.Signals(signum).name} received")

    @property
    def exit_code(self) -> int:
        """The shell's convention for a process ended by a signal: 128 + its number."""
        return 128 + self.signum


#: what an error line adds to an OSError by default: what to do
OS_ERROR_ADVICE = "check that path and the free space on its disk, and run again"


def exit_code_for(error: BaseException) -> int:
    """The exit code of a command that ``error`` stopped, by its family, never its Python type: a stop by signal
    128 + its number, bad input 2 (a full disk or a file that went away too), an inference failure 3, and 3
    for an error of the program's own (a bug)."""
    if isinstance(error, RunInterrupted):
        return error.exit_code
    if isinstance(error, Seq2CNNError):
        return error.exit_code
    if isinstance(error, OSError):
        return EXIT_BAD_INPUT
    return EXIT_INFERENCE_FAILED


def error_message(error: BaseException, os_error_advice: str = OS_ERROR_ADVICE) -> str:
    """What went wrong, for the command's ``error:`` line."""
    if isinstance(error, InferenceFailedError):
        return f"inference failed, run stopped: {error}"
    if isinstance(error, (Seq2CNNError, RunInterrupted)):
        return str(error)
    if isinstance(error, OSError):  # a full disk, a folder that went away: the message names the file
        return f"{error.strerror or error}: {error.filename or ''}; {os_error_advice}"
    return f"{type(error).__name__}: {error} (an error of this program's own; see the traceback above)"


def report_failure(error: BaseException, log: logging.Logger, os_error_advice: str = OS_ERROR_ADVICE) -> int:
    """Say what stopped a command (its traceback logged when it is a bug) and return its exit code."""
    if not isinstance(error, (Seq2CNNError, OSError, RunInterrupted)):
        log.error("an error of this program's own, not of its input: please report it", exc_info=error)
    print(f"error: {error_message(error, os_error_advice)}", file=sys.stderr)
    return exit_code_for(error)


def run_command(body: Callable[[], int], log: logging.Logger, os_error_advice: str = OS_ERROR_ADVICE) -> int:
    """``body()``'s exit code, or the code of the error family that stopped it (:func:`exit_code_for`), its
    ``error:`` line printed: how every command line of this project ends."""
    try:
        return body()
    except BrokenPipeError:  # the reader of the output went away (``| head``): end as a shell's SIGPIPE would
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at interpreter exit
        return EXIT_BROKEN_PIPE
    except (Exception, RunInterrupted) as error:  # noqa: BLE001 - each family of errors has its exit code
        return report_failure(error, log, os_error_advice)

"""The project's error families, one per outcome, and the exit code of each.

Every error this project raises on purpose derives from :class:`Seq2CNNError`
and belongs to one family; ``run.py`` maps the family, never the Python type,
to the process's exit code:

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

Exit 0 is a run that finished (a performance run may still be INVALID), exit
1 a finished run whose own verdict failed (accuracy, compliance, no VALID
peak rate).
"""

from __future__ import annotations

import signal
from pathlib import Path

EXIT_DONE = 0
EXIT_VERDICT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INFERENCE_FAILED = 3


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

"""What came of one run of a campaign, read from its folder (``run.json``, TEST01's verify files), never from
the process that made it: the same reading serves a run just made and one found after a stop.

- a performance run is good when LoadGen judged it VALID;
- an accuracy run when its accuracy passed the targets;
- a TEST01 run when both its checks passed; :attr:`Outcome.speed_only` says that only its performance check
  failed (its accuracy check passed), the case a campaign tries again.

A run of another commit, weights, backend, precision or config files than the campaign's is not this
campaign's (:attr:`Outcome.foreign`), whatever its result.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from readback.run_record import RunRecord, RunRecordError, read_run_record
from readback.test01 import read_verdicts
from tools.campaign.manifest import Fingerprint


@dataclass(frozen=True)
class Outcome:
    """A run's outcome: ``good`` for the submission, ``text`` for a person (the verdict and the figure)."""

    good: bool
    text: str
    speed_only: bool = False
    foreign: bool = False
    #: the record, when the folder holds a readable one
    record: RunRecord | None = None


def _foreign(record: RunRecord, fingerprint: Fingerprint) -> str | None:
    """Why ``record`` is not of the campaign ``fingerprint`` describes; None when it is."""
    files = [entry.sha256 for entry in record.settings.config_files]
    if record.git.get("commit") != fingerprint.commit:
        return f"made by commit {record.git.get('commit')}, not {fingerprint.commit}"
    if record.git.get("dirty"):
        return "made from a checkout with uncommitted changes"
    if record.backend.weights_sha256 != fingerprint.weights_sha256:
        return "made with other weights"
    if (record.backend.name, record.backend.precision) != (fingerprint.backend, fingerprint.precision):
        return f"made with {record.backend.name} {record.backend.precision}"
    if files != [fingerprint.mlperf_conf_sha256, fingerprint.user_conf_sha256]:
        return "made under other mlperf.conf or user.conf files"
    return None


def result_text(record: RunRecord) -> str:
    """The headline figure, as the run's summary gives it."""
    result = record.result
    if result is None or result.headline is None:
        return "no result"
    name = result.headline.name
    return result.headline.text() if name.endswith("per second") else f"{result.headline.text()} {name}"


def outcome_of(folder: Path, kind: str, fingerprint: Fingerprint) -> Outcome:
    """The outcome of the ``kind`` run in ``folder`` for the campaign of ``fingerprint``."""
    try:
        record = read_run_record(folder, f"{kind} run")
    except RunRecordError as error:
        return Outcome(False, f"no usable record: {error}")
    if record.status != "finished":
        return Outcome(False, record.unfinished_reason(), record=record)
    foreign = _foreign(record, fingerprint)
    if foreign is not None:
        return Outcome(False, f"not this campaign's run: {foreign}", foreign=True, record=record)
    if kind == "performance":
        valid = bool(record.result is not None and record.result.valid)
        return Outcome(valid, f"{'VALID' if valid else 'INVALID'}, {result_text(record)}", record=record)
    if kind == "accuracy":
        accuracy = record.accuracy
        if accuracy is None:
            return Outcome(False, "no accuracy check in the record", record=record)
        return Outcome(bool(accuracy.passed), f"{accuracy.verdict}, {100 * accuracy.accuracy:.3f} %", record=record)
    verdicts = read_verdicts(folder)
    if verdicts is None:
        return Outcome(False, "TEST01 not verified (no verify files)", record=record)
    accuracy, performance = verdicts.checks.get("accuracy"), verdicts.checks.get("performance")
    words = f"accuracy {_word(accuracy)}, performance {_word(performance)}"
    good = accuracy is True and performance is True
    return Outcome(good, f"{'PASS' if good else 'FAIL'} ({words})", speed_only=accuracy is True and performance is False,
                   record=record)


def _word(verdict: bool | None) -> str:
    return "unknown" if verdict is None else ("PASS" if verdict else "FAIL")

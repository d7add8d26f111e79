"""Accuracy of a LoadGen accuracy-mode log: decoding ``mlperf_log_accuracy.json`` and scoring it against the labels.

LoadGen writes ``mlperf_log_accuracy.json`` as a JSON list of
``{"seq_id": int, "qsl_idx": int, "data": "<hex>"}``, one entry per response;
``data`` is the hex of the response bytes, here one little-endian int64
(:data:`RESPONSE_DTYPE`): the predicted label (1 = positive,
0 = negative). ``qsl_idx`` indexes the QSL, i.e. the test split in the
benchmark's sample order (its first N with ``--count N``).

Every qsl_idx in ``0..N-1`` must have a well-formed entry. Reported by index,
each an error:

- missing: a qsl_idx without any entry;
- malformed: an entry that is not an object with integer ``seq_id`` and
  ``qsl_idx`` and string ``data``, whose ``data`` is not hex, is not 8 bytes or
  holds a label other than 0 or 1, whose ``qsl_idx`` is outside ``0..N-1``, or
  whose ``seq_id`` an earlier entry already has (a response logged twice);
- duplicated: a qsl_idx whose entries disagree on the label.

A qsl_idx logged again under another seq_id with the same label is "repeated":
reported, counted once, and not an error. LoadGen does that in a correct run:
in MultiStream it pads each loadable set with copies of its first
``samples_per_query - 1`` samples, so an accuracy run over N samples issues
``8 * ceil(N / 8)`` of them. MLPerf's reference accuracy scripts likewise count
each qsl_idx once.

Accuracy is the share of the N samples whose (first) prediction matches the
label; a sample without a valid prediction counts as wrong. The quality targets
are 99% and 99.9% of the fp32 reference accuracy, which ``model/MODEL.md``
states for the whole IMDB v1.0 test split: a run over only part of the split
(``--count``), or over a test split that is not IMDB v1.0's (``--unofficial-dataset``,
:mod:`qsl.identity`), reports its accuracy but is not judged against them (its
verdict is "not judged", which is not a failure; :func:`not_judged_because` says why).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from common.errors import BadInputError
from common.files import write_text_atomically
from model.paths import MODEL_CARD
from readback.loadgen_log import ACCURACY_FILE
from readback.run_files import ACCURACY_REPORT_FILE

# The line of MODEL.md that states the reference accuracy; write it with .format(accuracy=...).
REFERENCE_ACCURACY_LINE = "Reference accuracy (fp32, 25,000 test reviews): {accuracy:.4f}"
REFERENCE_ACCURACY_PATTERN = re.compile(
    "^" + re.escape(REFERENCE_ACCURACY_LINE.split("{")[0]) + r"(?P<accuracy>[01]\.\d+)$"
)
TARGET_FRACTIONS = (0.99, 0.999)  # of the reference accuracy; the first decides the verdict
# The first and the last line of accuracy.txt (:meth:`AccuracyReport.text`), as :func:`read_accuracy_report` reads them.
ACCURACY_LINE = re.compile(r"^accuracy=(?P<percent>[0-9.]+)%, good=(?P<correct>\d+), total=(?P<total>\d+)")
RESULT_LINE = re.compile(r"^RESULT: (?P<verdict>PASS|FAIL|NOT JUDGED)", re.MULTILINE)
LABELS = (0, 1)
#: a response: the predicted label as one little-endian int64 (8 bytes)
RESPONSE_DTYPE = np.dtype("<i8")
NO_PREDICTION = -1


class AccuracyCheckError(BadInputError):
    """The accuracy log, the labels or the reference accuracy cannot be read."""


@dataclass
class AccuracyLog:
    """What an accuracy log says about samples ``0..sample_count-1``.

    ``predictions`` is int64 of shape ``(sample_count,)``: the first valid label
    logged for each qsl_idx, or ``NO_PREDICTION``. ``malformed`` holds one
    message per bad entry; ``duplicated`` and ``repeated`` map a qsl_idx to the
    seq_ids of its entries.
    """

    sample_count: int
    entry_count: int
    predictions: np.ndarray
    missing: list[int] = field(default_factory=list)
    malformed: list[str] = field(default_factory=list)
    duplicated: dict[int, list[int]] = field(default_factory=dict)
    repeated: dict[int, list[int]] = field(default_factory=dict)

    @property
    def is_valid(self) -> bool:
        """Whether every sample has exactly one label and no entry is malformed."""
        return not (self.missing or self.malformed or self.duplicated)

    def problems(self) -> list[str]:
        """One line per kind of problem, naming the qsl_idx (and entries) concerned."""
        lines = []
        if self.missing:
            lines.append(f"missing qsl_idx ({len(self.missing)}): {index_ranges(self.missing)}")
        if self.duplicated:
            details = ", ".join(f"{index} (seq_ids {_joined(ids)})" for index, ids in self.duplicated.items())
            lines.append(f"duplicated qsl_idx with different labels ({len(self.duplicated)}): {details}")
        lines.extend(f"malformed {message}" for message in self.malformed)
        return lines


def verdict_word(passed: bool | None) -> str:
    """``PASS``, ``FAIL``, or ``NOT JUDGED`` for None."""
    return {True: "PASS", False: "FAIL", None: "NOT JUDGED"}[passed]


def not_judged_because(samples: int, unofficial: str | None = None) -> str:
    """Why an accuracy over ``samples`` test reviews is reported but not judged: the test split is not the IMDB
    v1.0 test split (``unofficial`` says how it differs), else the reviews are only a part of it (``--count``)."""
    if unofficial is not None:
        return (f"not the IMDB v1.0 test split: {unofficial}; the targets apply to that split only: run on it to "
                "judge ('python -m qsl.download' gets it)")
    return (f"the first {samples} test reviews only; the targets apply to the whole test split: run without "
            "--count to judge")


@dataclass(frozen=True)
class AccuracySummary:
    """What a run's record keeps of its accuracy check (see :class:`AccuracyReport`).

    ``passed`` is None when the run is not judged (``judged`` False): it covered only part of the test
    split, or a split that is not IMDB v1.0's; ``not_judged_reason`` says which (None in records made
    before it was kept: a part of the split).
    """

    accuracy: float
    correct: int
    samples: int
    judged: bool
    reference_accuracy: float
    reference_source: str
    targets: dict[str, bool | None]
    log: dict[str, int]
    problems: list[str]
    passed: bool | None
    not_judged_reason: str | None = None

    @property
    def verdict(self) -> str:
        return verdict_word(self.passed)

    def summary_line(self) -> str:
        """One line for a run's summary: the accuracy and the verdict of each target, or why it is not judged."""
        head = f"{100 * self.accuracy:.3f}% ({self.correct}/{self.samples})"
        if not self.judged:
            reason = self.not_judged_reason or "a part of the test split, while the targets apply to the whole split"
            return (f"{head}; NOT JUDGED: {reason} (fp32 reference {100 * self.reference_accuracy:.2f}% over the "
                    "whole IMDB v1.0 test split)")
        targets = ", ".join(f"{target} target {verdict_word(met)}" for target, met in self.targets.items())
        problems = f"; {len(self.problems)} problem(s) in the log: {self.problems[0]}" if self.problems else ""
        return f"{head}; {targets}{problems}"


@dataclass(frozen=True)
class AccuracyReport:
    """Accuracy of one log against the labels and, when ``judged``, the quality targets; otherwise
    ``not_judged_reason`` says why not (default: a part of the test split, :func:`not_judged_because`)."""

    accuracy_log: AccuracyLog
    correct: int
    reference_accuracy: float
    reference_source: str
    judged: bool = True
    not_judged_reason: str | None = None

    @property
    def accuracy(self) -> float:
        return self.correct / self.accuracy_log.sample_count

    def meets(self, fraction: float) -> bool:
        """Whether the accuracy reaches ``fraction`` of the reference accuracy."""
        return self.accuracy >= fraction * self.reference_accuracy

    def why_not_judged(self) -> str | None:
        """Why the accuracy is not judged against the targets; None when it is."""
        if self.judged:
            return None
        return self.not_judged_reason or not_judged_because(self.accuracy_log.sample_count)

    @property
    def passed(self) -> bool | None:
        """Complete log and the 99% target met; None when not judged (a part of the split, or not IMDB v1.0's
        test split), unless the log is broken."""
        if not self.accuracy_log.is_valid:
            return False
        return self.meets(TARGET_FRACTIONS[0]) if self.judged else None

    @property
    def verdict(self) -> str:
        return verdict_word(self.passed)

    def target_verdicts(self) -> dict[str, bool | None]:
        """Each target ("99%", "99.9%") met or not; None when not judged."""
        return {f"{100 * fraction:g}%": self.meets(fraction) if self.judged else None for fraction in TARGET_FRACTIONS}

    def summary(self) -> AccuracySummary:
        """The part of this report a run's record keeps."""
        found = self.accuracy_log
        return AccuracySummary(
            accuracy=self.accuracy, correct=self.correct, samples=found.sample_count, judged=self.judged,
            reference_accuracy=self.reference_accuracy, reference_source=self.reference_source,
            targets=self.target_verdicts(),
            log={"entries": found.entry_count, "missing": len(found.missing), "duplicated": len(found.duplicated),
                 "malformed": len(found.malformed), "repeated": len(found.repeated)},
            problems=found.problems(), passed=self.passed, not_judged_reason=self.why_not_judged(),
        )

    def text(self) -> str:
        """The content of ``accuracy.txt``; its last line is ``RESULT: PASS``, ``FAIL`` or ``NOT JUDGED (...)``."""
        found = self.accuracy_log
        lines = [
            f"accuracy={100 * self.accuracy:.3f}%, good={self.correct}, total={found.sample_count}",
            f"reference accuracy (fp32, whole test split): {self.reference_accuracy:.4f} ({self.reference_source})",
        ]
        for fraction in TARGET_FRACTIONS:
            verdict = ("PASS" if self.meets(fraction) else "FAIL") if self.judged else "not judged"
            lines.append(f"{100 * fraction:g}% target (accuracy >= {fraction * self.reference_accuracy:.6f}): {verdict}")
        lines.append(
            f"log: {found.entry_count} entries for {found.sample_count} samples; {len(found.missing)} missing, "
            f"{len(found.duplicated)} duplicated, {len(found.malformed)} malformed, {len(found.repeated)} repeated"
        )
        if found.repeated:
            repeated = index_ranges(found.repeated)
            lines.append(f"repeated qsl_idx, same label, counted once ({len(found.repeated)}): {repeated}")
        lines.extend(found.problems())
        if self.passed is None:
            lines.append(f"RESULT: NOT JUDGED ({self.why_not_judged()})")
        else:
            if not self.judged:
                lines.append(f"not judged against the targets: {self.why_not_judged()}")
            lines.append(f"RESULT: {self.verdict}")
        return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class StatedAccuracy:
    """What an ``accuracy.txt`` states: the accuracy (a fraction), over how many reviews, and the verdict
    (True PASS, False FAIL, None NOT JUDGED)."""

    accuracy: float
    correct: int
    total: int
    passed: bool | None


def read_accuracy_report(path: Path) -> StatedAccuracy:
    """The figures and verdict of an ``accuracy.txt`` written by :meth:`AccuracyReport.text`."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError as error:
        raise AccuracyCheckError(f"cannot read {path}: {error.strerror or error}") from None
    stated, verdict = ACCURACY_LINE.match(text), RESULT_LINE.search(text)
    if stated is None or verdict is None:
        raise AccuracyCheckError(f"{path} has no 'accuracy=...' line or no 'RESULT: ...' line: "
                                 "it was not written by this project's accuracy checker; run python -m tools.accuracy_imdb")
    passed = {"PASS": True, "FAIL": False, "NOT JUDGED": None}[verdict["verdict"]]
    return StatedAccuracy(float(stated["percent"]) / 100, int(stated["correct"]), int(stated["total"]), passed)


def index_ranges(indices: Iterable[int]) -> str:
    """``[0, 1, 2, 5, 7, 8]`` as ``"0-2, 5, 7-8"``."""
    spans: list[list[int]] = []
    for index in sorted(set(indices)):
        if spans and index == spans[-1][1] + 1:
            spans[-1][1] = index
        else:
            spans.append([index, index])
    return ", ".join(str(first) if first == last else f"{first}-{last}" for first, last in spans)


def _joined(numbers: list[int]) -> str:
    return ", ".join(str(number) for number in numbers)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _decode_label(data) -> int:
    """The label held by one response's hex string; ValueError says what is wrong."""
    if not isinstance(data, str):
        raise ValueError(f"data is {type(data).__name__}, expected a hex string")
    try:
        raw = bytes.fromhex(data)
    except ValueError:
        raise ValueError(f"data {data[:40]!r} is not a hex string") from None
    if len(raw) != RESPONSE_DTYPE.itemsize:
        raise ValueError(f"response is {len(raw)} bytes, expected {RESPONSE_DTYPE.itemsize} (one little-endian int64)")
    label = int(np.frombuffer(raw, dtype=RESPONSE_DTYPE)[0])
    if label not in LABELS:
        raise ValueError(f"predicted label {label} is not 0 or 1")
    return label


def decode_accuracy_log(path: Path, sample_count: int) -> AccuracyLog:
    """Predictions of samples ``0..sample_count-1`` from ``mlperf_log_accuracy.json``, and its problems."""
    path = Path(path)
    try:
        entries = json.loads(path.read_text())
    except OSError as error:
        raise AccuracyCheckError(
            f"cannot read the accuracy log {path}: {error.strerror or error}. "
            "Pass the mlperf_log_accuracy.json of an accuracy-mode run"
        ) from None
    except json.JSONDecodeError as error:
        raise AccuracyCheckError(
            f"{path} is not valid JSON ({error}); LoadGen may have stopped before closing it: rerun the accuracy run"
        ) from None
    except UnicodeDecodeError as error:
        raise AccuracyCheckError(
            f"{path} is not UTF-8 text (byte {error.start}: {error.reason}), so not a LoadGen accuracy log: pass the "
            "mlperf_log_accuracy.json of an accuracy-mode run"
        ) from None
    except RecursionError:
        raise AccuracyCheckError(
            f"{path} holds JSON nested too deeply to read, so not a LoadGen accuracy log (a flat list of entries): "
            "pass the mlperf_log_accuracy.json of an accuracy-mode run"
        ) from None
    if not isinstance(entries, list):
        raise AccuracyCheckError(f"{path} holds a JSON {type(entries).__name__}, expected LoadGen's list of entries")

    result = AccuracyLog(sample_count, len(entries), np.full(sample_count, NO_PREDICTION, dtype=np.int64))
    seq_ids: dict[int, int] = {}  # seq_id -> position of its entry
    entry_seq_ids: dict[int, list[int]] = {}  # qsl_idx -> seq_ids of its valid entries
    conflicting: set[int] = set()
    logged: set[int] = set()  # every in-range qsl_idx with an entry, valid or not
    for position, entry in enumerate(entries):
        where = f"entry {position}"
        if not isinstance(entry, dict) or not (_is_int(entry.get("seq_id")) and _is_int(entry.get("qsl_idx"))):
            result.malformed.append(f"{where}: expected an object with integer seq_id and qsl_idx, found {entry!r:.80}")
            continue
        seq_id, qsl_idx = entry["seq_id"], entry["qsl_idx"]
        where = f"{where} (qsl_idx {qsl_idx}, seq_id {seq_id})"
        if not 0 <= qsl_idx < sample_count:
            result.malformed.append(f"{where}: qsl_idx is outside 0..{sample_count - 1}")
            continue
        logged.add(qsl_idx)
        if seq_id in seq_ids:
            result.malformed.append(f"{where}: seq_id already logged by entry {seq_ids[seq_id]}")
            continue
        seq_ids[seq_id] = position
        try:
            label = _decode_label(entry.get("data"))
        except ValueError as error:
            result.malformed.append(f"{where}: {error}")
            continue
        if qsl_idx in entry_seq_ids:
            if label != result.predictions[qsl_idx]:
                conflicting.add(qsl_idx)
            entry_seq_ids[qsl_idx].append(seq_id)
        else:
            entry_seq_ids[qsl_idx] = [seq_id]
            result.predictions[qsl_idx] = label

    result.missing = sorted(set(range(sample_count)) - logged)
    for qsl_idx in sorted(entry_seq_ids):
        ids = entry_seq_ids[qsl_idx]
        if qsl_idx in conflicting:
            result.duplicated[qsl_idx] = ids
        elif len(ids) > 1:
            result.repeated[qsl_idx] = ids
    return result


def accuracy_report(
    accuracy_log: AccuracyLog, labels: np.ndarray, reference_accuracy: float, reference_source: str = "given",
    judged: bool = True, not_judged_reason: str | None = None,
) -> AccuracyReport:
    """Accuracy of ``accuracy_log`` against ``labels`` (int64, shape ``(sample_count,)``, in QSL order).

    ``judged`` False when the labels are only part of the test split, or of a split that is not IMDB v1.0's
    (see the module docstring); ``not_judged_reason`` then says why (default: a part of the split).
    """
    labels = np.asarray(labels)
    if labels.shape != (accuracy_log.sample_count,):
        raise ValueError(f"labels have shape {labels.shape}, expected ({accuracy_log.sample_count},)")
    if not (math.isfinite(reference_accuracy) and 0 < reference_accuracy <= 1):
        raise AccuracyCheckError(f"reference accuracy {reference_accuracy} is not a fraction in (0, 1]")
    correct = int((accuracy_log.predictions == labels).sum())
    return AccuracyReport(accuracy_log, correct, reference_accuracy, reference_source, judged, not_judged_reason)


def reference_accuracy(model_card: Path = MODEL_CARD) -> float:
    """The fp32 reference accuracy stated in ``model_card`` by a line of :data:`REFERENCE_ACCURACY_LINE`'s form."""
    try:
        text = Path(model_card).read_text(encoding="utf-8")
    except OSError as error:
        raise AccuracyCheckError(
            f"cannot read the reference accuracy from {model_card}: {error.strerror or error}. "
            "Pass --reference-accuracy instead"
        ) from None
    for line in text.splitlines():
        if match := REFERENCE_ACCURACY_PATTERN.match(line.strip()):
            return float(match.group("accuracy"))
    example = REFERENCE_ACCURACY_LINE.format(accuracy=0.8812)
    raise AccuracyCheckError(
        f"{model_card} has no line of the form '{example}' stating the fp32 reference accuracy; "
        "add it (from 'python -m model.evaluate' over all 25,000 test reviews) or pass --reference-accuracy"
    )


def resolved_reference(reference: float | None) -> tuple[float, str]:
    """``reference`` if given, else the one stated in MODEL.md; with where it came from."""
    if reference is not None:
        return reference, "given"
    return reference_accuracy(), str(MODEL_CARD)


def check_accuracy_log(run_dir: Path, labels: np.ndarray, judged: bool = True,
                       reference: float | None = None, not_judged_reason: str | None = None) -> AccuracyReport:
    """Check a run folder's ``mlperf_log_accuracy.json`` against ``labels`` and write its ``accuracy.txt``.

    ``judged`` False: the labels are only part of the test split, or of a split that is not IMDB v1.0's, so
    the verdict against the targets is "not judged"; ``not_judged_reason`` says why (default: a part).
    """
    run_dir = Path(run_dir)
    report = accuracy_report(
        decode_accuracy_log(run_dir / ACCURACY_FILE, len(labels)), labels, *resolved_reference(reference), judged=judged,
        not_judged_reason=not_judged_reason,
    )
    write_text_atomically(run_dir / ACCURACY_REPORT_FILE, report.text())
    return report

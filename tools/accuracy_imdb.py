"""Accuracy of a LoadGen accuracy-mode run, checked against the IMDB test labels.

    python -m tools.accuracy_imdb \\
        --mlperf-accuracy-file results/<run>/mlperf_log_accuracy.json \\
        --dataset-path ../shared/data/aclImdb_labeled.tar.gz [--count N]

LoadGen writes ``mlperf_log_accuracy.json`` as a JSON list of
``{"seq_id": int, "qsl_idx": int, "data": "<hex>"}``, one entry per response;
``data`` is the hex of the response bytes, here one little-endian int64: the
predicted label (1 = positive, 0 = negative). ``qsl_idx`` indexes the QSL,
i.e. the test split in the benchmark's sample order (its first N with
``--count N``), which is where the labels come from. The labels are read from
the review file names alone: nothing is tokenized.

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
are 99% and 99.9% of the fp32 reference accuracy, read from ``model/MODEL.md``
(or given with ``--reference-accuracy``). The report goes to ``accuracy.txt``
beside the log unless ``--output`` says otherwise. Exit status: 0 when the log
is complete and well-formed and the accuracy meets the 99% target, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from qsl.errors import DatasetError
from qsl.locations import default_dataset_path
from qsl.reviews import dataset_root, split_reviews

MODEL_CARD = Path(__file__).resolve().parent.parent / "model" / "MODEL.md"
ACCURACY_LOG_NAME = "mlperf_log_accuracy.json"  # as LoadGen names it in a run's folder
REPORT_NAME = "accuracy.txt"
# The line of MODEL.md that states the reference accuracy; write it with .format(accuracy=...).
REFERENCE_ACCURACY_LINE = "Reference accuracy (fp32, 25,000 test reviews): {accuracy:.4f}"
REFERENCE_ACCURACY_PATTERN = re.compile(
    "^" + re.escape(REFERENCE_ACCURACY_LINE.split("{")[0]) + r"(?P<accuracy>[01]\.\d+)$"
)
TARGET_FRACTIONS = (0.99, 0.999)  # of the reference accuracy; the first decides the exit status
RESPONSE_DTYPE = np.dtype("<i8")  # one little-endian int64 per response: the predicted label
LABELS = (0, 1)
NO_PREDICTION = -1


class AccuracyCheckError(RuntimeError):
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


@dataclass(frozen=True)
class AccuracyReport:
    """Accuracy of one log against the labels and the quality targets."""

    accuracy_log: AccuracyLog
    correct: int
    reference_accuracy: float
    reference_source: str

    @property
    def accuracy(self) -> float:
        return self.correct / self.accuracy_log.sample_count

    def meets(self, fraction: float) -> bool:
        """Whether the accuracy reaches ``fraction`` of the reference accuracy."""
        return self.accuracy >= fraction * self.reference_accuracy

    @property
    def passed(self) -> bool:
        return self.accuracy_log.is_valid and self.meets(TARGET_FRACTIONS[0])

    def as_dict(self) -> dict:
        """A JSON-ready summary (for a run's record)."""
        found = self.accuracy_log
        return {
            "accuracy": self.accuracy,
            "correct": self.correct,
            "samples": found.sample_count,
            "reference_accuracy": self.reference_accuracy,
            "reference_source": self.reference_source,
            "targets": {f"{100 * fraction:g}%": self.meets(fraction) for fraction in TARGET_FRACTIONS},
            "log": {
                "entries": found.entry_count, "missing": len(found.missing), "duplicated": len(found.duplicated),
                "malformed": len(found.malformed), "repeated": len(found.repeated),
            },
            "problems": found.problems(),
            "passed": self.passed,
        }

    def summary_line(self) -> str:
        """One line for a run's summary: accuracy and the verdict of each target."""
        targets = ", ".join(
            f"{100 * fraction:g}% target {'PASS' if self.meets(fraction) else 'FAIL'}" for fraction in TARGET_FRACTIONS
        )
        return f"{100 * self.accuracy:.3f}% ({self.correct}/{self.accuracy_log.sample_count}); {targets}; log {'complete' if self.accuracy_log.is_valid else 'INCOMPLETE'}"

    def text(self) -> str:
        """The content of ``accuracy.txt``."""
        found = self.accuracy_log
        lines = [
            f"accuracy={100 * self.accuracy:.3f}%, good={self.correct}, total={found.sample_count}",
            f"reference accuracy (fp32): {self.reference_accuracy:.4f} ({self.reference_source})",
        ]
        for fraction in TARGET_FRACTIONS:
            verdict = "PASS" if self.meets(fraction) else "FAIL"
            lines.append(f"{100 * fraction:g}% target (accuracy >= {fraction * self.reference_accuracy:.6f}): {verdict}")
        lines.append(
            f"log: {found.entry_count} entries for {found.sample_count} samples; {len(found.missing)} missing, "
            f"{len(found.duplicated)} duplicated, {len(found.malformed)} malformed, {len(found.repeated)} repeated"
        )
        if found.repeated:
            repeated = index_ranges(found.repeated)
            lines.append(f"repeated qsl_idx, same label, counted once ({len(found.repeated)}): {repeated}")
        lines.extend(found.problems())
        lines.append(f"RESULT: {'PASS' if self.passed else 'FAIL'}")
        return "\n".join(lines) + "\n"


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
    accuracy_log: AccuracyLog, labels: np.ndarray, reference_accuracy: float, reference_source: str = "given"
) -> AccuracyReport:
    """Accuracy of ``accuracy_log`` against ``labels`` (int64, shape ``(sample_count,)``, in QSL order)."""
    labels = np.asarray(labels)
    if labels.shape != (accuracy_log.sample_count,):
        raise ValueError(f"labels have shape {labels.shape}, expected ({accuracy_log.sample_count},)")
    if not (math.isfinite(reference_accuracy) and 0 < reference_accuracy <= 1):
        raise AccuracyCheckError(f"reference accuracy {reference_accuracy} is not a fraction in (0, 1]")
    correct = int((accuracy_log.predictions == labels).sum())
    return AccuracyReport(accuracy_log, correct, reference_accuracy, reference_source)


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


def check_accuracy_log(run_dir: Path, labels: np.ndarray, reference: float | None = None) -> AccuracyReport:
    """Check a run folder's ``mlperf_log_accuracy.json`` against ``labels`` and write its ``accuracy.txt``."""
    run_dir = Path(run_dir)
    report = accuracy_report(
        decode_accuracy_log(run_dir / ACCURACY_LOG_NAME, len(labels)), labels, *resolved_reference(reference)
    )
    (run_dir / REPORT_NAME).write_text(report.text())
    return report


def qsl_labels(dataset_path: Path, count: int | None = None) -> np.ndarray:
    """Labels (int64, shape ``(N,)``) of the test split in QSL order, or of its first ``count``."""
    labels = np.array([review.label for review in split_reviews(dataset_root(dataset_path), "test")], dtype=np.int64)
    if count is not None:
        if not 0 < count <= len(labels):
            raise AccuracyCheckError(f"count {count} is outside 1..{len(labels)} (the test split's size)")
        labels = labels[:count]
    return labels


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mlperf-accuracy-file", type=Path, required=True, help="LoadGen's mlperf_log_accuracy.json")
    parser.add_argument("--dataset-path", type=Path, default=default_dataset_path(), help="IMDB folder or .tar.gz")
    parser.add_argument("--count", type=int, help="the run's QSL held only the first N test reviews")
    parser.add_argument("--output", type=Path, help="report file (default: accuracy.txt beside the log)")
    parser.add_argument(
        "--reference-accuracy", type=float, help=f"fp32 reference accuracy (default: read from {MODEL_CARD})"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    try:
        reference, source = resolved_reference(args.reference_accuracy)
        labels = qsl_labels(args.dataset_path, args.count)
        report = accuracy_report(decode_accuracy_log(args.mlperf_accuracy_file, len(labels)), labels, reference, source)
    except (AccuracyCheckError, DatasetError) as error:
        raise SystemExit(f"error: {error}") from None

    output = args.output or args.mlperf_accuracy_file.parent / REPORT_NAME
    output.write_text(report.text())
    print(report.text(), end="")
    print(f"report written to {output}")
    return 0 if report.passed else 1


if __name__ == "__main__":
    sys.exit(main())

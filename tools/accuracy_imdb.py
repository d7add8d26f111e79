"""Accuracy of a LoadGen accuracy-mode run, checked against the IMDB test labels.

    python -m tools.accuracy_imdb \\
        --mlperf-accuracy-file results/<run>/mlperf_log_accuracy.json [--dataset-path PATH] [--count N]

The log's format, what counts as missing, malformed, duplicated or repeated,
and how accuracy is scored are described in :mod:`readback.accuracy` (the checker
``run.py --accuracy`` runs after every accuracy run). The labels come from the
review file names of the test split in the benchmark's sample order (its
first N with ``--count N``): nothing is tokenized. The quality targets are 99%
and 99.9% of the fp32 reference accuracy of the whole IMDB v1.0 test split, read
from ``model/MODEL.md`` (or given with ``--reference-accuracy``); a log of the
first N reviews only is reported but not judged against them.

A test split whose class folders do not hold 12,500 reviews each, as IMDB v1.0's
do, is refused (exit 2), unless ``--unofficial-dataset`` accepts it: its log is
then reported, not judged. The labels in sample order follow from those two
counts alone, so the reviews' contents are not read here: the run that made the
log checked them (``run.py`` refuses a test split whose contents differ).

The report goes to ``accuracy.txt`` beside the log unless ``--output`` says
otherwise; an ``accuracy.txt`` already there (the run's own, which its
``run.json`` agrees with) is never written over: pass ``--output``. Exit
status: 0 when the log is complete and well-formed and the accuracy meets the
99% target (or is not judged, with ``--count`` or ``--unofficial-dataset``), 1
otherwise, 2 when the log, labels or reference cannot be read, the test split is
not IMDB v1.0's, or the default report file exists, 3 for an error of this
program's own (its traceback is logged).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from common.errors import run_command
from common.files import write_text_atomically
from common.text import plain
from qsl.locations import DATASET_LOOKUP_HELP
from qsl.reviews import checked_test_labels, dataset_root
from readback.accuracy import (
    MODEL_CARD,
    AccuracyCheckError,
    accuracy_report,
    decode_accuracy_log,
    not_judged_because,
    resolved_reference,
)
from readback.run_files import ACCURACY_REPORT_FILE

log = logging.getLogger("tools.accuracy_imdb")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.accuracy_imdb", description=plain(__doc__),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mlperf-accuracy-file", type=Path, required=True, help="LoadGen's mlperf_log_accuracy.json")
    parser.add_argument("--dataset-path", type=Path, help=DATASET_LOOKUP_HELP)
    parser.add_argument("--count", type=int, help="the run's QSL held only the first N test reviews")
    parser.add_argument("--unofficial-dataset", action="store_true",
                        help="accept a test split whose class folders do not hold the IMDB v1.0 test split's "
                             "12,500 reviews each: the log is then reported, not judged")
    parser.add_argument("--output", type=Path, help=f"report file (default: {ACCURACY_REPORT_FILE} beside the log, "
                                                    "if there is none yet)")
    parser.add_argument(
        "--reference-accuracy", type=float, help=f"fp32 reference accuracy (default: read from {MODEL_CARD})"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return run_command(lambda: check(args), log)


def check(args: argparse.Namespace) -> int:
    """Score the log the command line names, write and print the report: 1 when it fails, else 0."""
    output = args.output or args.mlperf_accuracy_file.parent / ACCURACY_REPORT_FILE
    if args.output is None and output.exists():
        raise AccuracyCheckError(f"{output} exists: it is the run's own report, and its run.json agrees with it; "
                                 "pass --output FILE to write this check elsewhere")
    reference, source = resolved_reference(args.reference_accuracy)
    all_labels, unofficial = checked_test_labels(dataset_root(args.dataset_path), args.unofficial_dataset)
    count = len(all_labels) if args.count is None else args.count
    if not 0 < count <= len(all_labels):
        raise AccuracyCheckError(f"--count {count} is outside 1..{len(all_labels)} (the test split's size)")
    judged = count == len(all_labels) and unofficial is None
    report = accuracy_report(decode_accuracy_log(args.mlperf_accuracy_file, count), all_labels[:count],
                             reference, source, judged=judged,
                             not_judged_reason=None if judged else not_judged_because(count, unofficial))
    write_text_atomically(output, report.text())
    print(report.text(), end="")
    print(f"report written to {output}")
    return 1 if report.passed is False else 0


if __name__ == "__main__":
    sys.exit(main())

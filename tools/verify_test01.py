"""Verify an MLPerf TEST01 compliance run: same answers and same speed as the submission runs.

    python -m tools.verify_test01 --compliance-run C --accuracy-run A --performance-run P [--output-dir D]

``run.py --compliance TEST01`` does this after its run; this command does it
again on its own, e.g. into another folder. What is checked and the files
written (``verify_accuracy.txt``, ``verify_performance.txt``,
``verification.json``) are described in :mod:`readback.test01`. Exit status: 0
when both checks pass, 1 when either fails, 2 when the runs cannot be compared
(the message says why and what to pass instead), 3 for an error of this
program's own (its traceback is logged).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from common.errors import run_command
from common.text import plain
from readback.test01 import Baselines, verify_test01

log = logging.getLogger("tools.verify_test01")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.verify_test01", description=plain(__doc__),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--compliance-run", type=Path, required=True, help="folder of the run.py --compliance TEST01 run")
    parser.add_argument("--accuracy-run", type=Path, required=True, help="folder of the accuracy-mode run")
    parser.add_argument("--performance-run", type=Path, required=True, help="folder of the performance run")
    parser.add_argument("--output-dir", type=Path, help="where the verify_*.txt files go (default: the compliance run's folder)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return run_command(lambda: verify(args), log)


def verify(args: argparse.Namespace) -> int:
    """Verify the compliance run against its two baselines and print the verdict: 0 passed, 1 failed."""
    verification = verify_test01(args.compliance_run, Baselines(args.accuracy_run, args.performance_run), args.output_dir)
    print(verification.summary_line())
    return 0 if verification.passed else 1


if __name__ == "__main__":
    sys.exit(main())

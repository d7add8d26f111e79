"""The harness alone: how many samples/s the SUT completes in an Offline query when inference costs nothing.

    python -m tools.bench.harness --dataset-path ../shared/data/aclImdb_labeled.tar.gz

Each measurement is a real ``run.py`` Offline run, in a process of its own,
whose backend answers every batch at once (:class:`InstantBackend`): what is
left is LoadGen and the SUT (the query handed over, sorted and cut into
batches, the ledger, the responses). It is done for each way of answering
LoadGen (``--paths``: ``arrays``, LoadGen's C API over response records,
and ``objects``, one Python object per sample; :mod:`sut.loadgen_c_api`)
and each number of worker threads (``--workers``), ``--repeats`` times; the
table gives LoadGen's samples/s (its Offline result: the query's samples over
the time from its issue to its last completion), median and range, and each
row's ratio to the first. The query holds ``--samples`` samples (LoadGen
issues the whole Offline query at once); the runs are INVALID for their
minimum duration, which says nothing about this figure.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from common.errors import BadInputError, InferenceFailedError, run_command
from common.files import write_text_atomically
from common.text import plain
from qsl.locations import DATASET_LOOKUP_HELP

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
#: the seconds each run asks for: with ``--samples`` it sets the rate LoadGen expects (samples / 1.1 / seconds)
RUN_SECONDS = 5.0
PATHS = ("arrays", "objects")


class InstantBackend:
    """A backend whose inference costs nothing: label 0 for every review (it does not read them)."""

    name = "instant"

    def labels(self, token_ids) -> np.ndarray:
        return np.zeros(len(token_ids), dtype=np.int64)


#: the child: one run.py Offline run with the instant backend; prints its record's headline
CHILD = """
import json, sys
import run
from readback.run_record import read_run_record
from tools.bench.harness import InstantBackend
args = json.loads(sys.argv[1])
code = run.main(args, backend=InstantBackend())
record = read_run_record(args[args.index("--output-dir") + 1])
print("HARNESS " + json.dumps({"code": code, "samples_per_second": record.result.headline.value,
                               "completion": record.sut.completion, "samples": record.samples.completed}))
"""


def measure(path: str, workers: int, samples: int, dataset_path: Path | None, work_dir: Path) -> dict:
    """One run: its samples/s, the completion path run.json names, and the samples completed."""
    out = work_dir / f"{path}-w{workers}-{len(list(work_dir.iterdir()))}"
    args = ["--scenario", "Offline", "--qps", f"{samples / 1.1 / RUN_SECONDS:.1f}", "--time", f"{RUN_SECONDS:g}",
            "--max-batchsize", "4096", "--workers", str(workers), "--output-dir", str(out)]
    if dataset_path is not None:
        args += ["--dataset-path", str(dataset_path)]
    env = os.environ | {"PYTHONPATH": str(REPO), "SEQ2CNN_COMPLETION": path}
    done = subprocess.run([sys.executable, "-c", CHILD, json.dumps(args)], cwd=REPO, capture_output=True, text=True,
                          env=env, timeout=900)
    lines = [line for line in done.stdout.splitlines() if line.startswith("HARNESS ")]
    if done.returncode != 0 or not lines:
        raise InferenceFailedError(f"the {path} run with {workers} worker(s) ended with {done.returncode}:\n"
                           f"{done.stderr[-3000:]}")
    figures = json.loads(lines[-1][len("HARNESS "):])
    if figures["completion"] != path:
        raise BadInputError(f"asked for the {path} path, the run answered with {figures['completion']}: "
                           "see its log (is pyelftools installed?)")
    return figures


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    parser = argparse.ArgumentParser(prog=prog, description=plain(__doc__),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset-path", type=Path, help=DATASET_LOOKUP_HELP)
    parser.add_argument("--paths", nargs="+", choices=PATHS, default=list(PATHS), help="ways of answering LoadGen")
    parser.add_argument("--workers", nargs="+", type=int, default=[1, 2], help="worker thread counts to measure")
    parser.add_argument("--samples", type=int, default=1_100_000, help="samples in the Offline query")
    parser.add_argument("--repeats", type=int, default=3, help="runs per row; the median counts")
    parser.add_argument("--output", type=Path, help="also write the figures here (JSON)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return run_command(lambda: bench(args), log)


def bench(args: argparse.Namespace) -> int:
    """Measure every row the command line asks for, print the table, write the JSON."""
    if args.output is not None and args.output.exists():
        raise BadInputError(f"{args.output} already exists; pass another --output")
    rows = []
    with tempfile.TemporaryDirectory(prefix="harness-bench-") as work:
        for path in args.paths:
            for workers in args.workers:
                rates = []
                for repeat in range(args.repeats):
                    figures = measure(path, workers, args.samples, args.dataset_path, Path(work))
                    rates.append(figures["samples_per_second"])
                    log.info("%s, %d worker(s), run %d of %d: %s samples/s (%s samples)", path, workers, repeat + 1,
                             args.repeats, f"{rates[-1]:,.0f}", f"{figures['samples']:,}")
                rows.append({"path": path, "workers": workers, "samples_per_second": rates,
                             "median": statistics.median(rates)})
    first = rows[0]["median"]
    print(f"\nHarness alone, Offline, {args.samples:,} samples in the query, instant backend (LoadGen's samples/s)")
    print(f"{'completion':<11} {'workers':>7} {'median':>12} {'range':>25} {'vs first':>9}")
    for row in rows:
        low, high = min(row["samples_per_second"]), max(row["samples_per_second"])
        print(f"{row['path']:<11} {row['workers']:>7} {row['median']:>12,.0f} {f'{low:,.0f} - {high:,.0f}':>25} "
              f"{row['median'] / first:>8.2f}x")
    if args.output is not None:
        write_text_atomically(args.output, json.dumps({"samples": args.samples, "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(prog="python -m tools.bench.harness"))

"""Benchmark the backends against each other, in one process, on the same reviews.

    python -m tools.bench --dataset-path ../shared/data/aclImdb_labeled.tar.gz

For each backend (``reference`` first, as the yardstick; the ONNX runtimes'
backends, ``onnxruntime-*`` and ``openvino-*``, of each runtime installed) it
measures, on the same test reviews: throughput in reviews/s (length-sorted batches, as the
Offline scenario runs them), the ratio to the reference, label agreement and
the largest logit difference with the reference, and the 90th-percentile
latency of a short real LoadGen SingleStream run. It also times the machine's
fp32 matrix multiply, so each backend's own arithmetic rate can be read as a
share of what the hardware does on dense math. The table goes to stdout and
the same figures to a JSON file. The folded backend is measured once per table
precision (``--precisions``, fp32, bf16 and int8), with its accuracy on all
25,000 test reviews and, for bf16 and int8, its label agreement with fp32
there. The header gives the machine's memory read speed, the ceiling of a
kernel that streams its tables from DRAM; the footer what computed each row
(the framework and its release).

Label agreement over the whole test split needs the reference's logits for
all 25,000 reviews (the README states how long the reference takes): make them once with
``python -m model.evaluate --backend reference --save-logits reference.npz`` and pass
``--reference-logits reference.npz``. Without it, agreement is measured on
the throughput reviews only.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from common.errors import BadInputError, run_command
from common.files import sha256_of_file, write_text_atomically
from common.text import plain
from model.backends import BACKENDS, PRECISIONS, Backend, create_backend
from model.batching import length_sorted_batches
from model.paths import DEFAULT_WEIGHTS
from model.onnx_backends import ONNX_BACKENDS, installed_backend_names
from model.precision import NATIVE_BACKEND_NAMES
from qsl.locations import DATASET_LOOKUP_HELP
from qsl.token_cache import TokenizedSplit, load_test_split
from sut.config import RunConfig
from sut.runner import run_benchmark

log = logging.getLogger("tools.bench")

#: bytes of one table value in each precision of the folded backend
TABLE_VALUE_BYTES = {"fp32": 4, "bf16": 2, "int8": 1}
#: multiply-adds per review of the reference: 2 convolutions over 1000 positions
REFERENCE_FLOP_PER_REVIEW = 2 * 1024 * 1024 * (3 * 998 + 4 * 997)


def matmul_flops(size: int = 2048, repeats: int = 5) -> float:
    """Median fp32 FLOP/s of a (size x size) @ (size x size) torch matmul on this machine."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - started)
    return 2 * size**3 / statistics.median(times)


def memory_read_bytes_per_s(megabytes: int = 1024, repeats: int = 5) -> float:
    """Median bytes/s at which numpy sums a ``megabytes`` fp32 array on one thread: one core's DRAM read speed."""
    values = np.ones(megabytes * (1 << 20) // 4, dtype=np.float32)
    values.sum()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        values.sum()
        times.append(time.perf_counter() - started)
    return values.nbytes / statistics.median(times)


def own_flop_per_review(backend: str, lengths: np.ndarray) -> float:
    """Arithmetic a backend does per review on average (FLOP; an add or a max counts one); an ONNX backend does
    its graph's (``trimmed`` or ``folded``)."""
    trimmed = np.minimum(lengths, 1000)
    backend = ONNX_BACKENDS[backend][1] if backend in ONNX_BACKENDS else backend
    if backend == "reference":
        return float(REFERENCE_FLOP_PER_REVIEW)
    if backend == "trimmed":
        return float(np.mean(2 * 1024 * 1024 * (3 + 4) * (trimmed + 4)))
    # folded: per window of a branch with k taps, k adds (bias included) and one max per channel
    return float(np.mean(1024 * ((3 + 1) + (4 + 1)) * np.maximum(trimmed, 1)))


def batched_logits(backend: Backend, split: TokenizedSplit, batches: list[np.ndarray]) -> np.ndarray:
    """Logits (N, 2) of every review, computed batch by batch."""
    logits = np.empty((len(split), 2), dtype=np.float32)
    for batch in batches:
        logits[batch] = backend.logits([split.token_ids[i] for i in batch])
    return logits


def throughput(backend: Backend, split: TokenizedSplit, batch_reviews: int, batch_tokens: int, repeats: int) -> tuple[float, np.ndarray]:
    """Median reviews/s over ``repeats`` passes in length-sorted batches, and the logits (N, 2)."""
    batches = length_sorted_batches([len(ids) for ids in split.token_ids], batch_reviews, batch_tokens)
    backend.logits([split.token_ids[i] for i in batches[-1]])  # warm-up
    rates = []
    for _ in range(repeats):
        started = time.perf_counter()
        logits = batched_logits(backend, split, batches)
        rates.append(len(split) / (time.perf_counter() - started))
    return statistics.median(rates), logits


def singlestream_p90_estimate_ms(backend: Backend, dataset_path: Path | None, seconds: float, count: int,
                                precision: str) -> float:
    """The early-stopping estimate of the 90th-percentile latency (ms) of a short real LoadGen SingleStream run
    (with ``precision``'s shipped user.conf); the plain p90 when the run has too few queries for an estimate
    (LoadGen then logs 0), as the reference's."""
    with tempfile.TemporaryDirectory(prefix="bench-singlestream-") as folder:
        outcome = run_benchmark(
            RunConfig(scenario="SingleStream", dataset_path=dataset_path, count=count, duration_s=seconds,
                      precision=precision, output_dir=Path(folder) / "run"),
            backend,
        )
    result = outcome.record.result
    if result.headline.value > 0:
        return result.headline.value / 1e6
    log.warning("%s: too few queries in %g s for LoadGen's early-stopping estimate; the plain p90 stands in",
                backend.name, seconds)
    return result.percentile.value / 1e6


def one_review_p90_ms(backend: Backend, split: TokenizedSplit, seconds: float, calls: int = 5000) -> float:
    """The 90th-percentile time (ms) of the backend's ``labels`` on one review at a time, back to back, the
    split's reviews in a shuffled order (as LoadGen's SingleStream picks them): the backend's own share of
    a SingleStream query, without LoadGen or the SUT. At most ``calls`` calls or ``seconds`` s, at least 20."""
    order = np.random.default_rng(0).permutation(len(split.token_ids))
    times_ns: list[int] = []
    deadline = time.perf_counter() + seconds
    while len(times_ns) < calls and (len(times_ns) < 20 or time.perf_counter() < deadline):
        review = split.token_ids[order[len(times_ns) % len(order)]]
        start = time.perf_counter_ns()
        backend.labels([review])
        times_ns.append(time.perf_counter_ns() - start)
    return float(np.percentile(times_ns, 90)) / 1e6


class BenchError(BadInputError):
    """The bench cannot run as asked: an output file that exists, reference logits of other weights or reviews."""


@dataclass(frozen=True)
class Variant:
    """One row of the table: a backend in one table precision, and how it is measured.

    The one place that knows what sets the folded backend apart: it is fast enough to be measured on
    ``--fast-count`` reviews in Offline-sized batches and scored on the whole test split (accuracy, and each
    precision's agreement with fp32), and it streams tables, whose read speed is a figure of its own.
    """

    name: str
    precision: str = "fp32"

    @property
    def label(self) -> str:
        """The row's name: the backend, with its precision unless fp32."""
        return self.name if self.precision == "fp32" else f"{self.name}-{self.precision}"

    @property
    def fast(self) -> bool:
        """The folded backend: measured on more reviews, scored on the whole split, its tables' read speed."""
        return self.name == "folded"

    def repeats(self, asked: int) -> int:
        """Throughput passes: one for the reference (slow), else ``asked``."""
        return 1 if self.name == "reference" else asked

    def table_bytes_per_review(self, lengths: np.ndarray) -> float | None:
        """Table bytes the backend reads per review on average (every token reads its 7 table rows once per
        review), or None for a backend without tables."""
        if not self.fast:
            return None
        return float(np.mean(np.minimum(lengths, 1000))) * 7 * 1024 * TABLE_VALUE_BYTES[self.precision]


def variants(backends: list[str], precisions: list[str]) -> list[Variant]:
    """The rows, in order: each backend, the folded one once per table precision asked for."""
    return [Variant(name, precision) for name in backends
            for precision in (precisions if Variant(name).fast else ["fp32"])]


@dataclass
class BenchData:
    """The reviews measured: the whole test split, its first ``--count`` and their token counts, the token counts
    of its first ``--fast-count``, and the reference's logits of the whole split (``--reference-logits``)."""

    full: TokenizedSplit
    split: TokenizedSplit
    lengths: np.ndarray
    fast_lengths: np.ndarray
    reference_all: np.ndarray | None


@dataclass
class Yardsticks:
    """What later rows are compared with, as the rows are measured: the reference's rate and logits (on
    ``--count`` reviews), the folded fp32 logits of the whole split."""

    reference: tuple[float, np.ndarray] | None = None
    folded_fp32_all: np.ndarray | None = None


def parse_args(argv: list[str] | None, prog: str | None) -> argparse.Namespace:
    """The command line; ``prog`` names it in the usage line (default: the script's file name)."""
    parser = argparse.ArgumentParser(prog=prog, description=plain(__doc__),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset-path", type=Path, help=DATASET_LOOKUP_HELP)
    parser.add_argument("--unofficial-dataset", action="store_true",
                        help="accept a test split that is not the IMDB v1.0 test split (its speed is measured all the same)")
    parser.add_argument("--model-path", type=Path, default=DEFAULT_WEIGHTS)
    parser.add_argument("--backends", nargs="+", choices=list(BACKENDS),
                        default=list(NATIVE_BACKEND_NAMES) + installed_backend_names(),
                        help="the backends to measure (default: the project's own and those of each ONNX runtime "
                             "installed, here %(default)s)")
    parser.add_argument("--precisions", nargs="+", choices=list(PRECISIONS), default=list(PRECISIONS),
                        help="table precisions of the folded backend to measure (each is a row)")
    parser.add_argument("--count", type=int, default=256,
                        help="test reviews for agreement, and for the throughput of reference and trimmed (slow)")
    parser.add_argument("--fast-count", type=int, default=8192,
                        help="test reviews for the folded backend's throughput, in Offline-sized batches")
    parser.add_argument("--repeats", type=int, default=3, help="passes over those reviews; the median counts")
    parser.add_argument("--batch-reviews", type=int, help="default: as an Offline run batches for each backend")
    parser.add_argument("--batch-tokens", type=int, help="default: as an Offline run batches for each backend")
    parser.add_argument("--singlestream-seconds", type=float, default=10.0)
    parser.add_argument("--reference-logits", type=Path, help=".npz from 'model.evaluate --save-logits' (all 25,000 reviews)")
    parser.add_argument("--threads", type=int)
    parser.add_argument("--output", type=Path, default=Path("bench.json"))
    return parser.parse_args(argv)


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """The command line; ``prog`` names it in the usage line (default: the script's file name)."""
    args = parse_args(argv, prog)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return run_command(lambda: bench(args), log)


def bench(args: argparse.Namespace) -> int:
    """Measure every row the command line asks for, write the JSON, print the table."""
    if args.output.exists():
        raise BenchError(f"{args.output} already exists; pass another --output")
    data = load_data(args)
    peak = matmul_flops()
    memory_speed = memory_read_bytes_per_s()
    yardsticks = Yardsticks()
    rows = []
    for variant in variants(args.backends, args.precisions):
        row = measure_variant(variant, args, data, yardsticks, peak)
        rows.append(row)
        log.info("%s: %s", variant.name, row)
    write_json(args, data, peak, memory_speed, rows)
    print_table(args, data, peak, memory_speed, rows)
    return 0


def load_data(args: argparse.Namespace) -> BenchData:
    """The test split, the parts measured, and the reference's logits of the whole split if given (checked to
    be of these weights and reviews)."""
    full = load_test_split(args.dataset_path, unofficial_dataset=args.unofficial_dataset)
    split = full.head(args.count)
    fast_lengths = np.array([len(ids) for ids in full.head(args.fast_count).token_ids])
    lengths = np.array([len(ids) for ids in split.token_ids])
    reference_all = None
    if args.reference_logits:
        with np.load(args.reference_logits, allow_pickle=False) as saved:
            if str(saved["weights_sha256"]) != sha256_of_file(args.model_path) or list(saved["names"]) != full.names:
                raise BenchError(f"{args.reference_logits} was made with other weights or reviews")
            reference_all = saved["logits"]
    return BenchData(full, split, lengths, fast_lengths, reference_all)


def measure_variant(variant: Variant, args: argparse.Namespace, data: BenchData, yardsticks: Yardsticks,
                    peak: float) -> dict:
    """One row: throughput, agreement with the reference (and, for the folded backend, accuracy on the whole
    split and agreement with fp32), SingleStream latency, arithmetic and table read rates. Records the
    reference's and folded fp32's results in ``yardsticks`` for the rows after them."""
    name, precision, full, split = variant.name, variant.precision, data.full, data.split
    backend = create_backend(name, args.model_path, threads=args.threads, precision=precision)
    default_reviews, default_tokens = RunConfig(scenario="Offline", backend=name).batching()
    batch_reviews, batch_tokens = args.batch_reviews or default_reviews, args.batch_tokens or default_tokens
    if variant.fast:  # measured on more reviews, in batches as large as Offline runs them
        rate, _ = throughput(backend, full.head(args.fast_count), batch_reviews, batch_tokens, args.repeats)
        logits = batched_logits(backend, split, length_sorted_batches(
            [len(ids) for ids in split.token_ids], batch_reviews, batch_tokens))
    else:
        rate, logits = throughput(backend, split, batch_reviews, batch_tokens, variant.repeats(args.repeats))
    if name == "reference":
        yardsticks.reference = rate, logits
    row = {"backend": variant.label, "precision": precision, "framework": backend.framework, "reviews_per_s": rate,
           "batch_reviews": batch_reviews, "batch_tokens": batch_tokens}
    if yardsticks.reference is not None:
        reference_rate, reference_logits = yardsticks.reference
        row["ratio_to_reference"] = rate / reference_rate
        row["label_agreement"] = float((logits.argmax(1) == reference_logits.argmax(1)).mean())
        row["max_logit_difference"] = float(np.abs(logits - reference_logits).max())
        row["agreement_reviews"] = len(split)
    compared_whole = data.reference_all is not None and name != "reference"
    all_logits = None  # the whole split's, once, for the folded backend's figures and --reference-logits
    if variant.fast or compared_whole:
        all_batches = length_sorted_batches([len(ids) for ids in full.token_ids], batch_reviews, batch_tokens)
        all_logits = batched_logits(backend, full, all_batches)
    if variant.fast:  # fast enough for all 25,000: accuracy, and bf16's and int8's agreement with fp32
        row["accuracy"] = float((all_logits.argmax(1) == full.labels).mean())
        if precision == "fp32":
            yardsticks.folded_fp32_all = all_logits
        elif yardsticks.folded_fp32_all is not None:
            fp32_all = yardsticks.folded_fp32_all
            row["agreement_with_fp32"] = float((all_logits.argmax(1) == fp32_all.argmax(1)).mean())
            row["max_logit_difference_to_fp32"] = float(np.abs(all_logits - fp32_all).max())
    if compared_whole:
        reference_all = data.reference_all
        row["label_agreement"] = float((all_logits.argmax(1) == reference_all.argmax(1)).mean())
        row["label_disagreements"] = int((all_logits.argmax(1) != reference_all.argmax(1)).sum())
        row["max_logit_difference"] = float(np.abs(all_logits - reference_all).max())
        row["agreement_reviews"] = len(full)
        row["accuracy"] = float((all_logits.argmax(1) == full.labels).mean())
    row["singlestream_p90_estimate_ms"] = singlestream_p90_estimate_ms(
        backend, args.dataset_path, args.singlestream_seconds, args.count, precision)
    row["one_review_p90_ms"] = one_review_p90_ms(backend, split, args.singlestream_seconds)
    measured = data.fast_lengths if variant.fast else data.lengths
    row["own_gflop_per_s"] = rate * own_flop_per_review(name, measured) / 1e9
    if (table_bytes := variant.table_bytes_per_review(measured)) is not None:
        row["table_gb_per_s"] = rate * table_bytes / 1e9
    row["share_of_matmul_peak"] = row["own_gflop_per_s"] * 1e9 / peak
    return row


def write_json(args: argparse.Namespace, data: BenchData, peak: float, memory_speed: float, rows: list[dict]) -> None:
    """The machine's figures and the rows, to ``--output``."""
    report = {"matmul_fp32_gflop_per_s": peak / 1e9, "memory_read_gb_per_s": memory_speed / 1e9, "reviews": args.count,
              "fast_reviews": args.fast_count, "mean_tokens": float(data.lengths.mean()),
              "threads": torch.get_num_threads(), "rows": rows}
    write_text_atomically(args.output, json.dumps(report, indent=2) + "\n")


def print_table(args: argparse.Namespace, data: BenchData, peak: float, memory_speed: float, rows: list[dict]) -> None:
    """The machine's figures, one line per row, and what the columns mean."""
    print(f"\nmachine: fp32 matmul {peak / 1e9:.0f} GFLOP/s, memory read {memory_speed / 1e9:.1f} GB/s (one thread); "
          f"{args.count} test reviews, mean {data.lengths.mean():.0f} token ids")
    width = max(len("backend"), *(len(row["backend"]) for row in rows))
    print(f"{'backend':<{width}} {'reviews/s':>10} {'x ref':>8} {'agree':>9} {'max |dlogit|':>12} {'SS p90 est':>10} "
          f"{'1-rev p90':>9} {'GFLOP/s':>8} {'% matmul':>8} {'accuracy':>9} {'vs fp32':>8}")
    for row in rows:
        accuracy = f"{100 * row['accuracy']:.3f}%" if "accuracy" in row else "-"
        versus = f"{100 * row['agreement_with_fp32']:.2f}%" if "agreement_with_fp32" in row else "-"
        print(f"{row['backend']:<{width}} {row['reviews_per_s']:>10.1f} {row.get('ratio_to_reference', float('nan')):>8.1f} "
              f"{100 * row.get('label_agreement', float('nan')):>8.3f}% {row.get('max_logit_difference', float('nan')):>12.2e} "
              f"{row['singlestream_p90_estimate_ms']:>10.3f} {row['one_review_p90_ms']:>9.3f} {row['own_gflop_per_s']:>8.1f} {100 * row['share_of_matmul_peak']:>7.1f}% "
              f"{accuracy:>9} {versus:>8}")
    print(f"throughput over {args.count} reviews ({args.fast_count} for folded), in length-sorted batches as "
          "Offline runs them (batch_reviews, batch_tokens in the JSON)")
    print(f"agreement over {rows[-1].get('agreement_reviews', args.count)} reviews; SS p90 est: LoadGen's early-stopping "
          f"estimate of the p90 latency in a {args.singlestream_seconds:g} s SingleStream run; 1-rev p90: the "
          f"backend alone on one review at a time, the same reviews shuffled (ms); JSON: {args.output}")
    frameworks = {row["framework"]: [] for row in rows}
    for row in rows:
        frameworks[row["framework"]].append(row["backend"])
    print("computed by: " + "; ".join(f"{', '.join(names)}: {framework}" for framework, names in frameworks.items()))


if __name__ == "__main__":
    sys.exit(main())

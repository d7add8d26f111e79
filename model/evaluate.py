"""Accuracy of Seq2CNN weights on the IMDB test split.

    python -m model.evaluate --dataset-path ../shared/data/aclImdb_labeled.tar.gz
    python -m model.evaluate --backend reference --save-logits reference.npz   # the yardstick: slow (README)

The default backend is the folded one in fp32: exact (the same labels as the
reference), seconds for the 25,000 reviews. ``--backend reference`` pads (or
truncates) every review to 1000 ids and runs the network as written, in fp32;
docs/backends.md says how long it takes. Before a long evaluation the
estimate from the first batch is logged. ``--count N`` evaluates the first N
(balanced); ``--save-logits`` keeps every review's logits for later comparisons
(``python -m tools.bench``). A test split that is not the IMDB v1.0 test split
(a review missing, added or edited) is refused (exit 2): the reference accuracy
is that split's. ``--unofficial-dataset`` evaluates it anyway, and says that
the figure is not comparable with the reference.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np

from common.errors import run_command
from common.files import atomic_write, file_sha256, write_text_atomically
from common.progress import progress
from common.text import plain
from model.backends import BACKENDS, Backend, create_backend
from model.paths import DEFAULT_WEIGHTS
from qsl.errors import DatasetError
from qsl.identity import unofficial_reason
from qsl.locations import DATASET_LOOKUP_HELP
from qsl.token_cache import TokenizedSplit, load_test_split
from qsl.vocabulary import DEFAULT_VOCABULARY

log = logging.getLogger("model.evaluate")


#: an evaluation expected to take longer than this logs its estimate first (s)
ANNOUNCE_AFTER_S = 60.0
#: reviews per batch by backend (default): the folded kernel streams large batches through its tables
BATCH_SIZES = {"folded": 256}
DEFAULT_BATCH_SIZE = 16


def predict_split(backend: Backend, split: TokenizedSplit, batch_size: int) -> np.ndarray:
    """fp32 logits (N, 2), in sample order; after the first batch, the expected time is logged if it is long."""
    logits = np.empty((len(split), 2), dtype=np.float32)
    started = time.perf_counter()
    for start in progress(range(0, len(split), batch_size), desc=f"evaluating ({backend.name})", unit="batch"):
        logits[start : start + batch_size] = backend.logits(split.token_ids[start : start + batch_size])
        if start == 0:
            expected_s = (time.perf_counter() - started) * len(split) / min(batch_size, len(split))
            if expected_s > ANNOUNCE_AFTER_S:
                log.info("%s reviews with the %s backend: about %.0f minutes at the first batch's rate",
                         f"{len(split):,}", backend.name, expected_s / 60)
    return logits


def save_logits(path: Path, logits: np.ndarray, split: TokenizedSplit, backend: str, weights_sha256: str) -> None:
    """Write logits with what identifies them (review names, labels, backend, weights) as ``.npz``; never overwrites."""
    if path.exists():
        raise DatasetError(f"{path} already exists; choose another --save-logits path")
    with atomic_write(path) as stream:
        np.savez(stream, logits=logits, labels=split.labels, names=np.array(split.names),
                 backend=np.array(backend), weights_sha256=np.array(weights_sha256))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=plain(__doc__), formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset-path", type=Path, help=DATASET_LOOKUP_HELP)
    parser.add_argument("--model-path", type=Path, default=DEFAULT_WEIGHTS)
    parser.add_argument("--vocabulary", type=Path, default=DEFAULT_VOCABULARY)
    parser.add_argument("--count", type=int, help="evaluate only the first N test reviews")
    parser.add_argument("--unofficial-dataset", action="store_true",
                        help="accept a test split that is not the IMDB v1.0 test split (refused otherwise): its "
                             "accuracy is not comparable with the reference accuracy")
    parser.add_argument("--batch-size", type=int,
                        help=f"reviews per batch (default: {BATCH_SIZES['folded']} for folded, {DEFAULT_BATCH_SIZE} otherwise)")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's choice)")
    parser.add_argument("--backend", choices=list(BACKENDS), default="folded",
                        help="how to compute the model (default: %(default)s, exact in fp32; reference pads every "
                             "review to 1000 ids: slow, see docs/backends.md)")
    parser.add_argument("--output", type=Path, help="also write the result as JSON here")
    parser.add_argument("--save-logits", type=Path, help="also write every review's logits here (.npz), e.g. for tools.bench")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    return run_command(lambda: evaluate(args), log)


def evaluate(args: argparse.Namespace) -> int:
    """Evaluate as the command line asks, print the accuracy line; exit code 0."""
    split = load_test_split(args.dataset_path, args.vocabulary, args.count, args.unofficial_dataset)
    backend = create_backend(args.backend, args.model_path, threads=args.threads)
    if args.save_logits and args.save_logits.exists():
        raise DatasetError(f"{args.save_logits} already exists; choose another --save-logits path")
    started = time.perf_counter()
    batch_size = args.batch_size or BATCH_SIZES.get(args.backend, DEFAULT_BATCH_SIZE)
    logits = predict_split(backend, split, batch_size)
    seconds = time.perf_counter() - started
    correct = int((logits.argmax(1) == split.labels).sum())
    result = {
        "backend": backend.name,
        "reviews": len(split),
        "correct": correct,
        "accuracy": correct / len(split),
        "unofficial_dataset": unofficial_reason(split.identity),
        "seconds": round(seconds, 1),
        "weights": str(args.model_path),
        "weights_sha256": file_sha256(args.model_path),  # hashed once: the backend verified it
    }
    if args.save_logits:
        save_logits(args.save_logits, logits, split, backend.name, result["weights_sha256"])
    if args.output:
        write_text_atomically(args.output, json.dumps(result, indent=2) + "\n")
    unofficial = "" if result["unofficial_dataset"] is None else (
        f"; NOT the IMDB v1.0 test split ({result['unofficial_dataset']}): not comparable with the reference accuracy")
    print(f"accuracy {result['accuracy']:.4%} ({correct}/{len(split)} test reviews, {backend.name} backend, "
          f"{seconds:.0f} s){unofficial}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

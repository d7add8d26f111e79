"""Accuracy of Seq2CNN weights on the IMDB test split, computed the reference way.

    python -m model.evaluate --dataset-path ../shared/data/aclImdb_labeled.tar.gz

Every review is padded (or truncated) to 1000 ids and run in fp32 by
:class:`model.backends.ReferenceBackend`. On a 2-core CPU the 25,000 reviews
take about half an hour; ``--count N`` evaluates the first N (balanced).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from model.backends import Backend, ReferenceBackend
from model.weights import DEFAULT_VOCABULARY, DEFAULT_WEIGHTS, WeightsError
from qsl.errors import DatasetError
from qsl.locations import default_dataset_path
from qsl.reviews import dataset_root
from qsl.token_cache import TokenizedSplit, tokenized_split
from qsl.vocabulary import Vocabulary, VocabularyError

log = logging.getLogger("model.evaluate")


def predict_split(backend: Backend, split: TokenizedSplit, batch_size: int) -> np.ndarray:
    """Predicted labels (N,) int64, in sample order."""
    predictions = np.empty(len(split), dtype=np.int64)
    for start in tqdm(range(0, len(split), batch_size), desc=f"evaluating ({backend.name})", unit="batch"):
        predictions[start : start + batch_size] = backend.labels(split.token_ids[start : start + batch_size])
    return predictions


def load_test_split(dataset_path: Path, vocabulary_path: Path = DEFAULT_VOCABULARY, count: int | None = None) -> TokenizedSplit:
    split = tokenized_split(dataset_root(dataset_path), "test", Vocabulary.load(vocabulary_path))
    if count is not None:
        if not 0 < count <= len(split):
            raise DatasetError(f"--count {count} is outside 1..{len(split)}: the test split has {len(split)} reviews")
        split = split.head(count)
    return split


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset-path", type=Path, default=default_dataset_path(), help="IMDB folder or .tar.gz")
    parser.add_argument("--model-path", type=Path, default=DEFAULT_WEIGHTS)
    parser.add_argument("--vocabulary", type=Path, default=DEFAULT_VOCABULARY)
    parser.add_argument("--count", type=int, help="evaluate only the first N test reviews")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's choice)")
    parser.add_argument("--output", type=Path, help="also write the result as JSON here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    try:
        split = load_test_split(args.dataset_path, args.vocabulary, args.count)
        backend = ReferenceBackend(args.model_path, threads=args.threads)
    except (DatasetError, WeightsError, VocabularyError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    predictions = predict_split(backend, split, args.batch_size)
    seconds = time.perf_counter() - started
    correct = int((predictions == split.labels).sum())
    result = {
        "backend": backend.name,
        "reviews": len(split),
        "correct": correct,
        "accuracy": correct / len(split),
        "seconds": round(seconds, 1),
        "weights": str(args.model_path),
    }
    if args.output:
        args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"accuracy {result['accuracy']:.4%} ({correct}/{len(split)} test reviews, {backend.name} backend, {seconds:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

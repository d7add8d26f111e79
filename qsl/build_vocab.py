"""Build the Seq2CNN vocabulary from the IMDB train split.

    python -m qsl.build_vocab --dataset-path ../shared/data/aclImdb_labeled.tar.gz

The shipped ``model/vocab.json`` was made this way; rebuilding it changes the
meaning of every token id, so retrain the model afterwards.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from common.errors import run_command
from common.progress import progress
from common.text import plain
from qsl.locations import DATASET_LOOKUP_HELP
from qsl.preprocess import tokenize_many
from qsl.reviews import dataset_root, read_review, split_reviews
from qsl.vocabulary import DEFAULT_VOCABULARY, Vocabulary

log = logging.getLogger(__name__)


def build_vocabulary(dataset_path: Path) -> Vocabulary:
    """Count the tokens of every train review, in sample order, and rank them."""
    reviews = split_reviews(dataset_root(dataset_path), "train")
    texts = (read_review(review.path) for review in reviews)
    token_lists = progress(tokenize_many(texts), total=len(reviews), desc="counting train words", unit="review")
    return Vocabulary.build(token_lists)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=plain(__doc__), formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset-path", type=Path, help=DATASET_LOOKUP_HELP)
    parser.add_argument("--output", type=Path, default=DEFAULT_VOCABULARY)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return run_command(lambda: _build(args), log)


def _build(args: argparse.Namespace) -> int:
    vocabulary = build_vocabulary(args.dataset_path)
    vocabulary.save(args.output)
    log.info("wrote %s: %d train words, ids clipped at %d", args.output, len(vocabulary.words), vocabulary.clip_id)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Token ids of a whole split, computed once and cached as ``.npz`` outside the repo.

The cache key hashes every review's name and bytes, the vocabulary's content
and :data:`qsl.preprocess.PREPROCESSING_VERSION`, so a change of the data, the
vocabulary or the preprocessing code can never serve stale ids. Files are
written to a temporary name and renamed, so a crash leaves no partial cache.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from qsl.errors import DatasetError
from qsl.files import atomic_write
from qsl.locations import cache_dir
from qsl.preprocess import PREPROCESSING_VERSION, tokenize_many
from qsl.reviews import Review, dataset_root, read_review, split_reviews
from qsl.vocabulary import DEFAULT_VOCABULARY, Vocabulary

log = logging.getLogger(__name__)


@dataclass
class TokenizedSplit:
    """Token ids and labels of one split, in sample order.

    ``token_ids[i]`` is an int16 array of shape ``(n_tokens_i,)``, unpadded and
    untruncated; ``labels`` is int64 of shape ``(n_samples,)``.
    """

    token_ids: list[np.ndarray]
    labels: np.ndarray
    names: list[str]

    def __len__(self) -> int:
        return len(self.labels)

    def head(self, count: int) -> "TokenizedSplit":
        """The first ``count`` samples (balanced by the sample order); :class:`DatasetError` unless 1 <= count <= N."""
        if not 0 < count <= len(self):
            raise DatasetError(f"--count {count} is outside 1..{len(self)}: the test split has {len(self)} reviews")
        return TokenizedSplit(self.token_ids[:count], self.labels[:count], self.names[:count])


def _review_texts(reviews: list[Review], digest) -> list[str]:
    texts = []
    for review in reviews:
        digest.update(review.name.encode() + b"\0")
        digest.update(review.path.read_bytes())
        texts.append(read_review(review.path))
    return texts


def tokenize_reviews(texts: list[str], vocabulary: Vocabulary, desc: str) -> list[np.ndarray]:
    """Token ids of each text, with a progress bar."""
    token_lists = tokenize_many(texts)
    return [vocabulary.encode(tokens) for tokens in tqdm(token_lists, total=len(texts), desc=desc, unit="review")]


def tokenized_split(root: Path, split: str, vocabulary: Vocabulary, cache_root: Path | None = None) -> TokenizedSplit:
    """Token ids of every review of ``split`` under ``root``, from the cache when it is current."""
    reviews = split_reviews(root, split)
    digest = hashlib.sha256(f"{split}|{PREPROCESSING_VERSION}|{vocabulary.fingerprint()}|".encode())
    texts = _review_texts(reviews, digest)
    cache_file = (cache_root or cache_dir()) / "tokens" / f"{split}-{digest.hexdigest()[:24]}.npz"
    names = [review.name for review in reviews]
    labels = np.array([review.label for review in reviews], dtype=np.int64)
    if cache_file.is_file():
        with np.load(cache_file, allow_pickle=False) as cached:
            flat, offsets = cached["flat_ids"], cached["offsets"]
        log.info("token ids of %s (%d reviews) read from %s", split, len(reviews), cache_file)
        return TokenizedSplit(np.split(flat, offsets[1:-1]), labels, names)

    started = time.perf_counter()
    token_ids = tokenize_reviews(texts, vocabulary, desc=f"tokenizing {split}")
    log.info("tokenized %d %s reviews in %.1f s", len(texts), split, time.perf_counter() - started)
    offsets = np.cumsum([0] + [len(ids) for ids in token_ids], dtype=np.int64)
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(cache_file) as stream:
        np.savez(stream, flat_ids=np.concatenate(token_ids) if token_ids else np.zeros(0, np.int16), offsets=offsets)
    return TokenizedSplit(token_ids, labels, names)


def load_test_split(dataset_path: Path | None = None, vocabulary_path: Path = DEFAULT_VOCABULARY,
                    count: int | None = None) -> TokenizedSplit:
    """Token ids of the test split (all of it, or its first ``count`` reviews), from the cache when current.

    ``dataset_path`` ``None`` looks the dataset up (:mod:`qsl.locations`).
    """
    split = tokenized_split(dataset_root(dataset_path), "test", Vocabulary.load(vocabulary_path))
    return split.head(count) if count is not None else split

"""Token ids of a whole split, computed once and cached as ``.npz`` outside the repo.

The cache key hashes every review's name and bytes, the vocabulary's content
and :data:`qsl.preprocess.PREPROCESSING_VERSION`, so a change of the data, the
vocabulary or the preprocessing code can never serve stale ids. A cache file is
``<cache dir>/tokens/<split>-<key, 24 hex>.npz`` with two arrays, ``flat_ids``
(int16, every review's ids end to end) and ``offsets`` (int64, N + 1); it is
read, checked and written through :func:`common.caches.read_or_build`
(written to a temporary name and renamed, so a crash leaves no partial cache;
a damaged file is named, deleted and rebuilt).

The same pass that reads every review for the key computes each class folder's review count and content
digest (:mod:`qsl.identity`): :func:`load_test_split` refuses a test split that is not the IMDB v1.0 test
split before anything is tokenized.
"""

from __future__ import annotations

import hashlib
import logging
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# CorruptCacheError: raised here for a damaged file, and importable from here as before
from common.caches import (
    CacheKind,
    CorruptCacheError,
    check_regular_file,
    read_or_build,
)
from common.files import atomic_write
from common.progress import progress
from qsl.errors import DatasetError
from qsl.identity import FolderDigest, FolderIdentity, accepted_test_split, imdb_differences
from qsl.preprocess import PREPROCESSING_VERSION, tokenize_many
from qsl.reviews import (
    Review,
    dataset_root,
    decode_review,
    read_review_bytes,
    restore_advice,
    split_reviews,
)
from qsl.vocabulary import DEFAULT_VOCABULARY, Vocabulary

log = logging.getLogger(__name__)


@dataclass
class TokenizedSplit:
    """Token ids and labels of one split, in sample order.

    ``token_ids[i]`` is an int16 array of shape ``(n_tokens_i,)``, unpadded and
    untruncated; ``labels`` is int64 of shape ``(n_samples,)``; ``identity`` is each class folder's review
    count and content digest (:mod:`qsl.identity`) of the whole split that was read (also after :meth:`head`).
    """

    token_ids: list[np.ndarray]
    labels: np.ndarray
    names: list[str]
    identity: dict[str, FolderIdentity] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.labels)

    def head(self, count: int) -> "TokenizedSplit":
        """The first ``count`` samples (balanced by the sample order); :class:`DatasetError` unless 1 <= count <= N."""
        if not 0 < count <= len(self):
            raise DatasetError(f"--count {count} is outside 1..{len(self)}: the test split has {len(self)} reviews")
        return TokenizedSplit(self.token_ids[:count], self.labels[:count], self.names[:count], self.identity)


def _review_texts(reviews: list[Review], digest) -> tuple[list[str], dict[str, FolderIdentity]]:
    """The text of each review, read once: its name and bytes go into ``digest`` (the cache key), and into its
    class folder's identity (:class:`qsl.identity.FolderDigest`; the reviews come in sample order, so each
    folder's in increasing id)."""
    texts = []
    folders: dict[str, FolderDigest] = {}
    for review in reviews:
        raw = read_review_bytes(review.path)
        digest.update(review.name.encode() + b"\0")
        digest.update(raw)
        folders.setdefault(review.folder, FolderDigest()).add(review.path.name, raw)
        texts.append(decode_review(raw, review.path))
    return texts, {folder: folder_digest.identity() for folder, folder_digest in folders.items()}


def tokenize_reviews(texts: list[str], vocabulary: Vocabulary, desc: str) -> list[np.ndarray]:
    """Token ids of each text, with a progress bar."""
    token_lists = tokenize_many(texts)
    return [vocabulary.encode(tokens) for tokens in progress(token_lists, total=len(texts), desc=desc, unit="review")]


#: the token cache: ``<cache dir>/tokens/<split>-<key>.npz``
TOKEN_CACHE = CacheKind(folder="tokens", suffix=".npz", name="token cache", rebuild="tokenizing again",
                        contents="token ids", saving="save a minute or two per run")


def tokenized_split(root: Path, split: str, vocabulary: Vocabulary, cache_root: Path | None = None,
                    check: Callable[[dict[str, FolderIdentity]], None] | None = None) -> TokenizedSplit:
    """Token ids of every review of ``split`` under ``root``, from the cache when it is current.

    ``check``, when given, is called with the split's identity (each class folder's review count and content
    digest) once every review is read, before anything is tokenized; it raises to refuse the split.
    """
    reviews = split_reviews(root, split)
    digest = hashlib.sha256(f"{split}|{PREPROCESSING_VERSION}|{vocabulary.fingerprint()}|".encode())
    texts, identity = _review_texts(reviews, digest)
    if check is not None:
        check(identity)
    cache_file = TOKEN_CACHE.path(split, digest.hexdigest(), cache_root)
    names = [review.name for review in reviews]
    labels = np.array([review.label for review in reviews], dtype=np.int64)

    def build() -> list[np.ndarray]:
        started = time.perf_counter()
        log.info("tokenizing the %s split's %s reviews once (about a minute on 2 cores); later runs read them from %s",
                 split, f"{len(texts):,}", cache_file)
        token_ids = tokenize_reviews(texts, vocabulary, desc=f"tokenizing {split}")
        log.info("tokenized %d %s reviews in %.1f s", len(texts), split, time.perf_counter() - started)
        return token_ids

    token_ids, source = read_or_build(TOKEN_CACHE, cache_file,
                                      read=lambda path: _read_cache(path, len(reviews), vocabulary.vocab_size),
                                      build=build, write=_write_cache, log=log)
    if source == "cache":
        log.info("token ids of %s (%d reviews) read from %s", split, len(reviews), cache_file)
    return TokenizedSplit(token_ids, labels, names, identity)


def _write_cache(token_ids: list[np.ndarray], cache_file: Path) -> None:
    """Save ``token_ids`` to ``cache_file`` (whole or not at all) as the ids end to end and their offsets."""
    offsets = np.cumsum([0] + [len(ids) for ids in token_ids], dtype=np.int64)
    with atomic_write(cache_file) as stream:
        np.savez(stream, flat_ids=np.concatenate(token_ids) if token_ids else np.zeros(0, np.int16), offsets=offsets)


def _read_cache(cache_file: Path, samples: int, vocab_size: int) -> list[np.ndarray]:
    """The ids of ``samples`` reviews saved in ``cache_file``, checked whole, or :class:`CorruptCacheError`."""
    check_regular_file(cache_file)  # a FIFO would block np.load
    try:
        with np.load(cache_file, allow_pickle=False) as cached:
            flat, offsets = cached["flat_ids"], cached["offsets"]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
        raise CorruptCacheError(f"{type(error).__name__}: {error}") from None
    if flat.dtype != np.int16 or flat.ndim != 1 or offsets.dtype != np.int64 or offsets.shape != (samples + 1,):
        raise CorruptCacheError(f"arrays of {flat.dtype} {flat.shape} and {offsets.dtype} {offsets.shape}, "
                                f"not the int16 ids and {samples + 1} int64 offsets of {samples} reviews")
    if offsets[0] != 0 or offsets[-1] != len(flat) or np.any(np.diff(offsets) < 0):
        raise CorruptCacheError("offsets that do not cut the ids into reviews")
    if len(flat) and (flat.min() < 1 or flat.max() >= vocab_size):
        raise CorruptCacheError(f"ids outside 1..{vocab_size - 1}")
    return np.split(flat, offsets[1:-1])


def load_test_split(dataset_path: Path | None = None, vocabulary_path: Path = DEFAULT_VOCABULARY,
                    count: int | None = None, unofficial_dataset: bool = False) -> TokenizedSplit:
    """Token ids of the test split (all of it, or its first ``count`` reviews), from the cache when current.

    ``dataset_path`` ``None`` looks the dataset up (:mod:`qsl.locations`). A test split that is not the IMDB
    v1.0 test split (:mod:`qsl.identity`) is refused with :class:`qsl.identity.NotImdbTestSplitError` before
    anything is tokenized, unless ``unofficial_dataset``: then a warning says that its accuracy is reported,
    not judged (:func:`qsl.identity.unofficial_reason` of the split's ``identity`` says why).
    """
    root = dataset_root(dataset_path)

    def check(identity: dict[str, FolderIdentity]) -> None:
        accepted_test_split(imdb_differences(identity), str(root / "test"), restore_advice(root), unofficial_dataset)

    split = tokenized_split(root, "test", Vocabulary.load(vocabulary_path), check=check)
    return split.head(count) if count is not None else split

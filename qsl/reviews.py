"""The IMDB reviews of one split, in the benchmark's fixed sample order.

Layout: ``<root>/{train,test}/{pos,neg}/<id>_<rating>.txt``. Sample order of a
split: the ``pos`` and ``neg`` files, each sorted by numeric id, interleaved
``pos[0], neg[0], pos[1], neg[1], ...`` (leftovers of the longer class last),
so the first N samples are balanced. Label 1 = positive, 0 = negative.

A file that is not valid UTF-8 is read with each undecodable byte replaced by
U+FFFD and a warning that names the file: the sample is kept, because a
benchmark must run every sample of its split. A review must be a regular file
(a link to one is followed) of at most :data:`MAX_REVIEW_BYTES`: a folder, a
FIFO or a device in its place, or a larger file, stops the load with a
:class:`DatasetError` that names it.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from itertools import zip_longest
from pathlib import Path

import numpy as np

from common.files import read_regular_file
from qsl.archive import extracted_archive, is_archive
from qsl.errors import DatasetError
from qsl.locations import cache_dir, resolve_dataset_path

log = logging.getLogger(__name__)

SPLITS = ("train", "test")
#: reviews in the IMDB test split, the benchmark's samples (12,500 of each class); the one place this is stated
TEST_SPLIT_REVIEWS = 25_000
REVIEW_NAME = re.compile(r"^(\d+)_(\d+)\.txt$")
POSITIVE, NEGATIVE = 1, 0
#: the largest review file accepted (bytes): 19 times the longest IMDB review (13.7 KB)
MAX_REVIEW_BYTES = 256 * 1024


@dataclass(frozen=True)
class Review:
    """One review file and its label (1 = positive, 0 = negative)."""

    path: Path
    label: int

    @property
    def name(self) -> str:
        """``<split>/<pos|neg>/<file>``, stable across machines."""
        return "/".join(self.path.parts[-3:])


def dataset_root(dataset_path: Path | None = None) -> Path:
    """The folder that holds ``train/`` and ``test/``, given a folder or a ``.tar.gz``.

    ``None`` looks the dataset up (see :func:`qsl.locations.resolve_dataset_path`).
    An archive is extracted once into the cache (see :mod:`qsl.archive`).
    """
    dataset_path = resolve_dataset_path(dataset_path)
    if not dataset_path.exists():
        raise DatasetError(
            f"IMDB dataset not found at {dataset_path}. Download it with "
            "'python -m qsl.download', or pass --dataset-path pointing to aclImdb_v1.tar.gz "
            "or to an extracted aclImdb folder."
        )
    folder = extracted_archive(dataset_path, cache_dir()) if is_archive(dataset_path) else dataset_path
    for candidate in (folder, folder / "aclImdb"):
        if any((candidate / split).is_dir() for split in SPLITS):
            return candidate
    raise DatasetError(
        f"{dataset_path} does not hold the IMDB layout: expected train/ or test/ "
        "(or aclImdb/train, aclImdb/test) with pos/ and neg/ folders of <id>_<rating>.txt files"
    )


def _sorted_class_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise DatasetError(f"missing folder {folder}: the IMDB layout needs {folder.parent}/pos and {folder.parent}/neg")
    files = [(int(m.group(1)), path) for path in folder.iterdir() if (m := REVIEW_NAME.match(path.name))]
    if not files:
        raise DatasetError(f"{folder} holds no review files named <id>_<rating>.txt")
    return [path for _, path in sorted(files)]


def split_reviews(root: Path, split: str) -> list[Review]:
    """All reviews of ``split`` in the benchmark's sample order."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    positives = _sorted_class_files(root / split / "pos")
    negatives = _sorted_class_files(root / split / "neg")
    ordered: list[Review] = []
    for positive, negative in zip_longest(positives, negatives):
        if positive is not None:
            ordered.append(Review(positive, POSITIVE))
        if negative is not None:
            ordered.append(Review(negative, NEGATIVE))
    return ordered


def split_labels(root: Path, split: str) -> np.ndarray:
    """Labels (int64, shape ``(N,)``) of ``split`` in sample order, from the file names alone (nothing is read)."""
    return np.array([review.label for review in split_reviews(root, split)], dtype=np.int64)


def read_review_bytes(path: Path) -> bytes:
    """The bytes of one review file; :class:`DatasetError` unless it is a regular file of at most
    :data:`MAX_REVIEW_BYTES`."""
    try:
        return read_regular_file(path, MAX_REVIEW_BYTES)
    except OSError as error:
        reason = f"review {error}" if error.strerror is None else f"cannot read review {path}: {error.strerror}"
        raise DatasetError(f"{reason}. Each review must be a regular text file of at most "
                           f"{MAX_REVIEW_BYTES // 1024} KiB: replace or remove it") from None


def decode_review(raw: bytes, path: Path) -> str:
    """Text of one review's bytes; undecodable bytes become U+FFFD with a warning naming ``path``."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        log.warning(
            "%s is not valid UTF-8 (first bad byte at offset %d); undecodable bytes replaced by U+FFFD",
            path, error.start,
        )
        return raw.decode("utf-8", errors="replace")


def read_review(path: Path) -> str:
    """Text of one review file (see :func:`read_review_bytes` and :func:`decode_review`)."""
    return decode_review(read_review_bytes(path), path)

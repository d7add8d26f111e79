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
:class:`DatasetError` that names it. Whether a test split is the IMDB v1.0 test
split is :mod:`qsl.identity`'s to say.
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
from qsl.identity import (
    IMDB_TEST_SPLIT,
    FolderDigest,
    FolderIdentity,
    accepted_test_split,
    imdb_count_differences,
    imdb_differences,
)
from qsl.locations import cache_dir, resolve_dataset_path

log = logging.getLogger(__name__)

SPLITS = ("train", "test")
#: reviews in the IMDB test split, the benchmark's samples (12,500 of each class: :mod:`qsl.identity` states them)
TEST_SPLIT_REVIEWS = sum(folder.files for folder in IMDB_TEST_SPLIT.values())
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

    @property
    def folder(self) -> str:
        """Its class folder: ``pos`` or ``neg``."""
        return self.path.parent.name


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
    folder = (extracted_archive(dataset_path, cache_dir(), on_extracted=_log_extracted_test_split)
              if is_archive(dataset_path) else dataset_path)
    root = _layout_root(folder)
    if root is None:
        raise DatasetError(
            f"{dataset_path} does not hold the IMDB layout: expected train/ or test/ "
            "(or aclImdb/train, aclImdb/test) with pos/ and neg/ folders of <id>_<rating>.txt files"
        )
    return root


def _layout_root(folder: Path) -> Path | None:
    """``folder`` or ``folder/aclImdb``, whichever holds ``train/`` or ``test/``; None if neither does."""
    for candidate in (folder, folder / "aclImdb"):
        if any((candidate / split).is_dir() for split in SPLITS):
            return candidate
    return None


def _log_extracted_test_split(archive: Path, folder: Path) -> None:
    """Log whether the test split just extracted from ``archive`` into ``folder`` is the IMDB v1.0 test split (read
    once now, while the files are fresh in memory; each run checks it again, and refuses it if not)."""
    root = _layout_root(folder)
    if root is None or not (root / "test").is_dir():
        log.info("%s holds no test split", archive)
        return
    try:
        differences = imdb_differences(folder_identities(root))
    except DatasetError as error:
        log.warning("the test split extracted from %s cannot be read whole: %s", archive, error)
        return
    if differences:
        log.warning("the test split of %s is not the IMDB v1.0 test split (%s): a run refuses it, unless asked to "
                    "report its accuracy without judging it (--unofficial-dataset)", archive, "; ".join(differences))
    else:
        log.info("the test split of %s is the IMDB v1.0 test split (review counts and contents checked)", archive)


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


def checked_test_labels(root: Path, unofficial_allowed: bool = False) -> tuple[np.ndarray, str | None]:
    """Labels of the test split under ``root`` (as :func:`split_labels`, nothing read), and ``None`` when each class
    folder holds the IMDB v1.0 test split's number of reviews.

    The labels in sample order depend on those two counts alone, so a split with IMDB's counts has IMDB's labels.
    Other counts: :class:`qsl.identity.NotImdbTestSplitError`, unless ``unofficial_allowed``; then the
    differences are returned as the reason the accuracy is reported, not judged.
    """
    labels = split_labels(root, "test")
    positives = int(labels.sum())
    differences = imdb_count_differences({"pos": positives, "neg": len(labels) - positives})
    return labels, accepted_test_split(differences, str(root / "test"), restore_advice(root), unofficial_allowed)


def folder_identities(root: Path) -> dict[str, FolderIdentity]:
    """Each class folder's review count and content digest (:mod:`qsl.identity`) of the test split under
    ``root``, reading every review."""
    digests = {"pos": FolderDigest(), "neg": FolderDigest()}
    for review in split_reviews(root, "test"):
        digests[review.folder].add(review.path.name, read_review_bytes(review.path))
    return {folder: digest.identity() for folder, digest in digests.items()}


def restore_advice(root: Path) -> str:
    """What to do about a test split under ``root`` that is not the IMDB v1.0 test split: where ``root`` lies in
    the cache's extractions, extract its archive again; else get the archive."""
    extractions = cache_dir() / "datasets"
    extraction = next((folder for folder in (root, *root.parents) if folder.parent == extractions), None)
    if extraction is not None:
        return (f"if the archive extracted into {extraction} is the IMDB archive, that extraction was changed since: "
                "delete the folder and the next run extracts the archive again; else download the official archive "
                "with 'python -m qsl.download'")
    return ("extract the archive again, or download it with 'python -m qsl.download' and pass the .tar.gz as "
            "--dataset-path")


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

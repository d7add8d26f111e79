"""What makes a test split the IMDB v1.0 test split: each class folder's review count and content digest.

The quality targets are stated for the whole IMDB v1.0 test split (``model/MODEL.md``), so a run is judged
against them only on that split, verified: a copy with a review missing, added or edited is refused
(:class:`NotImdbTestSplitError`, exit 2), or, where the user opts in with ``--unofficial-dataset``, run
with its accuracy reported but not judged.

A class folder (``test/pos``, ``test/neg``) is identified by

- its review count: the files named ``<id>_<rating>.txt`` in it (other files are not reviews, and not
  counted);
- its content digest: the sha256 (lower-case hex) of the concatenation, over those files in increasing
  numeric ``<id>`` (the order the benchmark's sample order takes them), of the file's name in UTF-8
  (``b"0_10.txt"``), one zero byte, and the 32-byte sha256 of the file's bytes.

Every run computes both in the pass that reads every review for the token cache's key
(:func:`qsl.token_cache.load_test_split`), so checking costs no extra read; an archive's test split is also
checked once when it is extracted, and the verdict logged with the archive's name (:mod:`qsl.reviews`).
Tools that read only file names (the accuracy checker, the submission checker) check the counts, which
alone decide the labels in sample order (:func:`qsl.reviews.checked_test_labels`).

The values below were computed from ``aclImdb_labeled.tar.gz`` (the official ``aclImdb_v1.tar.gz`` without
its unlabeled reviews): two counts and two digests per split, nothing else of the data (its README forbids
committing anything more derived from the reviews' text).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass

from qsl.errors import DatasetError

log = logging.getLogger(__name__)

#: the option that accepts a test split other than IMDB v1.0's, its accuracy reported but not judged
UNOFFICIAL_OPTION = "--unofficial-dataset"


@dataclass(frozen=True)
class FolderIdentity:
    """One class folder's review files: how many, and their content digest (sha256 hex, see the module docstring)."""

    files: int
    sha256: str


#: the IMDB v1.0 test split, by class folder
IMDB_TEST_SPLIT: dict[str, FolderIdentity] = {
    "pos": FolderIdentity(12_500, "3add1e359b7d83ed36b1539b316be4f9928ea76fa27c4440f879ed43c3b11f0e"),
    "neg": FolderIdentity(12_500, "c0cbe7bb96a2a5487061bad18857a1b36609559a03297610d32636c80bdbc416"),
}


class NotImdbTestSplitError(DatasetError):
    """A test split whose review files are not those of the IMDB v1.0 test split (missing, added or edited)."""


class FolderDigest:
    """A class folder's :class:`FolderIdentity`, computed file by file: :meth:`add` each review in increasing
    numeric id."""

    def __init__(self) -> None:
        self.files = 0
        self._digest = hashlib.sha256()

    def add(self, name: str, raw: bytes) -> None:
        """Count the review file ``name`` (``<id>_<rating>.txt``) whose bytes are ``raw``."""
        self.files += 1
        self._digest.update(name.encode() + b"\0" + hashlib.sha256(raw).digest())

    def identity(self) -> FolderIdentity:
        return FolderIdentity(self.files, self._digest.hexdigest())


def imdb_count_differences(counts: Mapping[str, int]) -> list[str]:
    """One sentence per class folder whose review count (``counts["pos"]``, ``counts["neg"]``) is not the IMDB
    v1.0 test split's; empty when both are."""
    return [f"test/{folder} holds {counts.get(folder, 0):,} review files, the IMDB v1.0 test split {expected.files:,}"
            for folder, expected in IMDB_TEST_SPLIT.items() if counts.get(folder, 0) != expected.files]


def imdb_differences(found: Mapping[str, FolderIdentity]) -> list[str]:
    """One sentence per class folder of ``found`` that is not the IMDB v1.0 test split's (its count, else its
    content digest); empty when the split is that one."""
    differences = imdb_count_differences({folder: identity.files for folder, identity in found.items()})
    for folder, expected in IMDB_TEST_SPLIT.items():
        identity = found.get(folder)
        if identity is not None and identity.files == expected.files and identity.sha256 != expected.sha256:
            differences.append(f"test/{folder}'s {identity.files:,} files differ in content from the IMDB v1.0 test "
                               f"split's (sha256 {identity.sha256[:16]}..., expected {expected.sha256[:16]}...): a "
                               "damaged or edited copy")
    return differences


def unofficial_reason(found: Mapping[str, FolderIdentity]) -> str | None:
    """Why the test split whose class folders are ``found`` is not the IMDB v1.0 test split (its differences, in
    one text), or None when it is that split."""
    return "; ".join(imdb_differences(found)) or None


def accepted_test_split(differences: list[str], where: str, advice: str, unofficial_allowed: bool) -> str | None:
    """Whether a test split may be used, given its ``differences`` from the IMDB v1.0 test split.

    ``None`` when there are none. Otherwise :class:`NotImdbTestSplitError` naming ``where`` (the split's
    folder), each difference and ``advice`` (how to get the real split), unless ``unofficial_allowed``: then
    a warning says its accuracy is reported, not judged, and the differences are returned as one text (the
    reason a run records).
    """
    if not differences:
        return None
    reason = "; ".join(differences)
    if not unofficial_allowed:
        raise NotImdbTestSplitError(
            f"{where} is not the IMDB v1.0 test split: {reason}. The quality targets apply to that split only: "
            f"{advice}; to run on this one anyway, its accuracy reported but not judged, pass {UNOFFICIAL_OPTION}")
    log.warning("%s is not the IMDB v1.0 test split (%s); accepted with %s: its accuracy is reported, not judged",
                where, reason, UNOFFICIAL_OPTION)
    return reason

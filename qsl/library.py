"""The LoadGen QuerySampleLibrary over the IMDB test reviews.

Samples are the test split in the benchmark's order (see :mod:`qsl.reviews`),
tokenized before the run from the cache (:mod:`qsl.token_cache`). LoadGen
decides which samples live in RAM: :meth:`ImdbQSL.load_samples` prepares the
named samples (truncated to 1000 ids, contiguous int32) into the in-RAM set
that the SUT reads, and :meth:`ImdbQSL.unload_samples` drops them. Reading a
sample that LoadGen has not loaded is an error, never a silent fallback.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence

import mlperf_loadgen as lg
import numpy as np

from qsl.token_cache import TokenizedSplit
from qsl.vocabulary import MAX_LENGTH

log = logging.getLogger(__name__)


class SampleNotLoadedError(KeyError):
    """The SUT asked for a sample that LoadGen has not loaded."""


class ImdbQSL:
    """QSL of ``split`` (already restricted by ``--count``); ``handle`` is LoadGen's QSL."""

    def __init__(self, split: TokenizedSplit, performance_sample_count: int | None = None):
        if len(split) == 0:
            raise ValueError("the QSL needs at least one sample")
        self.split = split
        self.performance_sample_count = min(performance_sample_count or len(split), len(split))
        self.loaded: dict[int, np.ndarray] = {}
        #: each sample's length as the SUT runs it (at most MAX_LENGTH ids), by QSL index (N,) int64
        self._lengths = np.fromiter((min(len(ids), MAX_LENGTH) for ids in split.token_ids), dtype=np.int64,
                                    count=len(split))
        self.handle = lg.ConstructQSL(len(split), self.performance_sample_count, self.load_samples, self.unload_samples)

    def __len__(self) -> int:
        return len(self.split)

    @property
    def labels(self) -> np.ndarray:
        """Labels (N,) int64 in QSL index order: 1 positive, 0 negative."""
        return self.split.labels

    def load_samples(self, indices: Sequence[int]) -> None:
        for index in indices:
            self.loaded[index] = np.ascontiguousarray(self.split.token_ids[index][:MAX_LENGTH], dtype=np.int32)
        repeated = len(indices) - len(set(indices))
        # LoadGen's MultiStream pads its sample set to whole queries of 8 by loading some samples twice
        padding = f"; {repeated} of them loaded twice, LoadGen's padding to whole queries" if repeated else ""
        log.info("loaded %d samples into RAM (%d resident%s)", len(indices), len(self.loaded), padding)

    def unload_samples(self, indices: Sequence[int]) -> None:
        for index in indices:
            self.loaded.pop(index, None)
        log.info("unloaded %d samples (%d resident)", len(indices), len(self.loaded))

    def token_ids(self, index: int) -> np.ndarray:
        """Ids of a loaded sample, shape (n <= 1000,) int32."""
        try:
            return self.loaded[index]
        except KeyError:
            raise SampleNotLoadedError(f"sample {index} was issued but is not loaded: LoadGen did not call LoadSamplesToRam for it") from None

    def reviews(self, indices: Sequence[int]) -> "LoadedReviews":
        """The ids of loaded samples ``indices`` (a list, or an int64 array), each as :meth:`token_ids` gives it,
        looked up as the backend reads them."""
        return LoadedReviews(self, indices)

    def lengths(self, indices: np.ndarray) -> np.ndarray:
        """The lengths (as run: at most 1000 ids) of samples ``indices`` (int64 array): (len(indices),) int64."""
        return self._lengths[indices]

    def destroy(self) -> None:
        lg.DestroyQSL(self.handle)


class LoadedReviews(Sequence):
    """A batch's reviews in the QSL, looked up one by one as they are read (``len`` needs none): review i is
    :meth:`ImdbQSL.token_ids` of ``indices[i]``, (n <= 1000,) int32. A backend that needs only the count (the
    harness measured alone) or reads the reviews once costs no list of them."""

    def __init__(self, qsl: ImdbQSL, indices: Sequence[int]):
        self.qsl = qsl
        #: the QSL indices (a list, or an int64 array)
        self.indices = indices

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, position):
        if isinstance(position, slice):
            return [self.qsl.token_ids(int(index)) for index in self.indices[position]]
        return self.qsl.token_ids(int(self.indices[position]))

    def __iter__(self) -> Iterator[np.ndarray]:
        loaded = self.qsl.loaded
        indices = self.indices.tolist() if isinstance(self.indices, np.ndarray) else self.indices
        for index in indices:
            ids = loaded.get(index)
            yield ids if ids is not None else self.qsl.token_ids(index)  # raises SampleNotLoadedError

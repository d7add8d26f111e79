"""The SUT's batching policies on a small real QSL (LoadGen objects, no run)."""

import numpy as np
import pytest

from qsl.library import ImdbQSL, SampleNotLoadedError
from qsl.token_cache import TokenizedSplit
from sut.system import Seq2CNNSystem


class LengthEcho:
    """A backend that labels a review by whether it is longer than 5 ids."""

    name = "length-echo"

    def labels(self, token_ids):
        return np.array([int(len(ids) > 5) for ids in token_ids], dtype=np.int64)


@pytest.fixture
def qsl():
    lengths = [3, 9, 1, 7, 7, 12, 0, 4]
    split = TokenizedSplit([np.ones(n, np.int16) for n in lengths], np.zeros(len(lengths), np.int64),
                           [f"r{i}" for i in range(len(lengths))])
    library = ImdbQSL(split)
    library.load_samples(list(range(len(lengths))))
    yield library
    library.destroy()


def test_offline_batches_are_sorted_by_length_and_cut_by_budget(qsl):
    sut = Seq2CNNSystem(LengthEcho(), qsl, "Offline", max_batch_size=3, max_batch_tokens=20)
    samples = [(100 + index, index) for index in range(8)]
    batches = sut._length_sorted_batches(samples)
    lengths = [[len(qsl.token_ids(index)) for _, index in batch] for batch in batches]
    assert lengths == [[12], [9, 7], [7, 4, 3], [1, 0]]
    assert sorted(sample for batch in batches for sample in batch) == samples
    sut.shutdown()


def test_a_review_longer_than_the_budget_gets_a_batch_of_its_own(qsl):
    sut = Seq2CNNSystem(LengthEcho(), qsl, "Offline", max_batch_size=8, max_batch_tokens=5)
    batches = sut._length_sorted_batches([(index, index) for index in range(8)])
    assert [len(qsl.token_ids(index)) for _, index in batches[0]] == [12]
    sut.shutdown()


def test_unloaded_sample_is_an_error(qsl):
    qsl.unload_samples([2])
    with pytest.raises(SampleNotLoadedError, match="sample 2"):
        qsl.token_ids(2)


def test_bad_batching_parameters_are_refused(qsl):
    with pytest.raises(ValueError):
        Seq2CNNSystem(LengthEcho(), qsl, "Server", max_batch_size=0)
    with pytest.raises(ValueError, match="unknown scenario"):
        Seq2CNNSystem(LengthEcho(), qsl, "Batch")

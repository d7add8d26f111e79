"""Dataset layout, sample order, bad input and the token cache, on small hand-made folders."""

import logging
import re

import numpy as np
import pytest

from common.caches import CorruptCacheError as CommonCorruptCacheError
from common.errors import BadInputError
from qsl.errors import DatasetError
from qsl.reviews import TEST_SPLIT_REVIEWS, dataset_root, read_review, split_reviews
from qsl.token_cache import CorruptCacheError, tokenized_split
from qsl.vocabulary import Vocabulary


def write_reviews(root, split, label_folder, reviews):
    folder = root / split / label_folder
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in reviews.items():
        data = text if isinstance(text, bytes) else text.encode("utf-8")
        (folder / name).write_bytes(data)


@pytest.fixture
def small_dataset(tmp_path, monkeypatch):
    monkeypatch.setenv("SEQ2CNN_CACHE_DIR", str(tmp_path / "cache"))
    root = tmp_path / "aclImdb"
    write_reviews(root, "test", "pos", {"10_9.txt": "Great film", "2_8.txt": "Loved it", "1_7.txt": "Fine movie"})
    write_reviews(root, "test", "neg", {"3_1.txt": "Awful film", "20_2.txt": "Bad", "notes.md": "ignored"})
    return root


def test_sample_order_interleaves_classes_by_numeric_id(small_dataset):
    reviews = split_reviews(small_dataset, "test")
    assert [r.name for r in reviews] == [
        "test/pos/1_7.txt", "test/neg/3_1.txt",
        "test/pos/2_8.txt", "test/neg/20_2.txt",
        "test/pos/10_9.txt",
    ]
    assert [r.label for r in reviews] == [1, 0, 1, 0, 1]


def test_dataset_root_accepts_the_folder_or_its_parent(small_dataset):
    assert dataset_root(small_dataset) == small_dataset
    assert dataset_root(small_dataset.parent) == small_dataset


def test_missing_dataset_says_how_to_get_it(tmp_path):
    with pytest.raises(DatasetError, match="qsl.download.*--dataset-path"):
        dataset_root(tmp_path / "nowhere")


def test_missing_split_folder_is_named(small_dataset):
    with pytest.raises(DatasetError, match=r"train/pos"):
        split_reviews(small_dataset, "train")


def test_empty_class_folder_is_an_error(small_dataset):
    (small_dataset / "train" / "pos").mkdir(parents=True)
    (small_dataset / "train" / "neg").mkdir(parents=True)
    with pytest.raises(DatasetError, match="no review files"):
        split_reviews(small_dataset, "train")


def test_folder_without_the_layout_is_an_error(tmp_path):
    (tmp_path / "something").mkdir()
    with pytest.raises(DatasetError, match="IMDB layout"):
        dataset_root(tmp_path / "something")


def test_non_utf8_bytes_are_replaced_with_a_warning_naming_the_file(small_dataset, caplog):
    bad = small_dataset / "test" / "neg" / "30_3.txt"
    bad.write_bytes(b"bad \xff\xfe movie")
    with caplog.at_level(logging.WARNING):
        text = read_review(bad)
    assert text == "bad \ufffd\ufffd movie"
    assert "30_3.txt" in caplog.text and "not valid UTF-8" in caplog.text


def test_token_cache_is_reused_and_invalidated_by_data_and_vocabulary(small_dataset, tmp_path):
    vocab = Vocabulary(["film", "great", "bad"], vocab_size=3)
    cache = tmp_path / "cache"
    first = tokenized_split(small_dataset, "test", vocab, cache)
    assert [ids.tolist() for ids in first.token_ids] == [[], [1], [], [2], [2, 1]]
    assert first.labels.tolist() == [1, 0, 1, 0, 1]
    files = sorted((cache / "tokens").iterdir())
    assert len(files) == 1

    again = tokenized_split(small_dataset, "test", vocab, cache)
    assert [ids.tolist() for ids in again.token_ids] == [ids.tolist() for ids in first.token_ids]
    assert sorted((cache / "tokens").iterdir()) == files  # served from the cache

    (small_dataset / "test" / "neg" / "20_2.txt").write_text("Great bad film")
    changed = tokenized_split(small_dataset, "test", vocab, cache)
    assert changed.token_ids[3].tolist() == [2, 2, 1]

    other_vocab = Vocabulary(["great", "film"], vocab_size=5200)
    renumbered = tokenized_split(small_dataset, "test", other_vocab, cache)
    assert renumbered.token_ids[1].tolist() == [2]
    assert len(list((cache / "tokens").iterdir())) == 3
    assert not [p for p in (cache / "tokens").iterdir() if not p.name.endswith(".npz")]
    assert all(re.fullmatch(r"test-[0-9a-f]{24}\.npz", p.name) for p in (cache / "tokens").iterdir())


def test_the_token_cache_error_is_the_caches_common_input_error():
    assert CorruptCacheError is CommonCorruptCacheError
    assert issubclass(CorruptCacheError, BadInputError) and issubclass(CorruptCacheError, ValueError)


def test_empty_review_is_kept_as_all_padding(small_dataset, tmp_path):
    (small_dataset / "test" / "pos" / "40_10.txt").write_text("<br /> ... !!!")
    split = tokenized_split(small_dataset, "test", Vocabulary(["film"], 5200), tmp_path / "c")
    assert len(split) == 6
    assert all(ids.dtype == np.int16 for ids in split.token_ids)


def test_real_test_split_order_and_balance(test_split):
    assert len(test_split) == TEST_SPLIT_REVIEWS == 25000
    assert test_split.names[:4] == ["test/pos/0_10.txt", "test/neg/0_2.txt", "test/pos/1_10.txt", "test/neg/1_3.txt"]
    assert test_split.labels[:4000].sum() == 2000
    lengths = np.array([len(ids) for ids in test_split.token_ids])
    assert 200 < lengths.mean() < 260 and lengths.max() > 1000  # some reviews are truncated


@pytest.mark.parametrize("kind", ["folder", "fifo", "dev-zero", "too-large"])
def test_a_review_that_is_not_a_regular_file_of_bounded_size_is_refused_by_name(small_dataset, tmp_path, kind):
    """No input in place of a review can hang the load (FIFO) or fill memory (/dev/zero, a huge file)."""
    import os

    from qsl.reviews import MAX_REVIEW_BYTES

    review = small_dataset / "test" / "pos" / "10_9.txt"
    review.unlink()
    if kind == "folder":
        review.mkdir()
    elif kind == "fifo":
        os.mkfifo(review)
    elif kind == "dev-zero":
        review.symlink_to("/dev/zero")
    else:
        review.write_bytes(b"a " * (MAX_REVIEW_BYTES // 2 + 1))
    with pytest.raises(DatasetError, match=r"10_9\.txt.*regular text file"):
        tokenized_split(small_dataset, "test", Vocabulary(["film"], 5200), tmp_path / "cache")


@pytest.mark.parametrize("damage", ["truncated", "garbage", "ids-out-of-range", "folder"])
def test_a_corrupt_token_cache_is_named_deleted_and_rebuilt(small_dataset, tmp_path, caplog, damage):
    vocab = Vocabulary(["film", "great", "bad"], vocab_size=3)
    cache = tmp_path / "cache"
    first = tokenized_split(small_dataset, "test", vocab, cache)
    (cache_file,) = (cache / "tokens").iterdir()
    if damage == "truncated":
        cache_file.write_bytes(cache_file.read_bytes()[:100])
    elif damage == "garbage":
        cache_file.write_bytes(b"\0" * 4096)
    elif damage == "ids-out-of-range":
        np.savez(cache_file, flat_ids=np.array([7, 9, 9], np.int16), offsets=np.array([0, 0, 1, 1, 2, 3], np.int64))
    else:
        cache_file.unlink()
        cache_file.mkdir()
    with caplog.at_level(logging.WARNING):
        again = tokenized_split(small_dataset, "test", vocab, cache)
    assert cache_file.name in caplog.text and "unusable" in caplog.text
    assert [ids.tolist() for ids in again.token_ids] == [ids.tolist() for ids in first.token_ids]
    if damage != "folder":  # rebuilt: the next load reads it without a warning
        caplog.clear()
        tokenized_split(small_dataset, "test", vocab, cache)
        assert "unusable" not in caplog.text


def test_an_unwritable_token_cache_costs_time_not_the_run(small_dataset, tmp_path, caplog):
    """A cache folder that cannot be created or written (here: under a file, which even root cannot write
    into) leaves the ids computed, used and the path named."""
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    with caplog.at_level(logging.WARNING):
        split = tokenized_split(small_dataset, "test", Vocabulary(["film", "great", "bad"], 3), blocker / "cache")
    assert [ids.tolist() for ids in split.token_ids] == [[], [1], [], [2], [2, 1]]
    assert "cannot save the token ids" in caplog.text and "not-a-folder" in caplog.text

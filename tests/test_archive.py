"""qsl.archive: safe, atomic, once-only extraction; qsl.reviews.dataset_root on folders and archives."""

from __future__ import annotations

import io
import logging
import os
import re
import tarfile
from pathlib import Path

import pytest

import qsl.archive
from qsl.archive import extracted_archive
from qsl.errors import DatasetError, UnsafeArchiveError
from qsl.reviews import dataset_root, split_reviews

REVIEWS = {
    "aclImdb/train/pos/0_9.txt": "a great film",
    "aclImdb/train/neg/0_2.txt": "a dull film",
    "aclImdb/test/pos/1_8.txt": "lovely<br />acting",
    "aclImdb/test/neg/1_1.txt": "awful",
}


def file_member(name: str, text: str) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    data = text.encode()
    info.size = len(data)
    return info, data


def special_member(name: str, kind: bytes, linkname: str = "") -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return info, None


def write_archive(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    """A .tar.gz of ``members``, file entries only (as in the real archive)."""
    with tarfile.open(path, "w:gz") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("SEQ2CNN_CACHE_DIR", str(folder))
    return folder


@pytest.fixture
def imdb_archive(tmp_path: Path) -> Path:
    return write_archive(tmp_path / "aclImdb_small.tar.gz", [file_member(name, text) for name, text in REVIEWS.items()])


def test_normal_archive_extracts(imdb_archive, cache):
    folder = extracted_archive(imdb_archive, cache)
    assert folder.parent == cache / "datasets"
    for name, text in REVIEWS.items():
        assert (folder / name).read_text() == text
    assert [path.name for path in (cache / "datasets").iterdir()] == [folder.name]


@pytest.fixture(params=["data filter", "own writer"])
def extraction(request, monkeypatch) -> str:
    """Both ways of writing members: tarfile's ``data`` filter, and the writer for Pythons without it."""
    if request.param == "own writer":
        monkeypatch.setattr(qsl.archive, "HAS_DATA_FILTER", False)
    elif not qsl.archive.HAS_DATA_FILTER:
        pytest.skip("this Python's tarfile has no extraction filters")
    return request.param


def test_members_are_written_without_the_archive_s_owner_or_special_mode_bits(extraction, tmp_path, cache):
    setuid, data = file_member("aclImdb/train/pos/4_9.txt", "suid")
    setuid.mode, setuid.uid, setuid.gid = 0o4777, 4242, 4242
    folder_info = tarfile.TarInfo("aclImdb/test")
    folder_info.type, folder_info.mode = tarfile.DIRTYPE, 0o777
    members = [(folder_info, None), *(file_member(name, text) for name, text in REVIEWS.items()), (setuid, data)]
    archive = write_archive(tmp_path / "modes.tar.gz", members)
    folder = extracted_archive(archive, cache)
    for name, text in REVIEWS.items():
        assert (folder / name).read_text() == text
    written = (folder / setuid.name).stat()
    assert written.st_mode & 0o7777 == 0o755 and written.st_uid == Path(cache).stat().st_uid
    umask = os.umask(0o022)
    os.umask(umask)
    assert (folder / "aclImdb" / "test").stat().st_mode & 0o7777 == 0o777 & ~umask  # a new folder's default


UNSAFE_MEMBERS = {
    "parent path": file_member("../escaped.txt", "x"),
    "nested parent path": file_member("aclImdb/../../escaped.txt", "x"),
    "absolute path": file_member("/tmp/escaped.txt", "x"),
    "symlink": special_member("aclImdb/train/pos/2_9.txt", tarfile.SYMTYPE, "/etc/passwd"),
    "hard link": special_member("aclImdb/train/pos/3_9.txt", tarfile.LNKTYPE, "aclImdb/train/pos/0_9.txt"),
    "character device": special_member("aclImdb/null", tarfile.CHRTYPE),
    "fifo": special_member("aclImdb/pipe", tarfile.FIFOTYPE),
}


@pytest.mark.parametrize("kind", UNSAFE_MEMBERS)
def test_unsafe_member_is_refused_and_nothing_is_left(kind, extraction, tmp_path, cache):
    bad_info, bad_data = UNSAFE_MEMBERS[kind]
    # A regular file first, so a lazy check would already have extracted something.
    members = [file_member("aclImdb/train/pos/0_9.txt", "fine"), (bad_info, bad_data)]
    archive = write_archive(tmp_path / "unsafe.tar.gz", members)
    with pytest.raises(UnsafeArchiveError, match=re.escape(repr(bad_info.name))):
        extracted_archive(archive, cache)
    datasets = cache / "datasets"
    assert not datasets.exists() or list(datasets.iterdir()) == []
    assert not (tmp_path / "escaped.txt").exists()


def test_second_call_reuses_the_extraction(imdb_archive, cache, monkeypatch):
    folder = extracted_archive(imdb_archive, cache)
    marker = folder / "marker"
    marker.write_text("kept")

    def extract_again(*args, **kwargs):
        raise AssertionError("the archive was extracted a second time")

    monkeypatch.setattr(qsl.archive, "extract_archive", extract_again)
    assert extracted_archive(imdb_archive, cache) == folder
    assert marker.read_text() == "kept"


def test_corrupt_archive_raises_dataset_error_and_leaves_nothing(imdb_archive, tmp_path, cache):
    truncated = tmp_path / "truncated.tar.gz"
    truncated.write_bytes(imdb_archive.read_bytes()[:-40])
    with pytest.raises(DatasetError, match="truncated.tar.gz"):
        extracted_archive(truncated, cache)
    datasets = cache / "datasets"
    assert not datasets.exists() or list(datasets.iterdir()) == []


def test_dataset_root_of_a_folder(tmp_path, cache):
    for name, text in REVIEWS.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert dataset_root(tmp_path / "aclImdb") == tmp_path / "aclImdb"
    assert dataset_root(tmp_path) == tmp_path / "aclImdb"
    assert not cache.exists()


def test_dataset_root_of_an_archive_with_top_folder(imdb_archive, cache):
    root = dataset_root(imdb_archive)
    assert root.name == "aclImdb" and root.parent.parent == cache / "datasets"
    reviews = split_reviews(root, "train")
    assert [(review.name, review.label) for review in reviews] == [("train/pos/0_9.txt", 1), ("train/neg/0_2.txt", 0)]
    assert dataset_root(imdb_archive) == root


def test_an_archives_test_split_is_checked_when_it_is_extracted(imdb_archive, cache, caplog):
    """Its verdict is logged once, naming the archive; a run checks the split again, and refuses it if it is not
    the IMDB v1.0 test split (tests/test_dataset_identity.py)."""
    with caplog.at_level(logging.INFO, logger="qsl.reviews"):
        dataset_root(imdb_archive)
        assert (f"the test split of {imdb_archive} is not the IMDB v1.0 test split (test/pos holds 1 review files, the "
                "IMDB v1.0 test split 12,500; test/neg holds 1 review files") in caplog.text
        assert "--unofficial-dataset" in caplog.text
        caplog.clear()
        dataset_root(imdb_archive)  # extracted already: nothing read, nothing said
        assert "IMDB v1.0" not in caplog.text


def test_dataset_root_of_a_missing_path_explains_what_to_do(tmp_path, cache):
    with pytest.raises(DatasetError, match="qsl.download"):
        dataset_root(tmp_path / "nowhere.tar.gz")


def test_an_archive_that_expands_a_thousandfold_is_refused_before_it_fills_the_disk(tmp_path, cache):
    zeros = tarfile.TarInfo("aclImdb/train/pos/5_9.txt")
    zeros.size = 40 << 20  # 40 MiB of zeros: about 40 KB compressed
    members = [file_member("aclImdb/train/pos/0_9.txt", "fine"), (zeros, b"\0" * zeros.size)]
    bomb = write_archive(tmp_path / "bomb.tar.gz", members)
    assert bomb.stat().st_size * 500 < zeros.size
    with pytest.raises(UnsafeArchiveError, match=r"bomb\.tar\.gz would expand to more than"):
        extracted_archive(bomb, cache)
    datasets = cache / "datasets"
    assert not datasets.exists() or list(datasets.iterdir()) == []


def test_the_expansion_bounds_leave_room_for_the_real_archive(dataset_path):
    if not qsl.archive.is_archive(dataset_path):
        pytest.skip("the dataset is a folder")
    with tarfile.open(dataset_path) as tar:
        members = qsl.archive.checked_members(tar, dataset_path)
    assert len(members) > 50_000
    expanded = sum(member.size for member in members)
    assert expanded * 3 < qsl.archive.MAX_EXPANSION_RATIO * dataset_path.stat().st_size

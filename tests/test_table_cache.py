"""The folded-table cache: built once per weights file, read back checked, rebuilt when damaged or stale."""

from __future__ import annotations

import logging
import os

import numpy as np
import pytest

from common.caches import CorruptCacheError
from common.files import sha256_of_file
from model.table_cache import (
    CorruptTablesError,
    cache_file_for,
    load_folded_tables,
    read_cache,
    write_cache,
)


def same_tables(a, b) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(a.tables + a.biases + a.padding_vectors,
                                                    b.tables + b.biases + b.padding_vectors)) \
        and np.array_equal(a.classifier_weight, b.classifier_weight) and a.elu_alpha == b.elu_alpha


@pytest.fixture(scope="module")
def built(random_weights, tmp_path_factory):
    """Tables built once into a fresh cache: (tables, report, cache root)."""
    root = tmp_path_factory.mktemp("cache")
    tables, report = load_folded_tables(random_weights, root)
    return tables, report, root


def test_first_load_builds_and_caches_then_reads_back_the_same_tables(built, random_weights):
    tables, report, root = built
    assert report.source == "built" and report.seconds > 0
    path = cache_file_for(sha256_of_file(random_weights), root)
    assert report.cache_file == str(path) and path.is_file()
    again, second = load_folded_tables(random_weights, root)
    assert second.source == "cache" and second.cache_file == str(path)
    assert same_tables(tables, again)


def test_damaged_cache_is_named_deleted_and_rebuilt(built, random_weights, tmp_path, caplog):
    tables, _, _ = built
    path = cache_file_for(sha256_of_file(random_weights), tmp_path)
    write_cache(tables, sha256_of_file(random_weights), path)
    data = bytearray(path.read_bytes())
    data[-1000] ^= 0xFF  # one flipped byte inside the arrays
    path.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="model.table_cache"):
        rebuilt, report = load_folded_tables(random_weights, tmp_path)
    assert report.source == "built"
    assert f"folded-table cache {path} is unusable (its arrays do not match their recorded checksum)" in caplog.text
    assert same_tables(tables, rebuilt)
    assert read_cache(path, sha256_of_file(random_weights)) is not None  # the new file is whole


@pytest.mark.parametrize("damage", ["truncated", "empty", "other weights", "fifo"])
def test_every_unusable_cache_file_is_rebuilt(damage, built, random_weights, tmp_path, caplog):
    tables, _, _ = built
    digest = sha256_of_file(random_weights)
    path = cache_file_for(digest, tmp_path)
    path.parent.mkdir(parents=True)
    if damage == "fifo":
        os.mkfifo(path)
    elif damage == "other weights":
        write_cache(tables, "0" * 64, path)
    else:
        write_cache(tables, digest, path)
        path.write_bytes(path.read_bytes()[:1000] if damage == "truncated" else b"")
    with caplog.at_level(logging.WARNING, logger="model.table_cache"):
        rebuilt, report = load_folded_tables(random_weights, tmp_path)
    assert report.source == "built" and "is unusable" in caplog.text
    assert same_tables(tables, rebuilt) and path.is_file()


def test_unwritable_cache_is_a_warning_and_the_tables_still_serve(built, random_weights, tmp_path, caplog):
    tables, _, _ = built
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with caplog.at_level(logging.WARNING, logger="model.table_cache"):
        served, report = load_folded_tables(random_weights, blocker)
    assert report.source == "built" and "cannot save the folded tables" in caplog.text
    assert same_tables(tables, served)


def test_the_tables_cache_keeps_its_file_name_and_its_error_is_the_caches_one(tmp_path):
    """Existing cache files stay valid: same folder and name; CorruptTablesError is the caches' common error."""
    assert cache_file_for("ab" * 32, tmp_path) == tmp_path / "folded" / f"folded-{'ab' * 12}.safetensors"
    assert CorruptTablesError is CorruptCacheError and issubclass(CorruptTablesError, ValueError)
    (tmp_path / "a-folder").mkdir()
    with pytest.raises(CorruptTablesError, match="not a regular file"):
        read_cache(tmp_path / "a-folder", "0" * 64)


def test_int8_tiles_are_cached_beside_the_fp32_tables_and_a_damaged_file_is_rebuilt(built, random_weights, tmp_path,
                                                                                  caplog):
    """The int8 tiles, scales and padding sums have their own checksummed file: built from the fp32 tables once,
    read back identical, and a flipped byte, a truncated file or another weights file's tiles are rebuilt."""
    from model.table_cache import int8_cache_file_for, load_int8_tiles, read_int8_cache, write_int8_cache

    digest = sha256_of_file(random_weights)
    tiled, report = load_int8_tiles(random_weights, tmp_path)
    path = int8_cache_file_for(digest, tmp_path)
    assert report.source == "built" and report.cache_file == str(path) and path.is_file()
    assert path.name == f"int8-{digest[:24]}.safetensors" and cache_file_for(digest, tmp_path).is_file()
    again, second = load_int8_tiles(random_weights, tmp_path)
    assert second.source == "cache"
    for name in ("tiles", "pad3", "pad4", "scale", "bias", "classifier_weight"):
        assert np.array_equal(getattr(tiled, name), getattr(again, name)), name
    assert again.tiles.dtype == np.int8 and again.pad3.dtype == np.int16 and again.tiles.ctypes.data % 64 == 0
    for damage in ("flipped", "truncated", "other weights"):
        if damage == "other weights":
            write_int8_cache(tiled, "0" * 64, path)
        else:
            data = bytearray(path.read_bytes())
            if damage == "flipped":
                data[-1000] ^= 0xFF
            path.write_bytes(bytes(data if damage == "flipped" else data[:1000]))
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="model.table_cache"):
            rebuilt, report = load_int8_tiles(random_weights, tmp_path)
        assert report.source == "built" and f"int8-table cache {path} is unusable" in caplog.text, damage
        assert np.array_equal(rebuilt.tiles, tiled.tiles)
        assert read_int8_cache(path, digest) is not None

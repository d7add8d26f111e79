"""The folded tables of a weights file, cached on disk: built once (seconds of fp64 matrix products), then read.

A cache file is ``<cache dir>/folded/folded-<weights sha256, 24 hex>.safetensors``
(``$SEQ2CNN_CACHE_DIR`` or ``~/.cache/seq2cnn``, as for the token cache). It
holds the fp32 arrays of :class:`model.folded.FoldedTables` (``table3`` (3,
vocab, channels), ``table4`` (4, vocab, channels), ``bias3``, ``bias4``,
``pad3``, ``pad4`` (channels,), ``classifier_weight`` (2, 2 * channels),
``classifier_bias`` (2,)) and, as metadata, the format version, the full
sha256 of the weights it was built from, the ELU alpha, the maximum length,
and ``content_sha256``: the sha256 of every array's bytes in name order.
Reading checks all of them; a file that fails is named in a warning, deleted
and built again, so a damaged cache costs time, never a wrong result (the
read-or-build logic is :func:`common.caches.read_or_build`, shared with the
token cache).

The int8 tiles of ``--precision int8`` (:mod:`model.quantization`) have a
cache file of their own beside it, ``int8-<weights sha256, 24 hex>.safetensors``
(37 MB: a run in int8 reads neither the 149 MB fp32 file nor quantizes again):
``tiles`` (channels / 64, vocab * 7 * 64) int8, ``pad3``, ``pad4``
(channels,) int16, ``scale``, ``bias`` (2 * channels,) fp32 and the
classifier, with the same metadata plus the tile width ``block``, checked the
same way. It is made from the fp32 tables (read from their cache, or built).
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from safetensors import SafetensorError, safe_open
from safetensors.numpy import save

from common.caches import (
    CacheKind,
    CorruptCacheError,
    check_regular_file,
    read_or_build,
)
from common.files import write_bytes_atomically
from model.folded import FoldedTables
from model.folded_cpu import TILE_CHANNELS
from model.folded_tiles import TiledTables, cache_line_aligned
from model.weights import load_model, verified_sha256

log = logging.getLogger(__name__)

#: bumped whenever the arrays or their meaning change, so that older files are rebuilt
FORMAT_VERSION = "1"
ARRAY_NAMES = ("table3", "table4", "bias3", "bias4", "pad3", "pad4", "classifier_weight", "classifier_bias")

#: the folded-table cache: ``<cache dir>/folded/folded-<weights sha256>.safetensors``
TABLES_CACHE = CacheKind(folder="folded", suffix=".safetensors", name="folded-table cache",
                         rebuild="building the tables again", contents="folded tables",
                         saving="save their build time per run")


#: bumped whenever the int8 scheme or its arrays change
INT8_FORMAT_VERSION = "1"
INT8_ARRAY_NAMES = ("tiles", "pad3", "pad4", "scale", "bias", "classifier_weight", "classifier_bias")
INT8_DTYPES = {"tiles": np.int8, "pad3": np.int16, "pad4": np.int16}

#: the int8 tiles' cache: ``<cache dir>/folded/int8-<weights sha256>.safetensors``
INT8_CACHE = CacheKind(folder="folded", suffix=".safetensors", name="int8-table cache",
                       rebuild="quantizing the tables again", contents="int8 tables",
                       saving="save their quantization time per run")


#: a cache file that does not hold the folded tables of the weights it is named for (the caches' one error)
CorruptTablesError = CorruptCacheError


@dataclass(frozen=True)
class TablesLoadReport:
    """Where the folded tables came from (``cache`` or ``built``), the cache file, and the seconds it took."""

    source: str
    cache_file: str
    seconds: float


def cache_file_for(weights_sha256: str, cache_root: Path | None = None) -> Path:
    return TABLES_CACHE.path("folded", weights_sha256, cache_root)


def int8_cache_file_for(weights_sha256: str, cache_root: Path | None = None) -> Path:
    return INT8_CACHE.path("int8", weights_sha256, cache_root)


def _content_sha256(arrays: dict[str, np.ndarray], names: tuple[str, ...] = ARRAY_NAMES) -> str:
    digest = hashlib.sha256()
    for name in names:
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(arrays[name]).view(np.uint8).reshape(-1).data)
    return digest.hexdigest()


def _arrays(tables: FoldedTables) -> dict[str, np.ndarray]:
    (table3, table4), (bias3, bias4), (pad3, pad4) = tables.tables, tables.biases, tables.padding_vectors
    return dict(table3=table3, table4=table4, bias3=bias3, bias4=bias4, pad3=pad3, pad4=pad4,
                classifier_weight=tables.classifier_weight, classifier_bias=tables.classifier_bias)


def write_cache(tables: FoldedTables, weights_sha256: str, path: Path) -> None:
    """Save ``tables`` to ``path`` atomically, keyed by ``weights_sha256``."""
    arrays = {name: np.ascontiguousarray(array, dtype=np.float32) for name, array in _arrays(tables).items()}
    metadata = {"format": FORMAT_VERSION, "weights_sha256": weights_sha256, "content_sha256": _content_sha256(arrays),
                "elu_alpha": repr(float(tables.elu_alpha)), "max_length": str(int(tables.max_length))}
    path.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomically(path, save(arrays, metadata=metadata))


def read_cache(path: Path, weights_sha256: str) -> FoldedTables:
    """The tables in ``path``, checked whole against ``weights_sha256``, or :class:`CorruptTablesError`."""
    arrays, elu_alpha, max_length, _ = _read_checked(path, weights_sha256, FORMAT_VERSION, ARRAY_NAMES, {})
    return FoldedTables([arrays["table3"], arrays["table4"]], [arrays["bias3"], arrays["bias4"]],
                        [arrays["pad3"], arrays["pad4"]], arrays["classifier_weight"], arrays["classifier_bias"],
                        elu_alpha, max_length)


def _read_checked(path: Path, weights_sha256: str, version: str, names: tuple[str, ...],
                  dtypes: dict[str, type]) -> tuple[dict[str, np.ndarray], float, int, dict[str, str]]:
    """The arrays of the cache file ``path`` (each of ``names``, of its dtype in ``dtypes``, else fp32), its ELU
    alpha, maximum length and metadata, once format, weights and checksum are checked; else :class:`CorruptTablesError`."""
    check_regular_file(path)  # a FIFO would block the read
    try:
        with safe_open(path, framework="np") as handle:
            metadata = handle.metadata() or {}
            arrays = {name: handle.get_tensor(name) for name in handle.keys()}
    except (SafetensorError, OSError, ValueError) as error:
        raise CorruptTablesError(f"{type(error).__name__}: {error}") from None
    if metadata.get("format") != version:
        raise CorruptTablesError(f"format {metadata.get('format')!r}, not {version!r}")
    if metadata.get("weights_sha256") != weights_sha256:
        raise CorruptTablesError(f"built from weights {metadata.get('weights_sha256')!r}, not {weights_sha256}")
    if sorted(arrays) != sorted(names) or any(array.dtype != dtypes.get(name, np.float32)
                                              for name, array in arrays.items()):
        raise CorruptTablesError(f"arrays {sorted(arrays)}, not the arrays {sorted(names)} of their expected types")
    if _content_sha256(arrays, names) != metadata.get("content_sha256"):
        raise CorruptTablesError("its arrays do not match their recorded checksum")
    try:
        elu_alpha, max_length = float(metadata["elu_alpha"]), int(metadata["max_length"])
    except (KeyError, ValueError) as error:
        raise CorruptTablesError(f"unreadable metadata ({error})") from None
    return arrays, elu_alpha, max_length, metadata


def write_int8_cache(tiled: TiledTables, weights_sha256: str, path: Path) -> None:
    """Save the int8 tiles ``tiled`` (:func:`model.quantization.quantize_int8`) to ``path`` atomically."""
    arrays = {name: np.ascontiguousarray(getattr(tiled, name), dtype=INT8_DTYPES.get(name, np.float32))
              for name in INT8_ARRAY_NAMES}
    metadata = {"format": INT8_FORMAT_VERSION, "weights_sha256": weights_sha256,
                "content_sha256": _content_sha256(arrays, INT8_ARRAY_NAMES), "block": str(tiled.width),
                "elu_alpha": repr(float(tiled.elu_alpha)), "max_length": str(int(tiled.max_length))}
    path.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomically(path, save(arrays, metadata=metadata))


def read_int8_cache(path: Path, weights_sha256: str) -> TiledTables:
    """The int8 tiles in ``path``, checked whole against ``weights_sha256``, or :class:`CorruptTablesError`."""
    arrays, elu_alpha, max_length, metadata = _read_checked(path, weights_sha256, INT8_FORMAT_VERSION,
                                                            INT8_ARRAY_NAMES, INT8_DTYPES)
    width = TILE_CHANNELS["int8"]
    if metadata.get("block") != str(width) or arrays["tiles"].shape[0] * width != arrays["pad3"].shape[0]:
        raise CorruptTablesError(f"tiles of {metadata.get('block')!r} channels, not {width}")
    return TiledTables(cache_line_aligned(arrays["tiles"]), arrays["pad3"], arrays["pad4"], arrays["classifier_weight"],
                       arrays["classifier_bias"], elu_alpha, max_length, "int8", scale=arrays["scale"],
                       bias=arrays["bias"])


def load_int8_tiles(weights_path: Path, cache_root: Path | None = None) -> tuple[TiledTables, TablesLoadReport]:
    """The int8 tiles of the checked weights ``weights_path``: from their cache, else quantized from the fp32
    tables (:func:`load_folded_tables`) and cached."""
    started = time.perf_counter()
    digest = verified_sha256(Path(weights_path))
    path = int8_cache_file_for(digest, cache_root)
    tiled, source = read_or_build(
        INT8_CACHE, path, read=lambda cached: read_int8_cache(cached, digest),
        build=lambda: load_folded_tables(weights_path, cache_root)[0].tiled("int8"),
        write=lambda built, target: write_int8_cache(built, digest, target), log=log)
    report = TablesLoadReport(source, str(path), round(time.perf_counter() - started, 3))
    if source == "cache":
        log.info("int8 tables read from %s in %.2f s", path, report.seconds)
    else:
        log.info("int8 tables quantized from the fp32 tables of %s in %.2f s (cached at %s)", weights_path,
                 report.seconds, path)
    return tiled, report


def load_folded_tables(weights_path: Path, cache_root: Path | None = None) -> tuple[FoldedTables, TablesLoadReport]:
    """The folded tables of the checked weights ``weights_path``: from the cache, else built and cached."""
    started = time.perf_counter()
    digest = verified_sha256(Path(weights_path))
    path = cache_file_for(digest, cache_root)
    tables, source = read_or_build(
        TABLES_CACHE, path, read=lambda cached: read_cache(cached, digest),
        build=lambda: FoldedTables.from_model(load_model(Path(weights_path), digest)),
        write=lambda built, target: write_cache(built, digest, target), log=log)
    report = TablesLoadReport(source, str(path), round(time.perf_counter() - started, 3))
    if source == "cache":
        log.info("folded tables read from %s in %.2f s", path, report.seconds)
    else:
        log.info("folded tables built from %s in %.2f s (cached at %s)", weights_path, report.seconds, path)
    return tables, report

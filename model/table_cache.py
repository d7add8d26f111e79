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
from model.weights import load_model, verified_sha256

log = logging.getLogger(__name__)

#: bumped whenever the arrays or their meaning change, so that older files are rebuilt
FORMAT_VERSION = "1"
ARRAY_NAMES = ("table3", "table4", "bias3", "bias4", "pad3", "pad4", "classifier_weight", "classifier_bias")

#: the folded-table cache: ``<cache dir>/folded/folded-<weights sha256>.safetensors``
TABLES_CACHE = CacheKind(folder="folded", suffix=".safetensors", name="folded-table cache",
                         rebuild="building the tables again", contents="folded tables",
                         saving="save their build time per run")


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


def _content_sha256(arrays: dict[str, np.ndarray]) -> str:
    digest = hashlib.sha256()
    for name in ARRAY_NAMES:
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
    check_regular_file(path)  # a FIFO would block the read
    try:
        with safe_open(path, framework="np") as handle:
            metadata = handle.metadata() or {}
            arrays = {name: handle.get_tensor(name) for name in handle.keys()}
    except (SafetensorError, OSError, ValueError) as error:
        raise CorruptTablesError(f"{type(error).__name__}: {error}") from None
    if metadata.get("format") != FORMAT_VERSION:
        raise CorruptTablesError(f"format {metadata.get('format')!r}, not {FORMAT_VERSION!r}")
    if metadata.get("weights_sha256") != weights_sha256:
        raise CorruptTablesError(f"built from weights {metadata.get('weights_sha256')!r}, not {weights_sha256}")
    if sorted(arrays) != sorted(ARRAY_NAMES) or any(array.dtype != np.float32 for array in arrays.values()):
        raise CorruptTablesError(f"arrays {sorted(arrays)}, not the fp32 arrays {sorted(ARRAY_NAMES)}")
    if _content_sha256(arrays) != metadata.get("content_sha256"):
        raise CorruptTablesError("its arrays do not match their recorded checksum")
    try:
        elu_alpha, max_length = float(metadata["elu_alpha"]), int(metadata["max_length"])
    except (KeyError, ValueError) as error:
        raise CorruptTablesError(f"unreadable metadata ({error})") from None
    return FoldedTables([arrays["table3"], arrays["table4"]], [arrays["bias3"], arrays["bias4"]],
                        [arrays["pad3"], arrays["pad4"]], arrays["classifier_weight"], arrays["classifier_bias"],
                        elu_alpha, max_length)


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

"""The CPU kernel's tables: the folded tables cut into tiles, and the calls that run the kernel on them.

:func:`tile_taps` cuts the 7 tap tables (7, vocab, channels) into tiles of :data:`~model.folded_cpu.TILE_CHANNELS`
channels, each word's 7 tap rows side by side, each tile starting on a cache line (:func:`cache_line_aligned`).
:class:`TiledTables` holds them with the all-padding vectors and the classifier, and runs the numba kernel of
:mod:`model.folded_cpu` on a batch of unpadded reviews (packed end to end by :func:`pack_reviews`): maxima,
features or logits. :meth:`model.folded.FoldedTables.tiled` makes them from the fp32 tables; the int8 ones
are also read back from their cache (:mod:`model.table_cache`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from model.folded_cpu import (
    NO_SCALE,
    TAPS,
    TILE_CHANNELS,
    folded_features,
    folded_features_one_thread,
    folded_logits,
    folded_logits_one_thread,
)
from model.numba_intrinsics import CACHE_LINE_BYTES


@dataclass
class TiledTables:
    """The CPU kernel's tables: tiles of ``width`` channels (:data:`TILE_CHANNELS`), each word's 7 tap rows side
    by side.

    ``tiles`` has shape (channels / width, vocab * 7 * width), its first byte
    on a cache line: fp32, for bf16 the values' bit patterns as uint16, for
    int8 the integers. ``pad3``/``pad4``
    (channels,) are the all-padding vectors (fp32, or the int16 sums of the
    padding row's integers). For int8, ``scale`` and ``bias`` (2 * channels,)
    fp32 turn the integer maxima back into pre-activations (``maxima * scale +
    bias``); for fp32 and bf16 they are None (the bias is in tap 0). The
    classifier is as in :class:`model.folded.FoldedTables`.
    """

    tiles: np.ndarray
    pad3: np.ndarray
    pad4: np.ndarray
    classifier_weight: np.ndarray
    classifier_bias: np.ndarray
    elu_alpha: float
    max_length: int
    precision: str
    scale: np.ndarray | None = None
    bias: np.ndarray | None = None
    #: run the kernel on the calling thread alone (:func:`folded_features_one_thread`), else on numba's threads
    one_thread: bool = False

    @property
    def width(self) -> int:
        """Channels per tile."""
        return self.pad3.shape[0] // self.tiles.shape[0]

    def maxima(self, token_ids: Sequence[np.ndarray]) -> np.ndarray:
        """The kernel's running maxima (B, 2 * channels): fp32, or int16 for int8 tables."""
        flat, offsets = pack_reviews(token_ids)
        maxima = np.empty((len(token_ids), 2 * self.pad3.shape[0]), dtype=self.pad3.dtype)
        kernel = folded_features_one_thread if self.one_thread else folded_features
        kernel(flat, offsets, self.tiles, self.pad3, self.pad4, self.max_length, maxima)
        return maxima

    def features(self, token_ids: Sequence[np.ndarray]) -> np.ndarray:
        """Branch maxima before ELU, fp32 (B, 2 * channels), by the fused CPU kernel (int8: scaled back once)."""
        maxima = self.maxima(token_ids)
        if self.scale is None:
            return maxima
        return dequantize(maxima, self.scale, self.bias)

    def logits(self, token_ids: Sequence[np.ndarray]) -> np.ndarray:
        """fp32 logits (B, 2) of unpadded reviews, as the reference computes them: the kernel's maxima, then
        (int8: scaled back,) ELU and the classifier, in one compiled call (:func:`folded_logits`)."""
        flat, offsets = pack_reviews(token_ids)
        logits = np.empty((len(token_ids), 2), dtype=np.float32)
        scale, bias = (self.scale, self.bias) if self.scale is not None else (NO_SCALE, NO_SCALE)
        compute = folded_logits_one_thread if self.one_thread else folded_logits
        compute(flat, offsets, self.tiles, self.pad3, self.pad4, self.max_length, scale, bias, self.elu_alpha,
                self.classifier_weight, self.classifier_bias, logits)
        return logits


def tile_taps(taps: np.ndarray, precision: str) -> np.ndarray:
    """Tap tables (7, vocab, channels) as the kernel's tiles of ``precision``'s width (:data:`TILE_CHANNELS`):
    (channels / width, vocab * 7 * width), same dtype, each tile starting on a cache line."""
    _, vocab, channels = taps.shape
    width = TILE_CHANNELS[precision]
    if channels % width:
        raise ValueError(f"the CPU kernel's {precision} tiles need a multiple of {width} channels, not {channels}")
    tiles = taps.reshape(TAPS, vocab, channels // width, width).transpose(2, 1, 0, 3)
    return cache_line_aligned(tiles.reshape(channels // width, vocab * TAPS * width))


def cache_line_aligned(array: np.ndarray) -> np.ndarray:
    """A C-contiguous copy of ``array`` whose first byte starts a cache line (so does every tile and word row:
    their sizes are multiples of 64 bytes). numpy aligns large arrays to 16 bytes only, and a word's rows that
    straddle one more cache line cost the kernel one more line to read per row."""
    buffer = np.empty(array.nbytes + CACHE_LINE_BYTES, dtype=np.uint8)
    skip = -buffer.ctypes.data % CACHE_LINE_BYTES
    aligned = buffer[skip:skip + array.nbytes].view(array.dtype).reshape(array.shape)
    aligned[...] = array
    return aligned


def dequantize(maxima: np.ndarray, scale: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """Integer maxima (B, 2 * channels) back to fp32 pre-activations: ``maxima * scale + bias``, in fp32."""
    return maxima.astype(np.float32) * scale + bias


def pack_reviews(token_ids: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Reviews as one int32 array (total_ids,) and their offsets (B + 1,) int64. A single review (SingleStream)
    is its own int32 array: no copy on every query's path. A read-only
    review (a Ray actor's, decoded from its message's bytes) is copied: numba compiles read-only arrays as another
    type, so the kernel compiled at load time would be compiled again, for seconds, on the run's first query."""
    if len(token_ids) == 1:
        ids = token_ids[0]
        return ids.astype(np.int32, copy=not ids.flags.writeable), np.array((0, len(ids)), dtype=np.int64)
    lengths = np.fromiter((len(ids) for ids in token_ids), dtype=np.int64, count=len(token_ids))
    offsets = np.zeros(len(token_ids) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    flat = np.concatenate(token_ids).astype(np.int32, copy=False) if len(token_ids) else np.zeros(0, np.int32)
    return flat, offsets


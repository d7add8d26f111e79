"""Seq2CNN with the embedding folded into the convolutions: exact, and linear in the review's length.

Two exact rewrites of the reference computation (padding to 1000 ids, two
1024x1024 convolutions over all of it, about 14.7 GFLOP per review):

1. Padding is constant. A window that lies wholly in the padding sees
   embedding row 0 repeated, so it yields one fixed vector per branch. The max
   over time of the padded sequence is therefore the max over the windows that
   touch real tokens (including those that straddle the end of the review) and,
   when the padded sequence has an all-padding window at all (1000 - n >= k),
   that one constant vector.
2. The embedding folds into the convolutions. The pre-activation of the window
   at t is ``bias + sum_j W_j . E[x_{t+j}]``, a sum of rows of the per-tap tables
   ``T_j = E W_j^T`` (5200 x 1024 each; 3 + 4 = 7 tables, 149 MB in fp32),
   computed once (in fp64, stored fp32) when the weights load. A window then
   costs k row reads and adds instead of a matrix product. ELU is increasing,
   so it is applied after the max.

On the CPU, :func:`folded_features` is the fused kernel (numba, GIL released).
The tables are cut into tiles of 32 or 64 channels (:class:`TiledTables`); in a
tile each word's 7 tap rows lie side by side, so a token costs one contiguous
read, and a tile (4.7 MB) stays in cache while every review of a batch streams
through it: the tiles run in parallel, the reviews one after the other. The
kernel keeps a running max per channel in packed (SIMD) instructions, asks for
the rows of the words 16 tokens ahead before it needs them, and never
materialises the (n x 1024) pre-activations. The bias is folded into tap 0,
added first as in the reference's order, so the results are bit for bit those
of the untiled kernel. On other devices :meth:`FoldedTables.to_torch` gathers
the rows with torch over a length-trimmed batch instead.

Precision: ``fp32`` (the default, exact: the reference's labels on all 25,000
test reviews); ``bf16``, where the tiles hold each table value rounded to
bfloat16 (half the bytes to read; sums, maxima and the classifier stay fp32);
or ``int8`` (:mod:`model.quantization`), where they hold integers with one
scale per channel and branch, so that window sums and maxima are int16 (a
quarter of the bytes, twice the lanes per instruction) and each review's
2,048 maxima are scaled back, and the biases added, once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numba
import numba.np.numpy_support
import numpy as np
import torch
from numba.extending import overload

from model import numba_intrinsics
from model.batching import padded_batch
from model.network import Seq2CNN
from model.numba_cache import use_cache_keyed_by
from model.numba_intrinsics import CACHE_LINE_BYTES, add_values, lowest_value, prefetch, table_value, values_per_cache_line
from model.precision import check_precision
from model.quantization import padding_sum, quantize_branches
from qsl.vocabulary import MAX_LENGTH

#: numba's cache of the kernels below, in a folder keyed by the files they compile from (numba alone checks only
#: this file's time stamp, not the intrinsics it inlines): see :mod:`model.numba_cache`
KERNEL_CACHE = use_cache_keyed_by([Path(__file__), Path(numba_intrinsics.__file__)])

#: taps of the two branches together: kernel 3 (taps 0-2), then kernel 4 (taps 3-6)
TAPS = 7


@dataclass
class FoldedTables:
    """Tap tables, biases and all-padding vectors of one Seq2CNN, in fp32.

    ``tables[b]`` has shape (k_b, vocab, channels) for branch b (kernel sizes
    3 and 4); ``biases[b]`` and ``padding_vectors[b]`` (bias plus the sum of
    the tables' row 0) have shape (channels,). ``classifier_weight`` is
    (2, 2 * channels) and ``classifier_bias`` (2,).
    """

    tables: list[np.ndarray]
    biases: list[np.ndarray]
    padding_vectors: list[np.ndarray]
    classifier_weight: np.ndarray
    classifier_bias: np.ndarray
    elu_alpha: float
    max_length: int = MAX_LENGTH

    @classmethod
    @torch.no_grad()
    def from_model(cls, model: Seq2CNN) -> "FoldedTables":
        if tuple(model.config.kernel_sizes) != (3, 4):
            raise ValueError(f"the folded kernel is written for kernel sizes (3, 4), not {model.config.kernel_sizes}")
        embedding = model.embedding.weight.double().cpu()
        tables, biases, padding_vectors = [], [], []
        for conv in model.branches():
            weight = conv.weight.double().cpu()  # (out, in, k)
            taps = torch.stack([embedding @ weight[:, :, j].T for j in range(weight.shape[2])])  # (k, vocab, out)
            bias = conv.bias.double().cpu()
            tables.append(np.ascontiguousarray(taps.float().numpy()))
            biases.append(bias.float().numpy())
            padding_vectors.append((bias + taps[:, 0, :].sum(0)).float().numpy())
        return cls(
            tables, biases, padding_vectors,
            model.classifier.weight.detach().float().cpu().numpy().copy(),
            model.classifier.bias.detach().float().cpu().numpy().copy(),
            model.config.elu_alpha, model.config.max_length,
        )

    def tiled(self, precision: str = "fp32") -> "TiledTables":
        """The tables cut into tiles for the CPU kernel, in ``precision`` (see :data:`model.precision.PRECISIONS`)."""
        check_precision("folded", "cpu", precision)  # PrecisionError (a ValueError) unless one of PRECISIONS
        (table3, table4), (bias3, bias4) = self.tables, self.biases
        if precision == "int8":
            quantized, scales = quantize_branches(self.tables)
            return TiledTables(tile_taps(np.concatenate(quantized, axis=0), precision), padding_sum(quantized[0]),
                               padding_sum(quantized[1]), self.classifier_weight, self.classifier_bias,
                               self.elu_alpha, self.max_length, precision, scale=np.concatenate(scales),
                               bias=np.concatenate(self.biases).astype(np.float32))
        taps = np.concatenate([table3, table4], axis=0)  # (7, vocab, channels)
        taps[0] = bias3 + taps[0]  # fp32, as the kernel used to add them: bias first
        taps[3] = bias4 + taps[3]
        if precision == "bf16":  # rounded value by value, then tiled once
            taps = torch.from_numpy(taps).to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
        tiles = tile_taps(taps, precision)
        del taps
        return TiledTables(tiles, *self.padding_vectors, self.classifier_weight, self.classifier_bias,
                           self.elu_alpha, self.max_length, precision)

    def to_torch(self, device: torch.device) -> "TorchFoldedTables":
        return TorchFoldedTables(
            [torch.from_numpy(table).to(device) for table in self.tables],
            [torch.from_numpy(bias).to(device) for bias in self.biases],
            torch.from_numpy(self.classifier_weight).to(device),
            torch.from_numpy(self.classifier_bias).to(device),
            self.elu_alpha, self.max_length,
        )


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
    classifier is as in :class:`FoldedTables`.
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


@dataclass
class TorchFoldedTables:
    """The folded computation in torch, for GPUs: gathers over a length-trimmed batch.

    The batch is padded to ``min(longest + 4, 1000)`` (see
    :mod:`model.batching`), so the all-padding windows appear exactly where the
    reference has them; the (B, windows, channels) sums are materialised.
    """

    tables: list[torch.Tensor]
    biases: list[torch.Tensor]
    classifier_weight: torch.Tensor
    classifier_bias: torch.Tensor
    elu_alpha: float
    max_length: int

    @torch.inference_mode()
    def logits(self, token_ids: Sequence[np.ndarray]) -> np.ndarray:
        ids = padded_batch(token_ids, self.max_length).to(self.tables[0].device)
        width = ids.shape[1]
        maxima = []
        for table, bias in zip(self.tables, self.biases):
            windows = width - table.shape[0] + 1
            summed = bias + sum(table[j][ids[:, j : j + windows]] for j in range(table.shape[0]))
            maxima.append(summed.amax(dim=1))
        features = torch.nn.functional.elu(torch.cat(maxima, dim=1), alpha=self.elu_alpha)
        return (features @ self.classifier_weight.T + self.classifier_bias).float().cpu().numpy()


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
    their sizes are multiples of 64 bytes). numpy aligns large arrays to 16 bytes only; a word's rows that
    straddle one more cache line cost up to a third of the kernel's speed (measured)."""
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
    is its own int32 array: no copy, a third of the time of the general case on every query's path. A read-only
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


#: channels per tile, by precision: a tile holds, for every word, its 7 tap rows of this many channels, small
#: enough to stay in cache while a batch streams through it (fp32: 5,200 x 7 x 32 x 4 B = 4.7 MB; bf16 and
#: int8: 64 channels, 4.7 and 2.3 MB). Measured here (Offline batches, aligned tiles): fp32 ran 9.0-9.8k
#: reviews/s at 32 and 6.8-7.7k at 64; int8 15.2k at 32 and 22.7k at 64; bf16 9.5k at 32 and 11.0k at 64
TILE_CHANNELS = {"fp32": 32, "bf16": 64, "int8": 64}
#: the precision whose tiles hold values of each numpy type
TILE_PRECISIONS = {np.dtype(np.float32): "fp32", np.dtype(np.uint16): "bf16", np.dtype(np.int8): "int8"}


def tile_width(tiles):
    """Channels per tile of ``tiles`` (:data:`TILE_CHANNELS` of its precision), a constant the compiler sees
    (compiled code only)."""
    raise NotImplementedError("tile_width is compiled by numba; call it from an njit function")


@overload(tile_width, inline="always")
def _tile_width(tiles):
    precision = TILE_PRECISIONS.get(np.dtype(numba.np.numpy_support.as_dtype(tiles.dtype)))
    if precision is None:
        return None
    width = TILE_CHANNELS[precision]
    return lambda tiles: width


#: the kernel asks for the rows of the word this many tokens ahead of the window it computes
PREFETCH_AHEAD = 16


@numba.njit(inline="always")
def _word(ids, position, n):
    """The id at ``position``; padding (id 0) past the review's end."""
    return ids[position] if position < n else 0


@numba.njit(inline="always")
def _rows(tile, word, width):
    """The 7 tap rows of ``word`` in a tile of ``width`` channels: a contiguous (7 * width,) view, tap j at
    ``j * width``."""
    start = word * TAPS * width
    return tile[start:start + TAPS * width]


@numba.njit(inline="always")
def _window_sums(r0, r1, r2, r3, k, width):
    """Channel k's pre-activations of the window whose words have rows r0..r3: (kernel 3, kernel 4).

    For fp32 and bf16, tap 0 of each branch already holds the bias, so a
    window's pre-activation is the sum of its taps, added in the reference's
    order (bias, tap 0, 1, ...); for int8 the sums are exact int16.
    """
    s3 = add_values(add_values(table_value(r0, k), table_value(r1, width + k)), table_value(r2, 2 * width + k))
    s4 = add_values(add_values(add_values(table_value(r0, 3 * width + k), table_value(r1, 4 * width + k)),
                               table_value(r2, 5 * width + k)), table_value(r3, 6 * width + k))
    return s3, s4


@numba.njit(inline="always")
def _two_windows(tile, ids, t, n, maxima, width):
    """Windows t and t + 1 of both branches into the running maxima ``maxima`` (2, width), in place.

    Two windows per pass keep each maximum in a register between them: the
    store is unconditional, so the compiler emits packed ``max`` instructions.
    """
    r0 = _rows(tile, _word(ids, t, n), width)
    r1 = _rows(tile, _word(ids, t + 1, n), width)
    r2 = _rows(tile, _word(ids, t + 2, n), width)
    r3 = _rows(tile, _word(ids, t + 3, n), width)
    r4 = _rows(tile, _word(ids, t + 4, n), width)
    for k in range(width):
        s3, s4 = _window_sums(r0, r1, r2, r3, k, width)
        u3, u4 = _window_sums(r1, r2, r3, r4, k, width)
        m3 = maxima[0, k]
        m3 = m3 if m3 > s3 else s3
        maxima[0, k] = m3 if m3 > u3 else u3
        m4 = maxima[1, k]
        m4 = m4 if m4 > s4 else s4
        maxima[1, k] = m4 if m4 > u4 else u4


@numba.njit(inline="always")
def _one_window(tile, ids, t, n, maxima, kernel4, width):
    """Window t of the kernel-3 branch, and of the kernel-4 branch if ``kernel4``, into ``maxima``."""
    r0 = _rows(tile, _word(ids, t, n), width)
    r1 = _rows(tile, _word(ids, t + 1, n), width)
    r2 = _rows(tile, _word(ids, t + 2, n), width)
    r3 = _rows(tile, _word(ids, t + 3, n), width)
    for k in range(width):
        s3, s4 = _window_sums(r0, r1, r2, r3, k, width)
        if s3 > maxima[0, k]:
            maxima[0, k] = s3
        if kernel4 and s4 > maxima[1, k]:
            maxima[1, k] = s4


@numba.njit(inline="always")
def _prefetch_words(tile, ids, first, last, width):
    """Ask for every cache line of the rows of the words at positions ``first..last`` (those that exist)."""
    step = values_per_cache_line(tile)
    for position in range(first, min(last + 1, ids.shape[0])):
        start = ids[position] * TAPS * width
        for offset in range(0, TAPS * width, step):
            prefetch(tile, start + offset)


@numba.njit(inline="always")
def _tile_pass(flat, offsets, tiles, pad3, pad4, max_length, features, block):
    """Tile ``block``'s channels of every review's maxima into ``features``: the reviews one after the other
    through that tile (which stays in cache), a running max per channel over the windows, two at a time."""
    width = tile_width(tiles)
    channels = tiles.shape[0] * width
    lo = block * width
    tile = tiles[block]
    maxima = np.empty((2, width), features.dtype)
    for review in range(offsets.shape[0] - 1):
        ids = flat[offsets[review]:offsets[review + 1]]
        n = min(ids.shape[0], max_length)
        last3 = min(n - 1, max_length - 3)  # the last window of each branch that touches a real token
        last4 = min(n - 1, max_length - 4)
        maxima[:] = lowest_value(features)
        _prefetch_words(tile, ids, 0, PREFETCH_AHEAD - 1, width)
        t = 0
        while t + 1 <= last4:
            _prefetch_words(tile, ids, t + PREFETCH_AHEAD, t + PREFETCH_AHEAD + 1, width)
            _two_windows(tile, ids, t, n, maxima, width)
            t += 2
        while t <= last3:
            _one_window(tile, ids, t, n, maxima, t <= last4, width)
            t += 1
        padded3 = max_length - n >= 3  # the padded review has a window wholly in the padding
        padded4 = max_length - n >= 4
        for k in range(width):
            m3, m4 = maxima[0, k], maxima[1, k]
            if padded3 and pad3[lo + k] > m3:
                m3 = pad3[lo + k]
            if padded4 and pad4[lo + k] > m4:
                m4 = pad4[lo + k]
            features[review, lo + k] = m3
            features[review, channels + lo + k] = m4


@numba.njit(parallel=True, nogil=True, cache=True)
def folded_features(flat, offsets, tiles, pad3, pad4, max_length, features):
    """Branch maxima (B, 2 * channels) of reviews ``flat[offsets[i]:offsets[i+1]]`` into ``features``.

    ``tiles`` (channels / width, vocab * 7 * width), fp32, bf16 bits (uint16)
    or int8: for each block of ``width`` channels (:func:`tile_width`, a
    constant of the tiles' type), every word's 7 tap rows (kernel-3 taps 0-2,
    kernel-4 taps 0-3; for fp32 and bf16 the biases added to tap 0) side by
    side. ``pad3``/``pad4`` (channels,) are the all-padding vectors; they and
    ``features`` are fp32, or int16 for int8 tiles (integer sums and maxima,
    scaled back by the caller). The tiles run in parallel on numba's threads
    (:func:`_tile_pass`).
    """
    for block in numba.prange(tiles.shape[0]):
        _tile_pass(flat, offsets, tiles, pad3, pad4, max_length, features, block)


@numba.njit(nogil=True, cache=True)
def folded_features_one_thread(flat, offsets, tiles, pad3, pad4, max_length, features):
    """:func:`folded_features` on the calling thread alone, the tiles one after the other, without numba's
    thread pool: for a backend given one thread (``--threads 1``, a Ray actor of one CPU, Offline workers
    that each run their own batch)."""
    for block in range(tiles.shape[0]):
        _tile_pass(flat, offsets, tiles, pad3, pad4, max_length, features, block)


#: ``scale`` and ``bias`` of the epilogue for tables whose maxima are pre-activations already (fp32, bf16)
NO_SCALE = np.zeros(0, dtype=np.float32)
#: batches of at least this many reviews run the epilogue on every thread; smaller ones (SingleStream,
#: MultiStream) on the calling thread, which costs less than handing it out
PARALLEL_EPILOGUE_REVIEWS = 64


@numba.njit(inline="always")
def _review_logits(maxima, scale, bias, alpha, weight, weight_bias, logits, review):
    """Review ``review``'s two logits: each feature (int8: ``maxima * scale + bias`` in fp32), ELU in fp32,
    dotted with the classifier's rows in fp64, plus its bias, rounded to fp32."""
    quantized = scale.shape[0] > 0
    total0, total1 = 0.0, 0.0
    for channel in range(maxima.shape[1]):
        x = np.float32(maxima[review, channel])
        if quantized:
            x = x * scale[channel] + bias[channel]
        if not x > 0:
            x = alpha * np.float32(math.expm1(x))
        total0 += np.float64(x) * weight[0, channel]
        total1 += np.float64(x) * weight[1, channel]
    logits[review, 0] = total0 + weight_bias[0]
    logits[review, 1] = total1 + weight_bias[1]


@numba.njit(inline="always")
def _classify(maxima, scale, bias, elu_alpha, weight, weight_bias, logits):
    """Logits (B, 2) fp32 into ``logits`` from the kernel's maxima (B, 2 * channels), fp32 or int16; ``scale``
    and ``bias`` (2 * channels,) fp32 for int8, empty otherwise; the classifier ``weight`` (2, 2 * channels)
    and ``weight_bias`` (2,). One review after the other on this thread."""
    alpha = np.float32(elu_alpha)
    for review in range(maxima.shape[0]):
        _review_logits(maxima, scale, bias, alpha, weight, weight_bias, logits, review)


@numba.njit(parallel=True, nogil=True, cache=True)
def folded_logits(flat, offsets, tiles, pad3, pad4, max_length, scale, bias, elu_alpha, weight, weight_bias,
                  logits):
    """Logits (B, 2) fp32 of reviews ``flat[offsets[i]:offsets[i+1]]`` into ``logits``, in one call (one
    dispatch from Python, one allocation): the kernel's maxima (:func:`folded_features`, arguments as
    there), then the epilogue (:func:`_review_logits`, ``scale``/``bias`` as there), on the calling thread
    for small batches, on every thread from :data:`PARALLEL_EPILOGUE_REVIEWS` reviews."""
    maxima = np.empty((offsets.shape[0] - 1, 2 * pad3.shape[0]), pad3.dtype)
    for block in numba.prange(tiles.shape[0]):
        _tile_pass(flat, offsets, tiles, pad3, pad4, max_length, maxima, block)
    if maxima.shape[0] < PARALLEL_EPILOGUE_REVIEWS:
        _classify(maxima, scale, bias, elu_alpha, weight, weight_bias, logits)
    else:
        alpha = np.float32(elu_alpha)
        for review in numba.prange(maxima.shape[0]):
            _review_logits(maxima, scale, bias, alpha, weight, weight_bias, logits, review)


@numba.njit(nogil=True, cache=True)
def folded_logits_one_thread(flat, offsets, tiles, pad3, pad4, max_length, scale, bias, elu_alpha, weight,
                             weight_bias, logits):
    """:func:`folded_logits` on the calling thread alone (see :func:`folded_features_one_thread`)."""
    maxima = np.empty((offsets.shape[0] - 1, 2 * pad3.shape[0]), pad3.dtype)
    for block in range(tiles.shape[0]):
        _tile_pass(flat, offsets, tiles, pad3, pad4, max_length, maxima, block)
    _classify(maxima, scale, bias, elu_alpha, weight, weight_bias, logits)

"""The folded CPU kernel, in numba: the branch maxima, and the logits, of a batch of reviews over tiled tables.

The tables come cut into tiles of :data:`TILE_CHANNELS` channels (:mod:`model.folded_tiles` makes them); in a
tile each word's 7 tap rows (:data:`TAPS`) lie side by side, so a token costs one contiguous read, and a tile
stays in cache while every review of a batch streams through it: the tiles run in parallel on numba's threads
(:func:`folded_features`, :func:`folded_logits`; GIL released), or one after the other on the calling thread
(the ``_one_thread`` variants), the reviews one after the other. For each review the kernel keeps a running
max per channel in packed (SIMD) instructions, asks for the rows of the words :data:`PREFETCH_AHEAD` tokens
ahead before it needs them, and never materialises the (n, channels) pre-activations; the all-padding
vectors stand in for the windows wholly in the padding. For fp32 and bf16 the bias is in tap 0, added first
as in the reference's order, so the results are bit for bit those of the untiled computation; for int8 the
sums and maxima are int16 (:mod:`model.quantization`). :func:`folded_logits` adds the epilogue (int8: scale
back,) ELU and the classifier in the same compiled call.

Everything here is numba code, compiled with the intrinsics of :mod:`model.numba_intrinsics`; the machine code
is cached in a folder keyed by both files (:data:`KERNEL_SOURCES`, :mod:`model.numba_cache`): code or
constants the kernel compiles belong in one of them, or in a file added to :data:`KERNEL_SOURCES`.
"""

from __future__ import annotations

import math
from pathlib import Path

import numba
import numba.np.numpy_support
import numpy as np
from numba.extending import overload

from model import numba_intrinsics
from model.numba_cache import use_cache_keyed_by
from model.numba_intrinsics import add_values, lowest_value, prefetch, table_value, values_per_cache_line

#: the files the kernels compile from: this one and the intrinsics it inlines
KERNEL_SOURCES = (Path(__file__), Path(numba_intrinsics.__file__))
#: numba's cache of the kernels below, in a folder keyed by :data:`KERNEL_SOURCES` (numba alone checks only
#: this file's time stamp, not the intrinsics it inlines): see :mod:`model.numba_cache`
KERNEL_CACHE = use_cache_keyed_by(KERNEL_SOURCES)

#: taps of the two branches together: kernel 3 (taps 0-2), then kernel 4 (taps 3-6)
TAPS = 7

#: channels per tile, by precision: a tile holds, for every word, its 7 tap rows of this many channels, small
#: enough to stay in cache while a batch streams through it (fp32: 5,200 x 7 x 32 x 4 B = 4.7 MB; bf16 and
#: int8: 64 channels, 4.7 and 2.3 MB)
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

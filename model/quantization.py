"""int8 folded tables: one scale per output channel and branch, integer window sums and maxima, one rescale.

The scheme (``--precision int8``), derived from the weights alone (no review is
looked at, as MLPerf's rules ask of a quantization without calibration data):

- For branch b (kernel 3 or 4) and output channel c, the scale is
  ``s_b[c] = max |T_bj[w, c]| / 127`` over every tap j and word w of the
  folded tables (bias not included), computed in fp64 and stored fp32; a
  channel whose tables are all zero gets scale 1.
- Each table value becomes ``q = round(T / s_b[c])`` (round half to even), an
  int8 in [-127, 127]. One scale for every tap and word of a channel keeps a
  window's pre-activation an integer sum ``sum_j q_bj[x_{t+j}, c]``, at most
  4 * 127 = 508 in magnitude, exact in int16; so is the max over time, and the
  all-padding window's sum of the padding row's integers.
- The bias is not quantized: ``max_t (s * Q_t + bias) = s * max_t Q_t + bias``
  (s > 0), so each review's 2,048 integer maxima are scaled and the fp32
  biases added once, after the max; ELU and the classifier stay fp32.

On the 25,000 IMDB test reviews, with the shipped weights, labels agree with
fp32 on 99.9 % and more (the README gives the measured figures).
:meth:`model.folded.FoldedTables.tiled` cuts the integers into the kernel's
tiles; this module is numpy alone.
"""

from __future__ import annotations

import numpy as np

#: the largest magnitude of a quantized table value (symmetric: -127..127, -128 unused)
INT8_LIMIT = 127
#: the scheme in one line, for the submission's documents and ``measurements.json``
INT8_SCHEME = ("int8 folded tables: one fp32 scale per output channel and branch (max |table value| over every "
               "tap and word / 127, from the weights alone), values rounded to nearest even; window sums and the "
               "max over time in int16 (exact); each review's maxima scaled back and the fp32 biases added once, "
               "after the max; ELU and the classifier in fp32")


def channel_scales(table: np.ndarray) -> np.ndarray:
    """fp32 scales (channels,) of one branch's tap tables (taps, vocab, channels): max |value| / 127 per channel."""
    largest = np.abs(table).max(axis=(0, 1)).astype(np.float64)
    return np.where(largest > 0, largest / INT8_LIMIT, 1.0).astype(np.float32)


def quantize_branch(table: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """One branch's tap tables (taps, vocab, channels) as int8: ``round(table / scales)``, clipped to +-127."""
    quantized = np.rint(table.astype(np.float64) / scales.astype(np.float64))
    return np.clip(quantized, -INT8_LIMIT, INT8_LIMIT).astype(np.int8)


def quantize_branches(tables: list[np.ndarray]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Each branch's tap tables (taps, vocab, channels) fp32 as int8, and their fp32 scales (channels,)."""
    scales = [channel_scales(table) for table in tables]
    return [quantize_branch(table, scale) for table, scale in zip(tables, scales)], scales


def padding_sum(quantized: np.ndarray) -> np.ndarray:
    """The all-padding window's integer sum (channels,) int16 of one branch's int8 tables: row 0 of every tap."""
    return quantized[:, 0, :].astype(np.int16).sum(axis=0, dtype=np.int16)

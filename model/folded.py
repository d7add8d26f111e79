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

On the CPU, :func:`folded_features` is the fused kernel (numba, parallel over
the reviews of a batch, GIL released): it keeps a running max per branch and
never materialises the (n x 1024) pre-activations. On other devices
:meth:`FoldedTables.logits_torch` gathers the rows with torch over a
length-trimmed batch instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numba
import numpy as np
import torch

from model.batching import padded_batch
from model.network import Seq2CNN
from qsl.vocabulary import MAX_LENGTH


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

    def features(self, token_ids: Sequence[np.ndarray]) -> np.ndarray:
        """Branch maxima before ELU, fp32 (B, 2 * channels), by the fused CPU kernel."""
        flat, offsets = pack_reviews(token_ids)
        features = np.empty((len(token_ids), sum(len(bias) for bias in self.biases)), dtype=np.float32)
        (table3, table4), (bias3, bias4), (pad3, pad4) = self.tables, self.biases, self.padding_vectors
        folded_features(flat, offsets, table3, bias3, pad3, table4, bias4, pad4, self.max_length, features)
        return features

    def logits(self, token_ids: Sequence[np.ndarray]) -> np.ndarray:
        """fp32 logits (B, 2) of unpadded reviews, as the reference computes them."""
        features = self.features(token_ids)
        activated = np.where(features > 0, features, self.elu_alpha * np.expm1(np.minimum(features, 0)))
        return activated @ self.classifier_weight.T + self.classifier_bias

    def to_torch(self, device: torch.device) -> "TorchFoldedTables":
        return TorchFoldedTables(
            [torch.from_numpy(table).to(device) for table in self.tables],
            [torch.from_numpy(bias).to(device) for bias in self.biases],
            torch.from_numpy(self.classifier_weight).to(device),
            torch.from_numpy(self.classifier_bias).to(device),
            self.elu_alpha, self.max_length,
        )


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


def pack_reviews(token_ids: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Reviews as one int32 array (total_ids,) and their offsets (B + 1,) int64."""
    lengths = np.fromiter((len(ids) for ids in token_ids), dtype=np.int64, count=len(token_ids))
    offsets = np.zeros(len(token_ids) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    flat = np.concatenate(token_ids).astype(np.int32, copy=False) if len(token_ids) else np.zeros(0, np.int32)
    return flat, offsets


@numba.njit(inline="always")
def _row(table, tap, ids, position, n):
    """Tap ``tap``'s table row for the id at ``position``; padding (id 0) past the review's end."""
    return table[tap, ids[position] if position < n else 0]


#: Each review's channels are split into this many parts, so that even one
#: review keeps two cores busy.
CHANNEL_PARTS = 2


@numba.njit(parallel=True, nogil=True, cache=True)
def folded_features(flat, offsets, table3, bias3, pad3, table4, bias4, pad4, max_length, features):
    """Branch maxima (B, 2 * channels) of reviews ``flat[offsets[i]:offsets[i+1]]``.

    ``table3`` (3, vocab, channels) and ``table4`` (4, vocab, channels) are the
    fp32 tap tables of the kernel-3 and kernel-4 branches; ``pad3``/``pad4``
    their all-padding vectors. Work items are (review, part of the channels),
    run in parallel; each keeps a running max in its slice of ``features`` and
    reads the table rows it needs once per window, in one pass.
    """
    channels = bias3.shape[0]
    part_size = channels // CHANNEL_PARTS
    for item in numba.prange((offsets.shape[0] - 1) * CHANNEL_PARTS):
        review, part = item // CHANNEL_PARTS, item % CHANNEL_PARTS
        lo, hi = part * part_size, (part + 1) * part_size
        ids = flat[offsets[review]:offsets[review + 1]]
        n = min(ids.shape[0], max_length)
        max3 = features[review, lo:hi]
        max4 = features[review, channels + lo:channels + hi]
        part_bias3, part_bias4 = bias3[lo:hi], bias4[lo:hi]
        max3[:] = -np.inf
        max4[:] = -np.inf
        for t in range(min(n - 1, max_length - 3) + 1):
            a = _row(table3, 0, ids, t, n)[lo:hi]
            b = _row(table3, 1, ids, t + 1, n)[lo:hi]
            c = _row(table3, 2, ids, t + 2, n)[lo:hi]
            for k in range(part_size):
                max3[k] = max(max3[k], part_bias3[k] + a[k] + b[k] + c[k])
        for t in range(min(n - 1, max_length - 4) + 1):
            a = _row(table4, 0, ids, t, n)[lo:hi]
            b = _row(table4, 1, ids, t + 1, n)[lo:hi]
            c = _row(table4, 2, ids, t + 2, n)[lo:hi]
            d = _row(table4, 3, ids, t + 3, n)[lo:hi]
            for k in range(part_size):
                max4[k] = max(max4[k], part_bias4[k] + a[k] + b[k] + c[k] + d[k])
        if max_length - n >= 3:
            max3[:] = np.maximum(max3, pad3[lo:hi])
        if max_length - n >= 4:
            max4[:] = np.maximum(max4, pad4[lo:hi])

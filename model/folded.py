"""The folded tables of a Seq2CNN (T_j = E W_j^T and the all-padding vectors), and the computation in torch.

With the embedding folded into the convolutions, Seq2CNN is exact and linear in the review's length. Two
exact rewrites of the reference computation (padding to 1000 ids, two 1024x1024 convolutions over all of
it, about 14.7 GFLOP per review):

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

This module builds the tables (:class:`FoldedTables`, fp32, from a model) and hands them to each backend in
its form: on the CPU cut into tiles (:meth:`FoldedTables.tiled`, :mod:`model.folded_tiles`) for the fused
numba kernel (:mod:`model.folded_cpu`); on other devices as torch tensors (:meth:`FoldedTables.to_torch`),
whose rows :class:`TorchFoldedTables` gathers over a length-trimmed batch; on a CUDA GPU the Triton kernel
(:mod:`model.triton_folded`) takes them as they are.

Precision: ``fp32`` (the default, exact: the reference's labels on all 25,000
test reviews); ``bf16``, where the tiles hold each table value rounded to
bfloat16 (half the bytes to read; sums, maxima and the classifier stay fp32);
or ``int8`` (:mod:`model.quantization`), where they hold integers with one
scale per channel and branch, so that window sums and maxima are int16 (a
quarter of the bytes, twice the lanes per instruction) and each review's
2,048 maxima are scaled back, and the biases added, once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from model.batching import padded_batch
from model.folded_tiles import TiledTables, tile_taps
from model.network import Seq2CNN
from model.precision import check_precision
from model.quantization import padding_sum, quantize_branches
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

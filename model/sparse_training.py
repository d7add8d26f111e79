"""Seq2CNN's training forward, computed through per-batch tables and a gradient that touches only the winning windows.

A branch's feature for channel ``c`` is ``max_t conv(embedded)[c, t]`` (ELU is increasing, so it commutes with the
max). The convolution over embedded ids is a sum of table rows::

    conv[b, t, c] = bias[c] + sum_k tables[k, ids[b, t + k], c],   tables[k] = embedding @ weight[:, :, k].T

so the forward needs the tables only for the ids present in the batch (``U`` of them, at most 5,200), which costs
``U * 1024 * 1024 * K`` multiply-adds per branch instead of one per window of every review.

The max passes its gradient to one window per (review, channel): ``B * 1024`` of them per branch, against the
``B * L * 1024`` that autograd's dense convolution backward computes (mostly zeros). With ``g[b, c]`` the gradient
of a branch's max and ``w[b, c] = argmax_t``, the parameter gradients are sparse-dense products::

    d weight[c, :, k] = sum_b g[b, c] * embedding[ids[b, w[b, c] + k]]
    d embedding[v]   += sum over (b, c, k) with ids[b, w[b, c] + k] = v of g[b, c] * weight[c, :, k]
    d bias[c]        = sum_b g[b, c]

These are the exact gradients of the reference module (same function, same argmax; only the order of the
floating-point sums differs). A training step costs about a seventh of autograd's on a CPU.
"""

from __future__ import annotations

import torch
from torch import nn

from model.network import Seq2CNN


class WindowMax(torch.autograd.Function):
    """Max over time of one Conv1d branch applied to embedded ids, before the activation: (B, C) float32."""

    @staticmethod
    def forward(ctx, ids: torch.Tensor, embedding: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor
                ) -> torch.Tensor:
        """ids (B, L) int64 with L >= K; embedding (V, E); weight (C, E, K); bias (C,)."""
        kernel = weight.shape[2]
        present, positions = torch.unique(ids, return_inverse=True)  # (U,), (B, L) indices into present
        # tables (K, U, C): what each present id adds to each channel at each tap of the window
        tables = torch.matmul(embedding[present], weight.permute(2, 1, 0))
        windows = ids.shape[1] - kernel + 1
        conv = tables[0][positions[:, :windows]]  # (B, T, C)
        for tap in range(1, kernel):
            conv += tables[tap][positions[:, tap : tap + windows]]
        maxima, winners = conv.max(dim=1)  # (B, C) each
        ctx.save_for_backward(ids, winners, embedding, weight)
        return maxima + bias

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        ids, winners, embedding, weight = ctx.saved_tensors
        batch, channels = grad.shape
        kernel = weight.shape[2]
        # the id under tap k of each winning window: (K, B, C)
        tapped = torch.stack([torch.gather(ids, 1, winners + tap) for tap in range(kernel)])
        # scatter (V, K*C): entry (tapped[k, b, c], k*C + c) holds grad[b, c]; both gradients are products with it
        columns = torch.arange(kernel).view(kernel, 1, 1) * channels + torch.arange(channels)
        columns = columns.expand(kernel, batch, channels)
        scatter = torch.sparse_coo_tensor(
            torch.stack([tapped.reshape(-1), columns.reshape(-1)]),
            grad.expand(kernel, batch, channels).reshape(-1),
            (embedding.shape[0], kernel * channels),
            check_invariants=False,  # indices are in range by construction
        ).coalesce()
        grad_embedding = grad_weight = None
        if ctx.needs_input_grad[1]:
            # d embedding = scatter @ weight taps stacked (K*C, E)
            grad_embedding = torch.sparse.mm(scatter, weight.permute(2, 0, 1).reshape(kernel * channels, -1))
        if ctx.needs_input_grad[2]:
            # d weight stacked (K*C, E) = scatter.T @ embedding, back to (C, E, K)
            stacked = torch.sparse.mm(scatter.t(), embedding)
            grad_weight = stacked.view(kernel, channels, -1).permute(1, 2, 0)
        return None, grad_embedding, grad_weight, grad.sum(0)


def table_logits(model: Seq2CNN, ids: torch.Tensor) -> torch.Tensor:
    """Logits (B, 2) of ``model`` for ids (B, L), as ``model(ids)`` computes them (dropout in training mode), through
    the tables and the sparse gradient above."""
    embedding = model.embedding.weight
    features = [
        nn.functional.elu(WindowMax.apply(ids, embedding, conv.weight, conv.bias), alpha=model.config.elu_alpha)
        for conv in model.branches()
    ]
    return model.classifier(model.dropout(torch.cat(features, dim=1)))

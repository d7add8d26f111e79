"""Batches of variable-length reviews that compute exactly the reference function.

The reference pads every review to 1000 ids. Padding a batch only to
``min(longest + 4, 1000)`` gives the same logits: every review still has at
least one window wholly inside the padding for both kernel sizes (3 and 4),
and all such windows yield the same vector, so the max over time is unchanged.
Reviews longer than 1000 ids are truncated, as in the reference.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from qsl.vocabulary import MAX_LENGTH, PAD_ID

#: padding kept after the longest review: one window wholly in padding for kernel 4
PAD_MARGIN = 4


def pad_to_width(token_ids: Sequence[np.ndarray], width: int) -> torch.Tensor:
    """Ids (B, width) int64: each review truncated to ``width`` ids, right-padded with 0."""
    batch = np.full((len(token_ids), width), PAD_ID, dtype=np.int64)
    for row, ids in enumerate(token_ids):
        kept = ids[:width]
        batch[row, : len(kept)] = kept
    return torch.from_numpy(batch)


def padded_batch(token_ids: Sequence[np.ndarray], max_length: int = MAX_LENGTH) -> torch.Tensor:
    """Ids (B, min(longest + 4, max_length)) int64, right-padded with 0; same logits as padding to 1000."""
    longest = max(min(len(ids), max_length) for ids in token_ids)
    return pad_to_width(token_ids, min(longest + PAD_MARGIN, max_length))


def length_sorted_batches(lengths: Sequence[int], batch_size: int, max_tokens: int | None = None) -> list[np.ndarray]:
    """Positions grouped into batches of similar length, longest first, in a fixed order.

    A batch holds at most ``batch_size`` reviews and, if ``max_tokens`` is
    given, at most that many ids in all (a longer review gets a batch alone).
    """
    order, bounds = length_sorted_cuts(lengths, batch_size, max_tokens)
    return [order[start:end] for start, end in zip(bounds[:-1], bounds[1:])]


def length_sorted_cuts(lengths: Sequence[int], batch_size: int, max_tokens: int | None = None
                       ) -> tuple[np.ndarray, list[int]]:
    """The batches of :func:`length_sorted_batches` as the positions longest first, ``order`` (N,) int64, and
    where each batch starts in it, ``bounds`` (batches + 1, the last N): batch b is
    ``order[bounds[b]:bounds[b + 1]]``. Arrays throughout (a radix sort of the lengths, one ``searchsorted``
    per batch), so that a query of a million reviews is cut in milliseconds."""
    lengths = np.asarray(lengths, dtype=np.int64)
    keys = -lengths
    if len(keys) and keys.min() >= np.iinfo(np.int16).min:  # numpy's stable sort of 16-bit ints is a radix sort
        keys = keys.astype(np.int16)
    order = np.argsort(keys, kind="stable")
    if max_tokens is None:
        return order, [*range(0, len(order), batch_size), len(order)]
    # a batch from position s ends before the first position whose ids would pass max_tokens in all
    cumulative = np.concatenate(([0], np.cumsum(lengths[order])))
    bounds, start = [0], 0
    while start < len(order):
        within_budget = int(np.searchsorted(cumulative, cumulative[start] + max_tokens, side="right")) - 1
        start = max(start + 1, min(start + batch_size, within_budget))
        bounds.append(start)
    return order, bounds


def shuffled_length_batches(lengths: Sequence[int], batch_size: int, rng: np.random.Generator, pool_batches: int = 50) -> list[np.ndarray]:
    """Training batches: shuffle, sort by length within pools of ``pool_batches`` batches, shuffle the batches."""
    order = rng.permutation(len(lengths))
    lengths = np.asarray(lengths)
    pool = batch_size * pool_batches
    batches = []
    for start in range(0, len(order), pool):
        chunk = order[start : start + pool]
        chunk = chunk[np.argsort(-lengths[chunk], kind="stable")]
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    return [batches[i] for i in rng.permutation(len(batches))]

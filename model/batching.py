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
    lengths = np.asarray(lengths)
    order = np.argsort(-lengths, kind="stable")
    if max_tokens is None:
        return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]
    batches, start, tokens = [], 0, 0
    for end, position in enumerate(order):
        if end > start and (end - start >= batch_size or tokens + lengths[position] > max_tokens):
            batches.append(order[start:end])
            start, tokens = end, 0
        tokens += lengths[position]
    if len(order):
        batches.append(order[start:])
    return batches


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

"""The Ray executor's wire format: a batch, and its answer, each as one ``bytes`` message.

A batch (:func:`encode_batch`) carries its sample ids, the reviews' lengths and their token ids end to end; its
answer (:func:`encode_result`) the compute time inside the actor, the sample ids again (the driver matches an
answer to its batch by them, never by position) and the labels. One ``bytes`` object travels through Ray for
less than the same content as several numpy arrays (``docs/measurements.md`` gives the figures). numpy alone:
both the driver (:mod:`sut.ray_pool`) and the actors (:mod:`sut.ray_actor`) import it.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def encode_batch(sample_ids: np.ndarray, token_ids: Sequence[np.ndarray]) -> bytes:
    """A batch as one message: review count n (int64), n sample ids (uint64), n lengths (int64), then the
    reviews' token ids end to end (int32), all little-endian."""
    count = len(token_ids)
    lengths = np.fromiter((len(ids) for ids in token_ids), dtype="<i8", count=count)
    flat = np.concatenate(token_ids).astype("<i4", copy=False) if count else np.zeros(0, "<i4")
    return b"".join((np.array([count], "<i8").tobytes(), np.asarray(sample_ids, "<u8").tobytes(), lengths.tobytes(),
                     flat.tobytes()))


def decode_batch(message: bytes) -> tuple[np.ndarray, list[np.ndarray]]:
    """(sample ids uint64, reviews as int32 views) of an :func:`encode_batch` message."""
    count = int(np.frombuffer(message, "<i8", count=1)[0])
    sample_ids = np.frombuffer(message, "<u8", count=count, offset=8)
    lengths = np.frombuffer(message, "<i8", count=count, offset=8 + 8 * count)
    flat = np.frombuffer(message, "<i4", offset=8 + 16 * count)
    if flat.size != lengths.sum():
        raise ValueError(f"a batch message of {count} reviews holds {flat.size} token ids, its lengths say {lengths.sum()}")
    return sample_ids, (np.split(flat, np.cumsum(lengths)[:-1]) if count else [])


def encode_result(sample_ids: np.ndarray, labels: np.ndarray, compute_ns: int) -> bytes:
    """An answer as one message: compute ns (int64), then the n sample ids (uint64) and n labels (int64)."""
    return b"".join((np.array([compute_ns], "<i8").tobytes(), np.asarray(sample_ids, "<u8").tobytes(),
                     np.asarray(labels, "<i8").tobytes()))


def decode_result(message: bytes) -> tuple[np.ndarray, np.ndarray, int]:
    """(sample ids uint64, labels int64, compute ns) of an :func:`encode_result` message."""
    count = (len(message) - 8) // 16
    return (np.frombuffer(message, "<u8", count=count, offset=8), np.frombuffer(message, "<i8", offset=8 + 8 * count),
            int(np.frombuffer(message, "<i8", count=1)[0]))

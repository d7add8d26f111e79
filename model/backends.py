"""Inference backends: one small interface, several ways to compute Seq2CNN.

Every backend turns a batch of unpadded token-id arrays into logits and
labels. Scheduling, batching policy and LoadGen live in ``sut/``; a backend
only computes. :class:`ReferenceBackend` is the yardstick: each review padded
or truncated to 1000 ids, fp32, exactly as the reference implementation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, Sequence

import numpy as np
import torch

from model.batching import pad_to_width
from model.weights import DEFAULT_WEIGHTS, load_model


class Backend(Protocol):
    """What the SUT needs from a way of computing Seq2CNN."""

    name: str

    def logits(self, token_ids: Sequence[np.ndarray]) -> np.ndarray:
        """fp32 logits, shape (len(token_ids), 2), for unpadded int token-id arrays."""

    def labels(self, token_ids: Sequence[np.ndarray]) -> np.ndarray:
        """Predicted classes, int64 shape (len(token_ids),): 1 positive, 0 negative."""


class ReferenceBackend:
    """Reference-faithful PyTorch: every review padded to 1000 ids, fp32."""

    name = "reference"

    def __init__(self, weights_path: Path = DEFAULT_WEIGHTS, device: str = "cpu", threads: int | None = None):
        if threads:
            torch.set_num_threads(threads)
        self.device = torch.device(device)
        self.model = load_model(weights_path).to(self.device)
        self.max_length = self.model.config.max_length

    @torch.inference_mode()
    def logits(self, token_ids: Sequence[np.ndarray]) -> np.ndarray:
        ids = pad_to_width(token_ids, self.max_length).to(self.device)
        return self.model(ids).float().cpu().numpy()

    def labels(self, token_ids: Sequence[np.ndarray]) -> np.ndarray:
        return self.logits(token_ids).argmax(axis=1).astype(np.int64)

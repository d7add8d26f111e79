"""Seq2CNN: a two-branch 1-D convolutional sentiment classifier over word ids.

    ids (B, L) -> Embedding(5200, 1024) -> (B, 1024, L)
        -> Conv1d(1024, 1024, k=3) -> ELU(0.25) -> max over time -> (B, 1024)
        -> Conv1d(1024, 1024, k=4) -> ELU(0.25) -> max over time -> (B, 1024)
    concat (B, 2048) -> [dropout, training only] -> Linear(2048, 2) -> logits (B, 2)

12,670,978 parameters. The original write-up calls the activation
"leaky-relu", but its code used MXNet's LeakyReLU in ``elu`` mode with slope
0.25, i.e. ELU with alpha 0.25. Parameter names follow the reference PyTorch
module (``embedding``, ``clm0.0``, ``clm1.0``, ``classifier``) so that its
checkpoints load unchanged. The reference evaluates every review padded (or
truncated) to 1000 ids with id 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from qsl.vocabulary import MAX_LENGTH, VOCAB_SIZE


@dataclass(frozen=True)
class Seq2CNNConfig:
    #: rows of the embedding: the vocabulary's ids (:mod:`qsl.vocabulary` defines the input)
    vocab_size: int = VOCAB_SIZE
    embedding_dim: int = 1024
    channels: int = 1024
    kernel_sizes: tuple[int, ...] = (3, 4)
    elu_alpha: float = 0.25
    num_classes: int = 2
    #: ids per review as the reference evaluates it (padded or truncated)
    max_length: int = MAX_LENGTH
    #: dropout before the classifier; active only in training mode
    dropout: float = 0.5


class Seq2CNN(nn.Module):
    def __init__(self, config: Seq2CNNConfig = Seq2CNNConfig()):
        super().__init__()
        self.config = config
        self.embedding = nn.Embedding(config.vocab_size, config.embedding_dim)
        # Each branch is a Sequential holding one Conv1d so the names read
        # ``clm0.0.weight``, as in the reference checkpoints.
        for branch, kernel_size in enumerate(config.kernel_sizes):
            conv = nn.Conv1d(config.embedding_dim, config.channels, kernel_size)
            self.add_module(f"clm{branch}", nn.Sequential(conv))
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(config.channels * len(config.kernel_sizes), config.num_classes)

    def branches(self) -> list[nn.Conv1d]:
        return [getattr(self, f"clm{branch}")[0] for branch in range(len(self.config.kernel_sizes))]

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """Logits (B, 2) for ids (B, L) int64, L >= the largest kernel size."""
        embedded = self.embedding(ids).transpose(1, 2)  # (B, E, L)
        features = [
            nn.functional.elu(conv(embedded), alpha=self.config.elu_alpha).amax(dim=2)
            for conv in self.branches()
        ]
        return self.classifier(self.dropout(torch.cat(features, dim=1)))


def parameter_count(model: nn.Module) -> int:
    return sum(parameter.numel() for parameter in model.parameters())

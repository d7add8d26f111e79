"""Batches computed in this process, on the thread that hands them over, by one backend of :mod:`model.backends`.

The SUT's own threads give the parallelism: SingleStream and MultiStream run a
query on LoadGen's thread (no hand-off on the latency path), Offline and
Server on ``--workers`` threads.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from model.backends import Backend, create_backend
from sut.config import RunConfig
from sut.executor import Complete, Executor, ExecutorInfo, Fail, check_labels

log = logging.getLogger(__name__)


class LocalExecutor(Executor):
    """A backend of this process: the one given (tests), else ``backend`` made from ``weights`` on ``device``."""

    def __init__(self, backend: str, weights: Path, device: str = "cpu", threads: int | None = None,
                 precision: str = "fp32", workers: int = 1, given: Backend | None = None):
        self.backend_name, self.weights, self.device = backend, Path(weights), device
        self.threads, self.precision, self.workers = threads, precision, workers
        self.backend: Backend | None = given

    @classmethod
    def from_config(cls, config: RunConfig, backend: Backend | None = None) -> LocalExecutor:
        return cls(config.backend, config.model_path, config.device, config.threads, config.precision,
                   config.workers, given=backend)

    def open(self) -> None:
        if self.backend is None:  # loading checks the weights' checksum, names and shapes
            log.info("loading the %s backend on %s", self.backend_name, self.device)
            self.backend = create_backend(self.backend_name, self.weights, self.device, self.threads, self.precision)

    def run(self, sample_ids: Sequence[int], token_ids: Sequence[np.ndarray], complete: Complete, fail: Fail) -> None:
        assert self.backend is not None, "open() the executor first"
        complete(sample_ids, self.backend.labels(token_ids))  # the SUT checks the labels

    def labels(self, token_ids: Sequence[np.ndarray]) -> np.ndarray:
        assert self.backend is not None, "open() the executor first"
        return check_labels(self.backend.labels(token_ids), len(token_ids), self.backend.name)

    @property
    def parallel_batches(self) -> int:
        return self.workers

    def describe(self) -> ExecutorInfo:
        assert self.backend is not None, "open() the executor first"
        tables = getattr(self.backend, "load_report", None)  # only the folded backend has tables
        return ExecutorInfo(self.backend.name, getattr(self.backend, "precision", self.precision),
                            tables.source if tables is not None else None,
                            tables.seconds if tables is not None else None, getattr(self.backend, "framework", None))

"""Shared fixtures: the real IMDB archive, the shipped vocabulary and weights, and a backend of fixed speed.

The dataset is found as every command finds it (:mod:`qsl.locations`):
``$SEQ2CNN_DATASET``, else ``../shared/data/aclImdb_labeled.tar.gz`` beside the
checkout, else the downloaded archive in the cache.
"""

from __future__ import annotations

import atexit
import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent

# Ray reads this switch when it is imported, and test modules import Ray as they are collected: set here, before
# any of them, a Ray instance a test starts in this process keeps its nodes on 127.0.0.1 (sut.ray_cluster)
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

#: pytest's exit status, once the session has finished
_session_exit_status: list[int] = []


def pytest_sessionfinish(session, exitstatus) -> None:
    _session_exit_status.append(int(exitstatus))


@atexit.register  # registered before any test runs, so it runs after every other exit handler
def _end_before_tritons_leak_report() -> None:
    """Triton's extension (built with nanobind) lists every object it still holds as "leaked" when the
    interpreter shuts down: some forty lines after pytest's summary, though nothing went wrong. Once the session
    has finished, end the process with pytest's exit status before that shutdown."""
    if "triton" in sys.modules and _session_exit_status:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_session_exit_status[-1])


@pytest.fixture(scope="session")
def dataset_path() -> Path:
    """The labeled IMDB archive or folder, found by the dataset lookup."""
    from qsl.errors import DatasetError
    from qsl.locations import resolve_dataset_path

    try:
        return resolve_dataset_path()
    except DatasetError as error:
        pytest.fail(f"real IMDB data is needed for the tests: {error}")


@pytest.fixture(scope="session")
def vocabulary():
    from qsl.vocabulary import DEFAULT_VOCABULARY, Vocabulary

    return Vocabulary.load(DEFAULT_VOCABULARY)


@pytest.fixture(scope="session")
def test_split(dataset_path, vocabulary):
    """Token ids of the 25,000 test reviews (tokenized once, then cached outside the repo)."""
    from qsl.reviews import dataset_root
    from qsl.token_cache import tokenized_split

    return tokenized_split(dataset_root(dataset_path), "test", vocabulary)


@pytest.fixture(scope="session")
def random_weights(tmp_path_factory) -> Path:
    """A checked weights file of a randomly initialised Seq2CNN (fixed seed)."""
    import torch

    from model.network import Seq2CNN
    from model.weights import save_weights

    torch.manual_seed(1)
    path = tmp_path_factory.mktemp("weights") / "random.safetensors"
    save_weights(Seq2CNN(), path)
    return path


@pytest.fixture(scope="session")
def folded_backend():
    """The default backend over the shipped weights, loaded once for the session."""
    from model.backends import create_backend

    return create_backend("folded")


class PacedBackend:
    """A real backend whose every batch takes at least ``seconds_per_batch``: the labels are the inner
    backend's, the speed is set by the test, not by the machine.

    Tests that compare two runs' speed or need a rate to be sustainable (or
    not) use it, so that they pass the same on a machine ten times faster or
    three times slower, as long as the inner backend computes a batch within
    the period.
    """

    def __init__(self, inner, seconds_per_batch: float):
        self.inner = inner
        self.seconds_per_batch = seconds_per_batch
        self.name = f"paced-{inner.name}"
        self.framework = inner.framework
        self.batch_sizes: list[int] = []

    def labels(self, token_ids) -> np.ndarray:
        started = time.perf_counter()
        labels = self.inner.labels(token_ids)
        self.batch_sizes.append(len(token_ids))
        remaining = started + self.seconds_per_batch - time.perf_counter()
        if remaining > 0:
            time.sleep(remaining)
        return labels

    def logits(self, token_ids) -> np.ndarray:
        return self.inner.logits(token_ids)


@pytest.fixture(scope="session")
def paced(folded_backend):
    """``paced(seconds_per_batch)``: the shipped model's labels at a speed the test sets."""
    return lambda seconds_per_batch: PacedBackend(folded_backend, seconds_per_batch)


@pytest.fixture(scope="session")
def ray_installed() -> None:
    """Skip where Ray is not installed; in CI (which installs it) its absence fails instead."""
    try:
        import ray  # noqa: F401 - only whether it imports
    except ImportError:
        if os.environ.get("CI"):
            raise
        pytest.skip("Ray is not installed: pip install -e '.[ray]'")


def require_installed(name: str):
    """The optional module ``name`` (onnx, a runtime): the test is skipped where it is not installed, except in
    CI, which installs every extra (make install): there its absence fails."""
    import importlib

    if os.environ.get("CI") == "true":
        return importlib.import_module(name)
    return pytest.importorskip(name, reason=f"{name} is not installed (make install installs every extra)")

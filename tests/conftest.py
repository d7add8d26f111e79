"""Shared fixtures: the real IMDB archive from ../shared/data, the shipped vocabulary and weights."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DEFAULT_TEST_DATASET = REPO.parent / "shared" / "data" / "aclImdb_labeled.tar.gz"


@pytest.fixture(scope="session")
def dataset_path() -> Path:
    """The labeled IMDB archive (``$SEQ2CNN_TEST_DATASET`` or ``../shared/data``)."""
    path = Path(os.environ.get("SEQ2CNN_TEST_DATASET", DEFAULT_TEST_DATASET))
    if not path.exists():
        pytest.fail(f"real IMDB data not found at {path}: set SEQ2CNN_TEST_DATASET to the archive or folder")
    return path


@pytest.fixture(scope="session")
def vocabulary():
    from model.weights import DEFAULT_VOCABULARY
    from qsl.vocabulary import Vocabulary

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

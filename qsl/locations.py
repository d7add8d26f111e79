"""Where the dataset and the caches live by default (all outside the repository)."""

from __future__ import annotations

import os
from pathlib import Path

OFFICIAL_ARCHIVE_URL = "http://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"
OFFICIAL_ARCHIVE_SHA256 = "c40f74a18d3b61f90feba1e17730e0d38e8b97c05fde7008942e91923d1658fe"
OFFICIAL_ARCHIVE_NAME = "aclImdb_v1.tar.gz"


def cache_dir() -> Path:
    """Root of extracted datasets and token caches: ``$SEQ2CNN_CACHE_DIR`` or ``~/.cache/seq2cnn``."""
    configured = os.environ.get("SEQ2CNN_CACHE_DIR")
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "seq2cnn"


def default_dataset_path() -> Path:
    """``$SEQ2CNN_DATASET``, else where ``python -m qsl.download`` saves the official archive."""
    configured = os.environ.get("SEQ2CNN_DATASET")
    return Path(configured).expanduser() if configured else cache_dir() / OFFICIAL_ARCHIVE_NAME

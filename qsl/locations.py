"""Where the dataset and the caches live (all outside the repository), and how every command finds the dataset.

One lookup order for every entry point (``run.py``, ``model.evaluate``,
``model.train``, ``qsl.build_vocab``, the tools and the tests):

1. the ``--dataset-path`` option, when given;
2. ``$SEQ2CNN_DATASET``, when set (an error if it names nothing);
3. ``../shared/data/aclImdb_labeled.tar.gz`` beside the checkout (the
   development and CI copy);
4. ``~/.cache/seq2cnn/aclImdb_v1.tar.gz`` (or ``$SEQ2CNN_CACHE_DIR``), where
   ``python -m qsl.download`` saves the official archive.

The cache folder itself (:func:`cache_dir`, ``$SEQ2CNN_CACHE_DIR``) is defined
in :mod:`common.caches` and re-exported here.
"""

from __future__ import annotations

import os
from pathlib import Path

from common.caches import cache_dir
from qsl.errors import DatasetError

OFFICIAL_ARCHIVE_URL = "http://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"
OFFICIAL_ARCHIVE_SHA256 = "c40f74a18d3b61f90feba1e17730e0d38e8b97c05fde7008942e91923d1658fe"
OFFICIAL_ARCHIVE_NAME = "aclImdb_v1.tar.gz"
REPOSITORY = Path(__file__).resolve().parent.parent
#: the labeled archive beside the checkout, as development machines and CI have it
SHARED_ARCHIVE = REPOSITORY.parent / "shared" / "data" / "aclImdb_labeled.tar.gz"
DATASET_VARIABLE = "SEQ2CNN_DATASET"
#: for ``--help`` texts
DATASET_LOOKUP_HELP = (
    f"IMDB folder or .tar.gz (default: ${DATASET_VARIABLE}, else ../shared/data/aclImdb_labeled.tar.gz beside "
    "the checkout, else ~/.cache/seq2cnn/aclImdb_v1.tar.gz from 'python -m qsl.download')"
)


def downloaded_archive_path() -> Path:
    """Where ``python -m qsl.download`` saves the official archive."""
    return cache_dir() / OFFICIAL_ARCHIVE_NAME


def resolve_dataset_path(given: Path | None = None) -> Path:
    """The dataset to use: ``given``, else the first of the module's lookup order that exists.

    A ``given`` path is returned as it is (a missing one is reported where it
    is opened, see :func:`qsl.reviews.dataset_root`). Raises
    :class:`DatasetError` naming every place looked at when nothing is found.
    """
    if given is not None:
        return Path(given).expanduser()
    configured = os.environ.get(DATASET_VARIABLE)
    if configured:
        path = Path(configured).expanduser()
        if not path.exists():
            raise DatasetError(f"${DATASET_VARIABLE} is {configured}, which does not exist: point it at the IMDB "
                               "archive or folder, or unset it")
        return path
    for candidate in (SHARED_ARCHIVE, downloaded_archive_path()):
        if candidate.exists():
            return candidate
    raise DatasetError(
        f"no IMDB dataset found: --dataset-path was not given, ${DATASET_VARIABLE} is not set, and neither "
        f"{SHARED_ARCHIVE} nor {downloaded_archive_path()} exists. Download it with 'python -m qsl.download', "
        f"or pass --dataset-path (or set ${DATASET_VARIABLE}) to aclImdb_v1.tar.gz or an extracted aclImdb folder"
    )

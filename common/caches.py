"""Checksummed caches outside the repository: read when valid, else built, used and saved for the next run.

Two caches share this logic: the token ids of a split (:mod:`qsl.token_cache`,
``.npz``) and the folded backend's tables (:mod:`model.table_cache`,
``.safetensors``). Each file lives in ``<cache dir>/<folder>/`` and is named
after a key, the sha256 of every input it was computed from (its first
:data:`KEY_HEX_CHARS` hex digits), so a changed input can never be served
stale content. :func:`read_or_build` reads a file that exists; a file that
fails its reader's checks (:class:`CorruptCacheError`) is named in a warning,
deleted, and its content built again. A new file is written to a temporary name
and renamed (see :mod:`common.files`), so a crash leaves no partial cache; one
that cannot be written is a warning: the content built serves this run only.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from common.errors import BadInputError

#: the environment variable that moves the cache folder (default ``~/.cache/seq2cnn``)
CACHE_DIR_VARIABLE = "SEQ2CNN_CACHE_DIR"
#: hex digits of the key in a cache file's name
KEY_HEX_CHARS = 24

T = TypeVar("T")


def cache_dir() -> Path:
    """Root of extracted datasets and caches: ``$SEQ2CNN_CACHE_DIR`` or ``~/.cache/seq2cnn``."""
    configured = os.environ.get(CACHE_DIR_VARIABLE)
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "seq2cnn"


class CorruptCacheError(BadInputError, ValueError):
    """A cache file that does not hold what its name says (damaged, truncated, stale, or not a file)."""


def check_regular_file(path: Path) -> None:
    """:class:`CorruptCacheError` unless ``path`` is a regular file (a FIFO would block the read)."""
    if not Path(path).is_file():
        raise CorruptCacheError("not a regular file")


@dataclass(frozen=True)
class CacheKind:
    """One cache: its folder and file suffix, and the words of its two warnings.

    ``name`` (``"token cache"``) names a file in the "unusable" warning,
    ``rebuild`` says what happens then (``"tokenizing again"``); ``contents``
    (``"token ids"``) and ``saving`` (``"save a minute or two per run"``) word
    the warning of a file that cannot be written.
    """

    folder: str
    suffix: str
    name: str
    rebuild: str
    contents: str
    saving: str

    def path(self, stem: str, key: str, cache_root: Path | None = None) -> Path:
        """``<cache_root or cache dir>/<folder>/<stem>-<key's first KEY_HEX_CHARS hex><suffix>``."""
        return (cache_root or cache_dir()) / self.folder / f"{stem}-{key[:KEY_HEX_CHARS]}{self.suffix}"


def read_or_build(kind: CacheKind, path: Path, read: Callable[[Path], T], build: Callable[[], T],
                  write: Callable[[T, Path], None], log: logging.Logger) -> tuple[T, str]:
    """The content of the cache file ``path``: ``(read(path), "cache")`` when it reads back whole, else
    ``(build(), "built")``, saved by ``write(content, path)`` for the next run.

    ``read`` raises :class:`CorruptCacheError` for a file that fails its checks:
    the file is named in a warning on ``log``, deleted, and built again. An
    :class:`OSError` of ``write`` (or of creating the folder) is a warning too:
    the content built is returned all the same.
    """
    if os.path.lexists(path):
        try:
            return read(path), "cache"
        except CorruptCacheError as error:
            log.warning("%s %s is unusable (%s): deleting it and %s", kind.name, path, error, kind.rebuild)
            with contextlib.suppress(OSError):
                path.unlink()
    content = build()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write(content, path)
    except OSError as error:
        log.warning("cannot save the %s to %s (%s); they are used for this run only. Make the folder writable or "
                    "set %s to a writable folder to %s", kind.contents, path, error.strerror or error,
                    CACHE_DIR_VARIABLE, kind.saving)
    return content, "built"

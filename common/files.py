"""Files written whole or not at all, and the sha256 that names a file's content.

Every file this project writes that someone may read later (run records,
verdicts, caches, weights, reports) goes through :func:`atomic_write` or
:func:`atomic_directory`: the content is written under a temporary name in the
target's own folder and renamed into place only once it is complete, so a
crash, a full disk or an interrupt never leaves a half-written file under
the real name, and the temporary file is removed on failure.

:func:`file_sha256` is :func:`sha256_of_file` computed once per file per
process: a second call for an unchanged file costs one ``stat``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import stat
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

#: bytes read at a time when hashing a file
HASH_CHUNK_BYTES = 1 << 20
#: :func:`file_sha256` does not remember the digest of a file changed less than this long before it hashed it:
#: a file system's clock may be that coarse, and a rewrite within the same tick keeps size and times
RECENT_CHANGE_NS = 2_000_000_000


class NotARegularFileError(OSError):
    """An input that is not a regular file (a folder, FIFO, device...) or is larger than its cap."""


def read_regular_file(path: Path, max_bytes: int) -> bytes:
    """The bytes of the regular file at ``path`` (links followed), at most ``max_bytes`` of them.

    A folder, FIFO, socket or device (``/dev/zero``) is refused before a byte
    is read, and so is a file over ``max_bytes``: the open does not block on a
    FIFO, and no more than ``max_bytes + 1`` bytes are ever read, so no input
    can hang the caller or fill its memory. Raises :class:`NotARegularFileError`
    (a message naming the path) or the :class:`OSError` of the open.
    """
    path = Path(path)
    descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    status = os.fstat(descriptor)
    if not stat.S_ISREG(status.st_mode):
        os.close(descriptor)
        kind = "a folder" if stat.S_ISDIR(status.st_mode) else "a FIFO, socket or device"
        raise NotARegularFileError(f"{path} is {kind}, not a regular file")
    with os.fdopen(descriptor, "rb") as stream:
        data = stream.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise NotARegularFileError(f"{path} is larger than {max_bytes:,} bytes, the most this input may have")
    return data


def sha256_of_file(path: Path) -> str:
    """Hex sha256 of the file at ``path``, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while chunk := stream.read(HASH_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


_known_digests: dict[str, tuple[tuple[int, ...], str]] = {}
_known_digests_lock = threading.Lock()


def _identity(path: Path) -> tuple[str, os.stat_result]:
    resolved = str(Path(path).resolve())
    return resolved, os.stat(resolved)


def _stat_key(status: os.stat_result) -> tuple[int, ...]:
    return (status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns, status.st_ctime_ns)


def file_sha256(path: Path) -> str:
    """Hex sha256 of the file at ``path``, as :func:`sha256_of_file`, hashed once per process while it is unchanged.

    The digest of a regular file is remembered under its resolved path with
    its identity (device, inode, size, modification and change times): a later
    call for the same file, unchanged, returns it after one ``stat``; a file
    rewritten or replaced since is hashed again. A file modified (or whose
    status changed) within :data:`RECENT_CHANGE_NS` before the hash, or one that
    changed while it was read, is not remembered. Thread-safe.
    """
    resolved, status = _identity(path)
    key = _stat_key(status)
    with _known_digests_lock:
        known = _known_digests.get(resolved)
    if known is not None and known[0] == key:
        return known[1]
    hashed_at = time.time_ns()
    digest = sha256_of_file(Path(resolved))
    try:
        unchanged = _stat_key(os.stat(resolved)) == key
    except OSError:  # gone since: nothing to remember
        unchanged = False
    changed_at = max(status.st_mtime_ns, status.st_ctime_ns)
    if unchanged and stat.S_ISREG(status.st_mode) and changed_at < hashed_at - RECENT_CHANGE_NS:
        with _known_digests_lock:
            _known_digests[resolved] = (key, digest)
    return digest


@contextlib.contextmanager
def atomic_write(path: Path, mode: int = 0o644) -> Iterator[BinaryIO]:
    """A binary stream whose content replaces ``path`` when the ``with`` block ends without an error.

    The stream writes to a hidden temporary file beside ``path``; on success it
    is flushed, given ``mode`` and renamed over ``path``; on any error
    (``BaseException`` included) it is deleted and ``path`` is left as it was;
    an :class:`OSError` of the writes (a full disk) is raised with ``path`` as its file name.
    """
    path = Path(path)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException as error:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        if isinstance(error, OSError) and error.filename is None and error.errno is not None:
            raise OSError(error.errno, error.strerror, str(path)) from error  # name the file (a full disk...)
        raise


def write_bytes_atomically(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data``, whole or not at all."""
    with atomic_write(path) as stream:
        stream.write(data)


def write_text_atomically(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` (UTF-8), whole or not at all."""
    write_bytes_atomically(path, text.encode("utf-8"))


@contextlib.contextmanager
def atomic_directory(target: Path) -> Iterator[Path]:
    """A new empty folder that becomes ``target`` when the ``with`` block ends without an error.

    ``target`` must not exist (or be an empty folder, which is replaced); the
    staging folder is created beside it, so the final rename stays on one file
    system. On any error the staging folder and everything in it is removed.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        staging.chmod(0o755)  # mkdtemp makes it private; results are meant to be shared
        yield staging
        if target.is_dir() and not any(target.iterdir()):
            target.rmdir()
        os.rename(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise

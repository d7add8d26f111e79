"""Safe, once-only extraction of a ``.tar.gz`` of the IMDB layout into the cache.

Only regular files and folders are extracted. A member with an absolute name,
a ``..`` that leaves the target, a link, or a device makes the whole archive
fail with :class:`UnsafeArchiveError` before anything is written, and so does
an archive that would expand beyond :data:`MAX_EXPANSION_RATIO` times its own
size or :data:`MAX_EXTRACTED_BYTES` in all, or hold more than
:data:`MAX_MEMBERS` members (the check stops at the first member over a
bound, so a decompression bomb costs no more than the bound to refuse). Extraction
goes to a temporary sibling folder that is renamed into place only when
complete, so an interrupted run never leaves a half-extracted dataset behind.

Members are written with :mod:`tarfile`'s ``data`` filter where the Python has it (3.10.12, 3.11.4, 3.12
and later); on older ones (Debian bookworm's 3.11.2) :func:`write_member` writes them as that filter
would: no owner from the archive, no setuid or other special mode bits.
"""

from __future__ import annotations

import logging
import shutil
import tarfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath

from common.files import atomic_directory, file_sha256
from common.progress import progress
from qsl.errors import DatasetError, UnsafeArchiveError

log = logging.getLogger(__name__)

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")
#: the most an archive may expand: its members' bytes over its own (IMDB's archives: 2.4 to 3)
MAX_EXPANSION_RATIO = 20
#: the most bytes an archive may extract to, however large it is
MAX_EXTRACTED_BYTES = 4 << 30
#: the most members an archive may have (IMDB's: about 100,000)
MAX_MEMBERS = 500_000
#: whether this Python's tarfile has extraction filters (3.10.12, 3.11.4, 3.12 and later)
HAS_DATA_FILTER = hasattr(tarfile, "data_filter")


def is_archive(path: Path) -> bool:
    return path.name.endswith(ARCHIVE_SUFFIXES)


def check_member(member: tarfile.TarInfo) -> None:
    """Raise :class:`UnsafeArchiveError` unless ``member`` is a plain file or folder inside the target."""
    name = PurePosixPath(member.name)
    if name.is_absolute() or ".." in name.parts:
        raise UnsafeArchiveError(f"archive member {member.name!r} would be written outside the extraction folder")
    if not (member.isfile() or member.isdir()):
        kind = "link" if (member.issym() or member.islnk()) else "device or special file"
        raise UnsafeArchiveError(f"archive member {member.name!r} is a {kind}; only regular files are accepted")


def checked_members(tar: tarfile.TarFile, archive: Path) -> list[tarfile.TarInfo]:
    """The members of ``tar`` (read from ``archive``), each checked by :func:`check_member`, within the
    expansion bounds; :class:`UnsafeArchiveError` at the first member that breaks one."""
    limit = min(MAX_EXTRACTED_BYTES, MAX_EXPANSION_RATIO * max(archive.stat().st_size, 1))
    members, expanded = [], 0
    for member in tar:
        check_member(member)
        members.append(member)
        expanded += member.size
        if expanded > limit or len(members) > MAX_MEMBERS:
            raise UnsafeArchiveError(
                f"{archive} would expand to more than {limit:,} bytes or {MAX_MEMBERS:,} members (at most "
                f"{MAX_EXPANSION_RATIO} times its size, {MAX_EXTRACTED_BYTES >> 30} GiB in all): it is not an IMDB "
                "archive, or it is damaged; download it again")
    return members


def write_member(tar: tarfile.TarFile, member: tarfile.TarInfo, folder: Path) -> None:
    """Write ``member`` (a plain file or folder, already checked by :func:`check_member`) under ``folder``
    as the ``data`` filter would: owned by the user who extracts; a folder with the default mode; a file
    without setuid, setgid, sticky and group or other write bits, executable only if its owner may
    execute it, and readable and writable by its owner."""
    path = folder.joinpath(*PurePosixPath(member.name).parts)
    if member.isdir():
        path.mkdir(parents=True, exist_ok=True)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    source = tar.extractfile(member)
    with source, open(path, "wb") as out:
        shutil.copyfileobj(source, out)
    mode = member.mode & 0o755
    if not mode & 0o100:
        mode &= ~0o111
    path.chmod(mode | 0o600)


def extract_archive(archive: Path, target: Path) -> None:
    """Extract every member of ``archive`` into the new folder ``target``, atomically."""
    try:
        with atomic_directory(target) as staging:
            with tarfile.open(archive, "r:*") as tar:
                members = checked_members(tar, archive)
                for member in progress(members, desc=f"extracting {archive.name}", unit="file", leave=False):
                    if HAS_DATA_FILTER:
                        tar.extract(member, staging, filter="data")
                    else:
                        write_member(tar, member, staging)
    except OSError as error:
        if not target.is_dir():  # else another process finished the same extraction first
            raise DatasetError(f"cannot extract {archive} into {target.parent} ({error}): check the file, the free "
                               "space, or set SEQ2CNN_CACHE_DIR to a writable folder") from None
    except (tarfile.TarError, EOFError) as error:
        raise DatasetError(f"cannot extract {archive}: {error}; check the file or download it again") from error


def extracted_archive(archive: Path, cache_root: Path,
                      on_extracted: Callable[[Path, Path], None] | None = None) -> Path:
    """Folder holding the extracted ``archive``, extracting it on first use.

    The folder is keyed by the archive's sha256, so a changed archive is
    extracted anew and never mixed with an older extraction. ``on_extracted(archive, folder)`` is called
    once the archive has just been extracted (:mod:`qsl.reviews` logs whether its test split is IMDB's).
    """
    target = cache_root / "datasets" / file_sha256(archive)[:20]
    if not target.is_dir():
        log.info("extracting %s into %s (once)", archive, target)
        extract_archive(archive, target)
        if on_extracted is not None:
            on_extracted(archive, target)
    return target

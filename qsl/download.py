"""Download the official IMDB archive and verify its sha256.

    python -m qsl.download [--output PATH] [--url URL] [--sha256 HEX]

By default it fetches the official ``aclImdb_v1.tar.gz`` into the cache folder
(``~/.cache/seq2cnn/``, or ``$SEQ2CNN_CACHE_DIR``), the last place of the
dataset lookup (:mod:`qsl.locations`), so that later commands find it without
options. The bytes are streamed into a
temporary file beside the output and renamed into place only once their
sha256 matches, so the output path never holds a partial or wrong archive.
A file already at the output path is never replaced: if its sha256 matches
there is nothing to do, otherwise the command stops and asks you to remove it
or choose another ``--output``. ``http://``, ``https://`` and ``file://``
URLs work.

Without network access, download the archive on another machine and pass the
local copy with ``--dataset-path``; a local archive of the same layout (such
as ``../shared/data/aclImdb_labeled.tar.gz``) works as well.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import logging
import os
import re
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from common.errors import run_command
from common.files import atomic_write, sha256_of_file
from common.progress import progress
from common.text import plain
from qsl.archive import is_archive
from qsl.errors import DatasetError
from qsl.locations import (
    OFFICIAL_ARCHIVE_NAME,
    OFFICIAL_ARCHIVE_SHA256,
    OFFICIAL_ARCHIVE_URL,
    downloaded_archive_path,
)

log = logging.getLogger(__name__)

#: seconds to wait for the connection and for each read before giving up
TIMEOUT_S = 30.0
CHUNK_BYTES = 1 << 20
SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


def offline_hint() -> str:
    return (
        f"without network access, download {OFFICIAL_ARCHIVE_NAME} elsewhere and pass the local copy with "
        "--dataset-path (a local archive such as ../shared/data/aclImdb_labeled.tar.gz works too)"
    )


def _existing_file_matches(output: Path, expected_sha256: str) -> bool:
    """True if ``output`` already holds the expected bytes, False if there is no file; raise if it differs."""
    if not os.path.lexists(output):
        return False
    if not output.is_file():
        raise DatasetError(f"{output} exists and is not a file; remove it or pass another --output")
    actual = sha256_of_file(output)
    if actual != expected_sha256:
        raise DatasetError(
            f"{output} already exists with sha256 {actual}, not the expected {expected_sha256}; "
            "it is left untouched: remove it or pass another --output"
        )
    return True


def _stream_url(url: str, destination: BinaryIO) -> tuple[str, int, int | None]:
    """Copy the body of ``url`` into ``destination``; returns (sha256, bytes received, bytes announced)."""
    try:
        response = urllib.request.urlopen(url, timeout=TIMEOUT_S)
    except urllib.error.HTTPError as error:
        raise DatasetError(f"cannot download {url}: the server answered HTTP {error.code} {error.reason}; check --url, or {offline_hint()}") from error
    except ValueError as error:
        raise DatasetError(f"cannot download {url!r}: {error}; pass an http://, https:// or file:// URL") from error
    except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
        reason = getattr(error, "reason", error)
        raise DatasetError(f"cannot download {url}: {reason}; {offline_hint()}") from error
    digest = hashlib.sha256()
    received = 0
    length = response.headers.get("Content-Length")
    announced = int(length) if length and length.isdigit() else None
    name = PurePosixPath(urllib.parse.urlsplit(url).path).name or url
    with response, progress(total=announced, desc=f"downloading {name}", unit="B", unit_scale=True, unit_divisor=1024) as bar:
        while True:
            try:
                chunk = response.read(CHUNK_BYTES)
            except (OSError, http.client.HTTPException) as error:
                raise DatasetError(f"download of {url} broke off after {received} bytes: {error}; run the command again, or {offline_hint()}") from error
            if not chunk:
                break
            destination.write(chunk)
            digest.update(chunk)
            received += len(chunk)
            bar.update(len(chunk))
    return digest.hexdigest(), received, announced


def download_archive(url: str, output: Path, sha256: str) -> Path:
    """Download ``url`` to ``output`` if its sha256 is ``sha256``; returns ``output``.

    Nothing is written at ``output`` unless the downloaded bytes match; an
    existing file there is kept if it matches and refused otherwise.
    """
    output = Path(output).expanduser()
    expected = sha256.strip().lower()
    if not SHA256_HEX.match(expected):
        raise DatasetError(f"--sha256 {sha256!r} is not a sha256: expected 64 hexadecimal digits")
    if not is_archive(output):
        log.warning("%s does not end in .tar.gz, .tgz or .tar: --dataset-path will not recognize it as an archive", output)
    if _existing_file_matches(output, expected):
        log.info("%s is already there with the expected sha256; nothing to download", output)
        return output
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(output) as stream:
            actual, received, announced = _stream_url(url, stream)
            if actual != expected:
                size = f"{received} bytes" + (f" of the {announced} announced" if announced is not None and announced != received else "")
                raise DatasetError(
                    f"sha256 mismatch for {url}: expected {expected}, got {actual} ({size}); "
                    f"nothing was written to {output}. Check --url and --sha256, or download again"
                )
    except OSError as error:
        raise DatasetError(f"cannot write {output}: {error}; free some space or pass another --output") from error
    return output


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=plain(__doc__), formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", type=Path, default=downloaded_archive_path(), help="where to save the archive (default: %(default)s)")
    parser.add_argument("--url", default=OFFICIAL_ARCHIVE_URL, help="http://, https:// or file:// URL (default: %(default)s)")
    parser.add_argument("--sha256", default=OFFICIAL_ARCHIVE_SHA256, help="expected sha256 of the archive (default: the official one)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return run_command(lambda: _download(args), log)


def _download(args: argparse.Namespace) -> int:
    path = download_archive(args.url, args.output, args.sha256)
    print(f"dataset archive ready at {path}; pass it with --dataset-path {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

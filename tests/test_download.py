"""qsl.download: verified, atomic downloads over file:// and a local HTTP server."""

from __future__ import annotations

import hashlib
import http.server
import io
import os
import socket
import tarfile
import threading
import time
from functools import partial
from pathlib import Path

import pytest

import common.files
import qsl.download
from qsl.download import download_archive
from qsl.errors import DatasetError


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep a proxy configured on the test machine away from 127.0.0.1."""
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("no_proxy", "*")
    monkeypatch.setenv("NO_PROXY", "*")


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    """A small .tar.gz in the IMDB layout, in a folder of its own."""
    served = tmp_path / "served"
    served.mkdir()
    path = served / "aclImdb_small.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for name, text in (("aclImdb/train/pos/0_9.txt", "great film"), ("aclImdb/train/neg/0_1.txt", "dull film")):
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture
def archive_sha256(archive: Path) -> str:
    return hashlib.sha256(archive.read_bytes()).hexdigest()


@pytest.fixture
def http_url(archive: Path):
    """Base URL of an HTTP server on 127.0.0.1 that serves the archive's folder."""

    class QuietHandler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(QuietHandler, directory=str(archive.parent)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def downloads(tmp_path: Path) -> Path:
    folder = tmp_path / "downloads"
    folder.mkdir()
    return folder


def closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize("scheme", ["file", "http"])
def test_download_verifies_then_renames_into_place(scheme, archive, archive_sha256, http_url, downloads, monkeypatch):
    url = archive.as_uri() if scheme == "file" else f"{http_url}/{archive.name}"
    output = downloads / "aclImdb_v1.tar.gz"
    real_replace = os.replace
    renames = []

    def checked_replace(source, destination):
        # When the rename happens, the output is still absent and the bytes are verified.
        assert not output.exists()
        assert hashlib.sha256(Path(source).read_bytes()).hexdigest() == archive_sha256
        renames.append((Path(source).parent, Path(destination)))
        real_replace(source, destination)

    monkeypatch.setattr(common.files.os, "replace", checked_replace)
    assert download_archive(url, output, archive_sha256) == output
    assert renames == [(downloads, output)]
    assert output.read_bytes() == archive.read_bytes()
    assert os.listdir(downloads) == [output.name]


def test_wrong_sha256_leaves_nothing_behind(archive, http_url, downloads):
    url = f"{http_url}/{archive.name}"
    wrong = "0" * 64
    with pytest.raises(DatasetError) as raised:
        download_archive(url, downloads / "aclImdb_v1.tar.gz", wrong)
    message = str(raised.value)
    assert wrong in message and hashlib.sha256(archive.read_bytes()).hexdigest() in message
    assert os.listdir(downloads) == []


def test_existing_matching_file_is_kept(archive, archive_sha256, downloads, monkeypatch):
    output = downloads / "aclImdb_v1.tar.gz"
    output.write_bytes(archive.read_bytes())
    before = output.stat()

    def no_network(*args, **kwargs):
        raise AssertionError("nothing should be downloaded")

    monkeypatch.setattr(qsl.download.urllib.request, "urlopen", no_network)
    assert download_archive(archive.as_uri(), output, archive_sha256) == output
    assert output.stat().st_mtime_ns == before.st_mtime_ns
    assert os.listdir(downloads) == [output.name]


def test_existing_different_file_is_refused_and_untouched(archive, archive_sha256, downloads):
    output = downloads / "aclImdb_v1.tar.gz"
    output.write_bytes(b"someone else's file")
    with pytest.raises(DatasetError, match="remove it or pass another --output"):
        download_archive(archive.as_uri(), output, archive_sha256)
    assert output.read_bytes() == b"someone else's file"
    assert os.listdir(downloads) == [output.name]


def test_unreachable_url_fails_fast_with_offline_advice(archive_sha256, downloads):
    url = f"http://127.0.0.1:{closed_port()}/x.tar.gz"
    started = time.monotonic()
    with pytest.raises(DatasetError) as raised:
        download_archive(url, downloads / "aclImdb_v1.tar.gz", archive_sha256)
    assert time.monotonic() - started < 10
    assert url in str(raised.value) and "--dataset-path" in str(raised.value)
    assert os.listdir(downloads) == []


def test_http_error_names_url_and_status(archive_sha256, http_url, downloads):
    url = f"{http_url}/missing.tar.gz"
    with pytest.raises(DatasetError, match="404") as raised:
        download_archive(url, downloads / "aclImdb_v1.tar.gz", archive_sha256)
    assert url in str(raised.value)
    assert os.listdir(downloads) == []


def test_main_prints_one_line_error_and_exits_2(archive_sha256, downloads, capsys):
    url = f"http://127.0.0.1:{closed_port()}/x.tar.gz"
    assert qsl.download.main(["--url", url, "--sha256", archive_sha256, "--output",
                              str(downloads / "aclImdb_v1.tar.gz")]) == 2
    stderr = capsys.readouterr().err
    assert "Traceback" not in stderr
    error = stderr.strip().splitlines()[-1]
    assert "error:" in error and url in error and "--dataset-path" in error

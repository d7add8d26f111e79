"""Accuracy logs as MLPerf submissions hold them: truncated, with the full log's sha256 beside them.

A submission keeps of each ``mlperf_log_accuracy.json`` (the accuracy run's,
and TEST01's) only its first and last :data:`VIEWABLE_BYTES` bytes, joined by
:data:`MARKER`, and appends ``hash=<sha256 of the full log>`` to the
``accuracy.txt`` of the same folder; the full logs stay with the submitter
(here: in the run folders). A log shorter than :data:`VIEWABLE_BYTES` is kept
whole. The official checker refuses a log above :data:`TRUNCATED_LIMIT_BYTES`
and an ``accuracy.txt`` without a hash line.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from common.files import sha256_of_file, write_bytes_atomically

VIEWABLE_BYTES = 4096
MARKER = b"\n\n...\n\n"
TRUNCATED_LIMIT_BYTES = 10 * 1024
HASH_LINE = re.compile(r"^hash=(?P<sha256>[0-9a-f]{64})$", re.MULTILINE)


@dataclass(frozen=True)
class TruncatedLog:
    """A truncated accuracy log: the full log's sha256 (hex) and size in bytes, and the kept size."""

    sha256: str
    full_bytes: int
    kept_bytes: int


def truncated_content(full: bytes) -> bytes:
    """What a submission keeps of an accuracy log whose bytes are ``full``."""
    if len(full) < VIEWABLE_BYTES:
        return full
    return full[:VIEWABLE_BYTES] + MARKER + full[-VIEWABLE_BYTES:]


def truncate_accuracy_log(source: Path, target: Path) -> TruncatedLog:
    """Write the truncated form of the accuracy log ``source`` to ``target``; ``source`` is left as it is.

    Reads the head and tail only, so a log of any size costs two 4 KiB reads
    and one pass for its hash.
    """
    source, target = Path(source), Path(target)
    size = source.stat().st_size
    with source.open("rb") as log:
        if size < VIEWABLE_BYTES:
            kept = log.read()
        else:
            head = log.read(VIEWABLE_BYTES)
            log.seek(size - VIEWABLE_BYTES)
            kept = head + MARKER + log.read(VIEWABLE_BYTES)
    write_bytes_atomically(target, kept)
    return TruncatedLog(sha256_of_file(source), size, len(kept))


def with_hash_line(accuracy_text: str, sha256: str) -> str:
    """``accuracy.txt``'s text with the full accuracy log's hash appended, as the submission rules ask."""
    if HASH_LINE.search(accuracy_text):
        raise ValueError("this accuracy.txt already ends with a hash line: it belongs to a truncated log")
    return accuracy_text + f"\nhash={sha256}\n"


def stated_hashes(accuracy_text: str) -> list[str]:
    """The sha256 values of the ``hash=`` lines of an ``accuracy.txt``."""
    return [match["sha256"] for match in HASH_LINE.finditer(accuracy_text)]


def truncation_problems(log: Path, accuracy_txt: Path, full_log: Path | None = None) -> list[str]:
    """What is wrong with a submission's truncated ``log`` and the hash its ``accuracy_txt`` states.

    ``full_log``, when given and present, is the untruncated log: its sha256
    must be the stated one, and the kept bytes must be its truncated form.
    """
    problems = []
    size = log.stat().st_size
    if size > TRUNCATED_LIMIT_BYTES:
        problems.append(f"{log.name} is {size:,} bytes, over the {TRUNCATED_LIMIT_BYTES:,} a submission allows: "
                        "it is not truncated (build the tree with python -m tools.submission)")
    try:
        text = accuracy_txt.read_text(encoding="utf-8", errors="replace")
    except OSError as error:
        return [*problems, f"cannot read {accuracy_txt.name}: {error.strerror or error}"]
    hashes = stated_hashes(text)
    if len(hashes) != 1:
        problems.append(f"{accuracy_txt.name} has {len(hashes)} 'hash=<sha256>' lines, expected one: the sha256 of "
                        f"the full {log.name}")
    if full_log is not None and full_log.is_file() and len(hashes) == 1:
        full = full_log.read_bytes()
        if hashlib.sha256(full).hexdigest() != hashes[0]:
            problems.append(f"the hash in {accuracy_txt.name} is not the sha256 of the full log {full_log}")
        elif log.read_bytes() != truncated_content(full):
            problems.append(f"{log.name} is not the truncated form of the full log {full_log} "
                            f"(its first and last {VIEWABLE_BYTES} bytes)")
    return problems

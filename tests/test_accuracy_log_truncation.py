"""Accuracy logs as submissions hold them: first and last 4 KiB, and the full log's sha256 in accuracy.txt."""

from __future__ import annotations

import hashlib
import json

import pytest

from tools.submission.truncation import (
    MARKER,
    TRUNCATED_LIMIT_BYTES,
    VIEWABLE_BYTES,
    stated_hashes,
    truncate_accuracy_log,
    truncated_content,
    truncation_problems,
    with_hash_line,
)


def _log(entries: int) -> bytes:
    """An accuracy log as LoadGen writes it, with ``entries`` responses."""
    rows = [json.dumps({"seq_id": i, "qsl_idx": i, "data": "0100000000000000"}) for i in range(entries)]
    return ("[\n" + ",\n".join(rows) + "\n]\n").encode()


def test_a_long_log_keeps_its_first_and_last_4_kib(tmp_path):
    full = _log(5000)
    source, target = tmp_path / "full.json", tmp_path / "kept.json"
    source.write_bytes(full)
    truncated = truncate_accuracy_log(source, target)
    kept = target.read_bytes()
    assert kept == full[:VIEWABLE_BYTES] + MARKER + full[-VIEWABLE_BYTES:] == truncated_content(full)
    assert len(kept) <= TRUNCATED_LIMIT_BYTES and truncated.kept_bytes == len(kept)
    assert truncated.sha256 == hashlib.sha256(full).hexdigest() and truncated.full_bytes == len(full)
    assert source.read_bytes() == full  # the full log is left as it was


def test_a_log_shorter_than_4_kib_is_kept_whole(tmp_path):
    full = _log(3)
    (tmp_path / "full.json").write_bytes(full)
    truncate_accuracy_log(tmp_path / "full.json", tmp_path / "kept.json")
    assert (tmp_path / "kept.json").read_bytes() == full


def test_the_hash_line_is_appended_once():
    text = with_hash_line("accuracy=88.324%, good=22081, total=25000\nRESULT: PASS\n", "ab" * 32)
    assert text.endswith("RESULT: PASS\n\nhash=" + "ab" * 32 + "\n")
    assert stated_hashes(text) == ["ab" * 32]
    with pytest.raises(ValueError, match="already ends with a hash line"):
        with_hash_line(text, "cd" * 32)


def test_problems_name_an_untruncated_log_a_missing_hash_and_a_changed_full_log(tmp_path):
    full = _log(5000)
    (tmp_path / "full.json").write_bytes(full)
    log, accuracy = tmp_path / "mlperf_log_accuracy.json", tmp_path / "accuracy.txt"
    truncated = truncate_accuracy_log(tmp_path / "full.json", log)
    accuracy.write_text(with_hash_line("RESULT: PASS\n", truncated.sha256))
    assert truncation_problems(log, accuracy, tmp_path / "full.json") == []
    assert truncation_problems(log, accuracy, tmp_path / "gone.json") == []  # the full log is not needed

    (tmp_path / "full.json").write_bytes(full.replace(b'"qsl_idx": 7,', b'"qsl_idx": 8,'))
    assert truncation_problems(log, accuracy, tmp_path / "full.json") == [
        f"the hash in accuracy.txt is not the sha256 of the full log {tmp_path / 'full.json'}"]
    log.write_bytes(full)
    accuracy.write_text("RESULT: PASS\n")
    assert truncation_problems(log, accuracy) == [
        (f"mlperf_log_accuracy.json is {len(full):,} bytes, over the 10,240 a submission allows: it is not truncated "
        "(build the tree with python -m tools.submission)"),
        "accuracy.txt has 0 'hash=<sha256>' lines, expected one: the sha256 of the full mlperf_log_accuracy.json",
    ]

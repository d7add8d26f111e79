"""Progress off a terminal: a few readable log lines, not every bar refresh."""

from __future__ import annotations

import logging

import common.progress as progress_module
from common.progress import LoggedProgress, progress


def test_off_a_terminal_progress_is_log_lines(caplog):
    caplog.set_level(logging.INFO, logger="progress")
    assert isinstance(progress(range(3), desc="x"), LoggedProgress)  # pytest captures stderr: not a TTY
    assert list(progress(range(1000), desc="tokenising test", unit="review")) == list(range(1000))
    lines = [record.getMessage() for record in caplog.records]
    assert len(lines) == 1, lines  # quick work: its end only
    assert lines[0].startswith("tokenising test: 1,000/1,000 reviews (100%), ") and "; done in " in lines[0]


def test_slow_work_logs_each_step_once_and_its_end(caplog, monkeypatch):
    caplog.set_level(logging.INFO, logger="progress")
    monkeypatch.setattr(progress_module, "STEP_MIN_S", 0.0)
    for _ in progress(range(200), desc="evaluating", unit="batch"):
        pass
    lines = [record.getMessage() for record in caplog.records]
    assert [line.split(" (")[1].split(")")[0] for line in lines[:-1]] == [f"{10 * k}%" for k in range(1, 10)]
    assert "200/200 batches (100%)" in lines[-1] and "done in" in lines[-1]


def test_bytes_are_shown_scaled_and_a_postfix_is_kept(caplog):
    caplog.set_level(logging.INFO, logger="progress")
    with LoggedProgress(total=3 * 2**20, desc="downloading a.tar.gz", unit="B", unit_scale=True) as bar:
        bar.update(3 * 2**20)
        bar.set_postfix(loss="0.3100")
    line = caplog.records[-1].getMessage()
    assert line.startswith("downloading a.tar.gz: 3.0 MiB/3.0 MiB (100%), ") and ", loss 0.3100; done in" in line

"""tools.soak's reading of a run (windows of the SUT's own timings, the last RSS sample of each), and how its
command ends: its runs started by the campaign's launcher, each error family's exit code."""

from __future__ import annotations

import logging

import numpy as np

from tools.campaign import launcher
from tools.soak import soak
from tools.soak.soak import format_table, windows


def test_windows_cover_the_run_and_the_tail_joins_the_last_window(tmp_path):
    issued = np.arange(0, 125_000_000_000, 1_000_000_000, dtype=np.int64)  # one sample a second for 125 s
    latency = np.where(issued < 60e9, 1_000_000, 3_000_000)  # 1 ms in the first minute, 3 ms after
    np.savez(tmp_path / "sut_timings.npz", issued_ns=issued, completed_ns=issued + latency)
    rss = [(10.0 + t, 100 * 2**20 + t) for t in range(0, 130, 5)]
    rows = windows(tmp_path, rss, loadgen_started_s=10.0, window_s=60.0)
    assert [(row.start_s, row.end_s, row.samples) for row in rows] == [(0.0, 60.0, 60), (60.0, 124.0, 65)]
    assert rows[0].p99_ms == 1.0 and rows[1].p99_ms == 3.0
    assert rows[1].rss_mib == (100 * 2**20 + 120) / 2**20  # the last sample inside 10 + [60, 124] s
    table = format_table(rows)
    assert "| 1.0-2.1 | 65 | 3.00 | 3.00 |" in table


def test_the_soak_run_starts_through_the_launcher_and_passes_its_exit_status_on(tmp_path, monkeypatch):
    script = tmp_path / "run.py"
    script.write_text("import pathlib, sys\n"
                      "pathlib.Path(sys.argv[sys.argv.index('--output-dir') + 1] + '.argv').write_text(' '.join(sys.argv))\n"
                      "sys.exit(2)\n")
    monkeypatch.setattr(launcher, "RUN_PY", script)
    folder = tmp_path / "soak"
    code = soak.main(["--peak-qps", "100", "--minutes", "0.1", "--window-minutes", "0.1", "--folder", str(folder),
                      "--precision", "int8"])
    assert code == 2
    argv = (folder / "server.argv").read_text().split()
    assert argv[argv.index("--scenario") + 1] == "Server" and argv[argv.index("--precision") + 1] == "int8"
    assert argv[argv.index("--qps") + 1] == "80.0" and argv[argv.index("--time") + 1] == "6.0"


def test_an_error_of_the_program_s_own_exits_3_with_its_traceback(tmp_path, monkeypatch, capsys, caplog):
    def broken(*args, **kwargs):
        raise TypeError("a bug in the peak search")

    monkeypatch.setattr(soak, "measure_peak", broken)
    with caplog.at_level(logging.ERROR, logger="tools.soak"):
        code = soak.main(["--folder", str(tmp_path / "soak")])
    assert code == 3
    assert "error: TypeError: a bug in the peak search" in capsys.readouterr().err
    assert any(record.exc_info and record.exc_info[0] is TypeError for record in caplog.records)

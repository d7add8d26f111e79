"""tools.soak's reading of a run: windows of the SUT's own timings, the last RSS sample of each."""

from __future__ import annotations

import numpy as np

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

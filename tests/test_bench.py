"""tools.bench: one table with the reference, our backends and the ONNX runtimes' rows, on real reviews.

The bench runs as a user runs it, in a process of its own: OpenVINO's CPU plugin sets the alternate signal
stack of the threads that use it, and a SIGTERM the test process later sends itself (tests/test_campaign.py)
then ended it with SIGSEGV.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import require_installed

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_one_table_holds_the_reference_ours_and_each_runtimes_rows(dataset_path, tmp_path):
    require_installed("onnxruntime")
    require_installed("openvino")
    output = tmp_path / "bench.json"
    names = ["reference", "folded", "onnxruntime-folded", "openvino-folded", "onnxruntime-trimmed"]
    done = subprocess.run([sys.executable, "-m", "tools.bench", "--dataset-path", str(dataset_path), "--backends",
                           *names, "--precisions", "fp32", "--count", "24", "--fast-count", "256", "--repeats", "1",
                           "--singlestream-seconds", "1", "--output", str(output)],
                          cwd=REPO, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-4000:]
    rows = {row["backend"]: row for row in json.loads(output.read_text())["rows"]}
    assert list(rows) == names
    for name in names[1:]:
        row = rows[name]
        assert row["label_agreement"] == 1.0 and row["max_logit_difference"] < 1e-4, row
        assert row["ratio_to_reference"] > 0 and row["singlestream_p90_estimate_ms"] > 0, row
    assert rows["reference"]["framework"].startswith("PyTorch ") and rows["folded"]["framework"].startswith("numba ")
    assert rows["onnxruntime-folded"]["framework"].startswith("ONNX Runtime ")
    assert rows["openvino-folded"]["framework"].startswith("OpenVINO ")
    table = done.stdout
    assert all(f"\n{name} " in table for name in names), table
    assert "computed by: reference: PyTorch" in table

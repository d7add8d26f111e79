"""tools.bench: one table with the reference, our backends and the ONNX runtimes' rows, on real reviews."""

from __future__ import annotations

import json

import pytest
from conftest import require_installed

from tools.bench.backends import main as bench_main


@pytest.mark.slow
def test_one_table_holds_the_reference_ours_and_each_runtimes_rows(dataset_path, tmp_path, capsys, monkeypatch):
    require_installed("onnxruntime")
    require_installed("openvino")
    monkeypatch.setenv("SEQ2CNN_CACHE_DIR", str(tmp_path / "cache"))  # the exports of this test alone
    output = tmp_path / "bench.json"
    names = ["reference", "folded", "onnxruntime-folded", "openvino-folded", "onnxruntime-trimmed"]
    code = bench_main(["--dataset-path", str(dataset_path), "--backends", *names, "--precisions", "fp32",
                       "--count", "24", "--fast-count", "256", "--repeats", "1", "--singlestream-seconds", "1",
                       "--output", str(output)])
    assert code == 0
    rows = {row["backend"]: row for row in json.loads(output.read_text())["rows"]}
    assert list(rows) == names
    for name in names[1:]:
        row = rows[name]
        assert row["label_agreement"] == 1.0 and row["max_logit_difference"] < 1e-4, row
        assert row["ratio_to_reference"] > 0 and row["singlestream_p90_estimate_ms"] > 0, row
    assert rows["reference"]["framework"].startswith("PyTorch ") and rows["folded"]["framework"].startswith("numba ")
    assert rows["onnxruntime-folded"]["framework"].startswith("ONNX Runtime ")
    assert rows["openvino-folded"]["framework"].startswith("OpenVINO ")
    table = capsys.readouterr().out
    assert all(f"\n{name} " in table for name in names), table
    assert "computed by: reference: PyTorch" in table

"""run.py end to end through the real LoadGen, on real reviews with the shipped weights."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import run
from model.train import predict_logits
from model.weights import load_model
from sut.loadgen_log import detail_values

REPO = Path(__file__).resolve().parent.parent


def run_cli(args: list[str], tmp_path: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO / "run.py"), *args], cwd=tmp_path, capture_output=True, text=True, timeout=timeout,
    )


@pytest.mark.parametrize("scenario", ["SingleStream", "MultiStream", "Offline", "Server"])
def test_short_performance_run_completes_every_issued_sample_once(scenario, dataset_path, tmp_path, capsys):
    out = tmp_path / scenario
    quick = ["--time", "1", "--qps", "20"] if scenario in ("Offline", "Server") else ["--time", "1"]
    code = run.main(["--scenario", scenario, "--dataset-path", str(dataset_path), "--count", "200",
                     "--output-dir", str(out), *quick])
    assert code == 0
    printed = capsys.readouterr().out
    assert f"Scenario   : {scenario}" in printed and "NOT valid for submission" in printed
    summary = (out / "mlperf_log_summary.txt").read_text()
    assert f"Scenario : {scenario}" in summary
    record = json.loads((out / "run.json").read_text())
    samples = record["samples"]
    logged = detail_values(out / "mlperf_log_detail.txt")
    assert samples["issued"] == logged["result_query_count"] * logged["effective_samples_per_query"] > 0
    assert samples["completed"] == samples["issued"]
    assert samples["never_completed"] == samples["completed_more_than_once"] == samples["completed_not_issued"] == 0
    assert record["status"] == "finished" and record["backend"]["name"] == "folded"
    assert record["settings"]["overrides"] and record["git"]["commit"]
    assert not (out / "audit.config").exists()


def test_accuracy_mode_matches_direct_evaluation(dataset_path, test_split, tmp_path, capsys):
    out = tmp_path / "accuracy"
    code = run.main(["--scenario", "Offline", "--accuracy", "--backend", "reference", "--dataset-path", str(dataset_path),
                     "--count", "1000", "--output-dir", str(out)])
    head = test_split.head(1000)
    direct = predict_logits(load_model(), head.token_ids, torch.device("cpu")).argmax(1)
    direct_accuracy = float((direct == head.labels).mean())
    report = (out / "accuracy.txt").read_text()
    assert f"accuracy={100 * direct_accuracy:.3f}%" in report
    assert "RESULT:" in report
    entries = json.loads((out / "mlperf_log_accuracy.json").read_text())
    logged = {e["qsl_idx"]: int(np.frombuffer(bytes.fromhex(e["data"]), "<i8")[0]) for e in entries}
    assert sorted(logged) == list(range(1000))
    assert [logged[i] for i in range(1000)] == direct.tolist()
    assert code == (0 if "RESULT: PASS" in report else 1)
    assert "Accuracy   :" in capsys.readouterr().out


def test_existing_output_folder_is_refused_and_left_alone(dataset_path, tmp_path):
    out = tmp_path / "earlier"
    out.mkdir()
    (out / "mlperf_log_summary.txt").write_text("earlier result")
    result = run_cli(["--dataset-path", str(dataset_path), "--output-dir", str(out)], tmp_path)
    assert result.returncode == 2
    assert "already exists" in result.stderr
    assert (out / "mlperf_log_summary.txt").read_text() == "earlier result"


@pytest.mark.parametrize(
    "args, message",
    [
        (["--scenario", "Streaming"], "invalid choice: 'Streaming'"),
        (["--mlperf-conf", "missing.conf"], "missing.conf"),
        (["--user-conf", "nowhere/user.conf"], "nowhere/user.conf"),
        (["--count", "25001"], "--count 25001 is outside 1..25000"),
        (["--model-path", "no-weights.safetensors"], "weights file not found: no-weights.safetensors"),
        (["--dataset-path", "no-such-dataset"], "python -m qsl.download"),
    ],
)
def test_bad_input_is_a_clear_error(args, message, dataset_path, tmp_path):
    base = [] if "--dataset-path" in args else ["--dataset-path", str(dataset_path)]
    result = run_cli([*base, *args, "--output-dir", str(tmp_path / "out")], tmp_path)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


FAILING_RUN = """
import sys
import numpy as np
import run

class FailingBackend:
    name = "failing"
    calls = 0
    def labels(self, token_ids):
        FailingBackend.calls += 1
        if FailingBackend.calls == 3:
            raise RuntimeError("simulated failure in inference")
        return np.zeros(len(token_ids), dtype=np.int64)
    def logits(self, token_ids):
        return np.zeros((len(token_ids), 2), dtype=np.float32)

sys.exit(run.main(sys.argv[1:], backend=FailingBackend()))
"""


@pytest.mark.parametrize("scenario", ["SingleStream", "Server"])
def test_exception_in_inference_stops_the_run_with_an_error(scenario, dataset_path, tmp_path):
    out = tmp_path / "failed"
    args = ["--scenario", scenario, "--dataset-path", str(dataset_path), "--count", "100", "--time", "600",
            "--output-dir", str(out)] + (["--qps", "50"] if scenario == "Server" else [])
    result = subprocess.run(
        [sys.executable, "-c", FAILING_RUN, *args],
        cwd=REPO, capture_output=True, text=True, timeout=120, env=os.environ | {"PYTHONPATH": str(REPO)},
    )
    assert result.returncode == run.EXIT_INFERENCE_FAILED, result.stderr[-2000:]
    assert "simulated failure in inference" in result.stderr
    record = json.loads((out / "run.json").read_text())
    assert record["status"] == "failed" and "simulated failure" in record["error"]

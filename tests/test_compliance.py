"""TEST01 compliance end to end: real LoadGen runs, real reviews, shipped weights.

The runs whose speed is compared (TEST01's performance check) use a backend
of fixed pace (``paced`` in conftest): the labels are the shipped model's,
the speed is the test's, so the verdicts do not depend on how fast or how
loaded the machine is.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

import run
from readback.loadgen_log import DETAIL_FILE, detail_values
from readback.run_record import read_run_record
from readback.test01 import (
    audit_config_was_read,
    performance_tolerance,
    read_verdicts,
    verify_performance,
)
from sut.compliance import AUDIT_CONFIG_FILE
from sut.runner import plan_run
from tools import verify_test01

SCENARIO = "Offline"
#: Offline batches of 8 reviews, each taking 10 ms: 800 reviews/s, whatever the machine
PACE = ["--max-batchsize", "8"]
SECONDS_PER_BATCH = 0.01
QUICK = ["--time", "2", *PACE]


def run_main(args: list[str], dataset_path: Path, backend=None) -> int:
    return run.main(["--scenario", SCENARIO, "--dataset-path", str(dataset_path), *args], backend=backend)


@pytest.fixture(scope="module")
def baselines(dataset_path, tmp_path_factory, folded_backend, paced) -> tuple[Path, Path]:
    """A full accuracy run and a quick performance run of Offline at a fixed pace: what TEST01 compares with."""
    root = tmp_path_factory.mktemp("baselines")
    assert run_main(["--accuracy", "--output-dir", str(root / "accuracy")], dataset_path, folded_backend) == 0
    assert run_main([*QUICK, "--output-dir", str(root / "performance")], dataset_path, paced(SECONDS_PER_BATCH)) == 0
    return root / "accuracy", root / "performance"


def compliance_args(baselines: tuple[Path, Path], out: Path) -> list[str]:
    accuracy, performance = baselines
    return [*QUICK, "--compliance", "TEST01", "--accuracy-run", str(accuracy), "--performance-run", str(performance),
            "--output-dir", str(out)]


@pytest.mark.slow
def test_test01_passes_and_stages_audit_config_only_in_its_own_folder(baselines, dataset_path, tmp_path, monkeypatch,
                                                                      capsys, paced):
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    out = tmp_path / "test01"
    code = run_main(compliance_args(baselines, out), dataset_path, paced(SECONDS_PER_BATCH))
    verdict = json.loads((out / "verification.json").read_text())
    assert code == 0, (out / "verify_performance.txt").read_text() + (out / "verify_accuracy.txt").read_text()
    assert "Compliance : TEST01 PASS" in capsys.readouterr().out

    assert not (workdir / AUDIT_CONFIG_FILE).exists()
    assert not any(path.name == AUDIT_CONFIG_FILE for path in tmp_path.rglob("*") if path.parent != out)
    assert "*.*.accuracy_log_sampling_target" in (out / AUDIT_CONFIG_FILE).read_text()
    assert audit_config_was_read(out)
    assert detail_values(out / DETAIL_FILE)["effective_accuracy_log_sampling_target"] > 0

    assert (out / "verify_accuracy.txt").read_text().splitlines()[-1] == "TEST PASS"
    performance_text = (out / "verify_performance.txt").read_text()
    assert performance_text.splitlines()[-1] == "TEST PASS"
    assert "figure: samples per second (result_samples_per_second, samples/s)" in performance_text
    assert "tolerance: 10%, as MLPerf's verify_performance.py allows" in performance_text
    assert verdict["passed"] and verdict["accuracy"]["compared"] > 1000 and not verdict["accuracy"]["mismatched"]
    assert abs(verdict["performance"]["ratio"] - 1) <= 0.10
    record = read_run_record(out)
    assert record.kind == "TEST01" and record.compliance.audit_config["mode"] == 2 and record.compliance.passed is True
    assert record.command[0] == "run.py" and record.command[-2:] == ["--output-dir", str(out)]
    assert read_verdicts(out).passed is True


@pytest.mark.slow  # no LoadGen run of its own, but the two of ``baselines``
def test_a_test01_run_whose_settings_differ_from_its_performance_runs_says_so(baselines, dataset_path, tmp_path,
                                                                            caplog):
    """A TEST01 run of another --time than its performance run (or under the rules against a quick one) is
    warned of before it starts: their figures are compared as they are. The same settings give no warning."""
    accuracy, performance = baselines
    common = ["--scenario", SCENARIO, "--dataset-path", str(dataset_path), "--compliance", "TEST01",
              "--accuracy-run", str(accuracy), "--performance-run", str(performance)]
    with caplog.at_level(logging.WARNING, logger="sut.runner"):
        plan_run(run.parse_args([*common, *QUICK, "--output-dir", str(tmp_path / "same")]))
        assert not caplog.records
        plan_run(run.parse_args([*common, "--time", "5", *PACE, "--output-dir", str(tmp_path / "longer")]))
        plan_run(run.parse_args([*common, "--output-dir", str(tmp_path / "rules")]))
    warned = [record.getMessage() for record in caplog.records]
    assert len(warned) == 2 and all("settings differ from those of its performance run" in text for text in warned)
    assert "--time 2 there, --time 5 here" in warned[0]
    assert "--time 2 there, no --time here" in warned[1]


class LabelFlippingBackend:
    """The paced shipped model, except that it answers the other label for every review of odd length."""

    def __init__(self, inner):
        self.inner = inner
        self.name = "label-flipping"

    def labels(self, token_ids: list[np.ndarray]) -> np.ndarray:
        labels = self.inner.labels(token_ids)
        odd = np.array([len(ids) % 2 == 1 for ids in token_ids])
        return np.where(odd, 1 - labels, labels)


@pytest.mark.slow
def test_test01_fails_for_a_sut_that_answers_otherwise_in_performance_mode(baselines, dataset_path, tmp_path, paced):
    out = tmp_path / "broken"
    assert run_main(compliance_args(baselines, out), dataset_path, LabelFlippingBackend(paced(SECONDS_PER_BATCH))) == 1
    accuracy_verdict = (out / "verify_accuracy.txt").read_text()
    assert accuracy_verdict.splitlines()[-1].startswith("TEST FAIL: ")
    assert "performance mode answered" in accuracy_verdict
    verdict = json.loads((out / "verification.json").read_text())
    assert not verdict["passed"] and not verdict["accuracy"]["passed"]
    assert len(verdict["accuracy"]["mismatched"]) > verdict["accuracy"]["compared"] / 4
    assert read_run_record(out).compliance.passed is False
    # The standalone verifier reaches the same verdict and exit code.
    accuracy, performance = baselines
    args = ["--compliance-run", str(out), "--accuracy-run", str(accuracy), "--performance-run", str(performance),
            "--output-dir", str(tmp_path / "again")]
    assert verify_test01.main(args) == 1
    assert (tmp_path / "again" / "verify_accuracy.txt").read_text() == accuracy_verdict


@pytest.mark.slow
def test_test01_fails_when_the_compliance_run_is_much_slower(baselines, dataset_path, tmp_path, paced):
    """Twice the pace: the samples-per-second ratio is about 0.5, outside the 10% TEST01 allows."""
    out = tmp_path / "slower"
    assert run_main(compliance_args(baselines, out), dataset_path, paced(2 * SECONDS_PER_BATCH)) == 1
    verdict = json.loads((out / "verification.json").read_text())
    assert verdict["accuracy"]["passed"] and not verdict["performance"]["passed"]
    assert verdict["performance"]["ratio"] < 0.8
    assert (out / "verify_performance.txt").read_text().splitlines()[-1] == \
        "TEST FAIL: test score is not within 10% of the reference"


def test_stray_audit_config_in_the_working_directory_is_ignored(dataset_path, tmp_path, monkeypatch, folded_backend):
    monkeypatch.chdir(tmp_path)
    (tmp_path / AUDIT_CONFIG_FILE).write_text("*.*.accuracy_log_sampling_target = 4096\n")
    out = tmp_path / "plain"
    assert run_main(["--time", "0.5", "--qps", "100", "--count", "2000", "--output-dir", str(out)], dataset_path,
                    folded_backend) == 0
    assert not audit_config_was_read(out)
    assert json.loads((out / "mlperf_log_accuracy.json").read_text()) == []
    assert not (out / AUDIT_CONFIG_FILE).exists()


@pytest.mark.slow
def test_compliance_needs_both_submission_runs_of_its_scenario(baselines, dataset_path, tmp_path, capsys):
    assert run_main(["--compliance", "TEST01", "--output-dir", str(tmp_path / "a")], dataset_path) == 2
    assert "--accuracy-run and --performance-run" in capsys.readouterr().err

    accuracy, performance = baselines
    out = tmp_path / "swapped"
    args = [*QUICK, "--compliance", "TEST01", "--accuracy-run", str(performance), "--performance-run", str(accuracy),
            "--output-dir", str(out)]
    assert run_main(args, dataset_path) == 2
    assert "pass a plain accuracy-mode run" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize("scenario, reference_ns, tolerance", [
    ("SingleStream", 150_000, 0.20), ("SingleStream", 200_000, 0.20), ("SingleStream", 200_001, 0.10),
    ("MultiStream", 1_600_000, 0.20), ("MultiStream", 1_700_000, 0.10),
    ("Offline", 100.0, 0.10), ("Server", 100.0, 0.10),
])
def test_performance_tolerance_follows_mlperf_verify_performance(scenario, reference_ns, tolerance):
    assert performance_tolerance(scenario, reference_ns) == tolerance


@pytest.mark.slow
@pytest.mark.parametrize("scenario, key", [("SingleStream", "early_stopping_latency_ss"),
                                           ("MultiStream", "early_stopping_latency_ms")])
def test_performance_check_compares_the_early_stopping_estimate(scenario, key, dataset_path, tmp_path, folded_backend):
    # A minimum duration of 0.1 s: mlperf.conf's minimum query counts (100 and 662 queries) then decide when the
    # run ends, and they are what the early-stopping estimate needs, however fast the machine is.
    short = tmp_path / "user.conf"
    short.write_text("seq2cnn.*.min_duration = 100\n")
    runs = [tmp_path / name for name in ("performance", "compliance")]
    for out in runs:
        code = run.main(["--scenario", scenario, "--user-conf", str(short), "--dataset-path", str(dataset_path),
                         "--count", "2000", "--output-dir", str(out)], backend=folded_backend)
        assert code == 0
    verdict = verify_performance(runs[1], runs[0])
    assert verdict.key == key
    assert verdict.reference_value == detail_values(runs[0] / DETAIL_FILE)[key] > 0
    assert verdict.test_value == detail_values(runs[1] / DETAIL_FILE)[key] > 0
    assert verdict.tolerance == performance_tolerance(scenario, verdict.reference_value)

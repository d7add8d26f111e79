"""run.py end to end through the real LoadGen, on real reviews with the shipped weights.

A backend's failures (exit 3, a failed run) are test_inference_failures.py's; the Server peak search's runs are
test_peak_search.py's.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest
import torch

import run
import sut.loadgen_driver
import sut.run_folder
from model.train import predict_logits
from model.weights import load_model
from readback.loadgen_log import TRACE_FILE, detail_values
from readback.run_record import read_run_record
from sut.config import RunConfig
from sut.run_folder import new_run_dir


@dataclass
class QuickRun:
    """A quick performance run made by :func:`quick_run`: its folder, exit code, summary and progress log lines."""

    out: Path
    code: int
    printed: str
    progress: list[str]


class ProgressLines(logging.Handler):
    """The "LoadGen running: ..." lines logged while a run lasts."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("LoadGen running:"):
            self.lines.append(record.getMessage())


@pytest.fixture(scope="module")
def quick_run(dataset_path, tmp_path_factory):
    """``quick_run(scenario)``: a quick performance run of ``scenario`` (1 s, the first 200 reviews, the default
    backend), made once for the module as a user makes it: from a folder of their own, with no --dataset-path (the
    lookup finds ``$SEQ2CNN_DATASET``), its progress logged every 0.3 s. The tests of what such a run completes,
    prints and logs share it."""
    runs: dict[str, QuickRun] = {}

    def made(scenario: str) -> QuickRun:
        if scenario not in runs:
            folder = tmp_path_factory.mktemp(scenario)
            quick = ["--time", "1", "--qps", "20"] if scenario in ("Offline", "Server") else ["--time", "1"]
            printed, logged = io.StringIO(), ProgressLines()
            driver_log = logging.getLogger("sut.loadgen_driver")
            level = driver_log.level
            driver_log.addHandler(logged)
            driver_log.setLevel(logging.INFO)
            try:
                with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(printed):
                    patch.setenv("SEQ2CNN_DATASET", str(dataset_path))
                    patch.chdir(folder)
                    patch.setattr(sut.loadgen_driver, "PROGRESS_SECONDS", 0.3)
                    code = run.main(["--scenario", scenario, "--count", "200", "--output-dir", "run", *quick])
            finally:
                driver_log.removeHandler(logged)
                driver_log.setLevel(level)
            runs[scenario] = QuickRun(folder / "run", code, printed.getvalue(), logged.lines)
        return runs[scenario]

    return made


@pytest.mark.slow
@pytest.mark.parametrize("scenario", ["SingleStream", "MultiStream", "Offline", "Server"])
def test_short_performance_run_completes_every_issued_sample_once(scenario, quick_run):
    made = quick_run(scenario)
    out, printed = made.out, made.printed
    assert made.code == 0
    assert f"Scenario   : {scenario}   Kind: performance" in printed and "NOT valid for submission" in printed
    record = read_run_record(out)
    logged = detail_values(out / "mlperf_log_detail.txt")
    assert logged["effective_scenario"] == scenario
    samples = record.samples
    assert samples.issued == logged["result_query_count"] * logged["effective_samples_per_query"] > 0
    assert samples.completed == samples.issued
    assert samples.never_completed == samples.completed_more_than_once == samples.completed_not_issued == 0
    assert record.status == "finished" and record.kind == "performance" and record.backend.name == "folded"
    assert record.backend.framework.startswith("numba ")
    assert record.result.num_errors == 0 == len(record.result.errors) and record.result.error_count_mismatch() is None
    assert "count" in [o.option for o in record.settings.overrides] and record.settings.quick_run
    assert record.git["commit"] and record.dataset.samples == 200 and record.dataset.split_samples == 25_000
    assert not (out / "audit.config").exists()
    assert not (out / TRACE_FILE).exists(), "an empty trace file is left without --trace"


def test_headline_is_loadgen_early_stopping_estimate_with_the_plain_percentile_beside_it(quick_run):
    made = quick_run("SingleStream")
    assert made.code == 0
    logged = detail_values(made.out / "mlperf_log_detail.txt")
    result = read_run_record(made.out).result
    assert (result.headline.key, result.headline.value) == ("early_stopping_latency_ss", logged["early_stopping_latency_ss"])
    assert (result.percentile.key, result.percentile.value) == (
        "result_90.00_percentile_latency_ns", logged["result_90.00_percentile_latency_ns"])
    assert f"Result     : {result.headline.value / 1e6:.3f} ms  early-stopping p90 latency estimate " \
           f"(p90 latency {result.percentile.value / 1e6:.3f} ms)" in made.printed


def test_progress_is_logged_while_loadgen_runs(quick_run):
    progress = quick_run("SingleStream").progress
    assert progress and "samples completed" in progress[0]


def test_dataset_is_found_by_the_lookup_from_any_folder(quick_run, dataset_path):
    """No --dataset-path: the run finds the data as every command does, and records where."""
    made = quick_run("SingleStream")
    assert made.code == 0 and read_run_record(made.out).dataset.path == str(dataset_path)


@pytest.mark.slow
def test_accuracy_run_on_a_part_of_the_split_matches_direct_evaluation_and_is_not_judged(dataset_path, test_split,
                                                                                         tmp_path, capsys):
    out = tmp_path / "accuracy"
    code = run.main(["--scenario", "Offline", "--accuracy", "--backend", "reference", "--dataset-path", str(dataset_path),
                     "--count", "400", "--output-dir", str(out)])
    head = test_split.head(400)
    direct = predict_logits(load_model(), head.token_ids, torch.device("cpu")).argmax(1)
    direct_accuracy = float((direct == head.labels).mean())
    report = (out / "accuracy.txt").read_text()
    assert f"accuracy={100 * direct_accuracy:.3f}%" in report
    assert report.splitlines()[-1].startswith("RESULT: NOT JUDGED")
    entries = json.loads((out / "mlperf_log_accuracy.json").read_text())
    logged = {e["qsl_idx"]: int(np.frombuffer(bytes.fromhex(e["data"]), "<i8")[0]) for e in entries}
    assert sorted(logged) == list(range(400))
    assert [logged[i] for i in range(400)] == direct.tolist()
    assert code == 0, "a part of the split is reported, not judged against the whole split's target"
    assert "Accuracy   : " in capsys.readouterr().out and "NOT JUDGED" in report
    accuracy = read_run_record(out).accuracy
    assert accuracy.judged is False and accuracy.passed is None and accuracy.correct == int((direct == head.labels).sum())


@pytest.mark.slow
@pytest.mark.parametrize("scenario", ["Offline", "MultiStream"])
def test_an_int8_run_through_loadgen_logs_the_int8_labels_and_records_its_precision(scenario, dataset_path,
                                                                                   test_split, tmp_path, capsys):
    """--precision int8 end to end, in batches (Offline) and in queries of 8 answered from the inline path's
    reserved responses (MultiStream): LoadGen's accuracy log holds the int8 kernel's own labels for every
    review, the summary and run.json name the precision and its shipped tuning, and the labels are nearly
    all fp32's."""
    from model.backends import create_backend
    from sut.settings import USER_CONF_BY_PRECISION

    out = tmp_path / "int8"
    code = run.main(["--scenario", scenario, "--accuracy", "--precision", "int8", "--dataset-path",
                     str(dataset_path), "--count", "1000", "--output-dir", str(out)])
    assert code == 0
    head = test_split.head(1000)
    int8 = create_backend("folded", precision="int8").labels(head.token_ids)
    fp32 = create_backend("folded").labels(head.token_ids)
    entries = json.loads((out / "mlperf_log_accuracy.json").read_text())
    logged = {e["qsl_idx"]: int(np.frombuffer(bytes.fromhex(e["data"]), "<i8")[0]) for e in entries}
    assert [logged[i] for i in range(1000)] == int8.tolist()
    assert (int8 == fp32).mean() >= 0.995
    record = read_run_record(out)
    assert record.backend.precision == "int8" and record.backend.tables_source in ("cache", "built")
    assert [Path(f.path) for f in record.settings.config_files][-1] == USER_CONF_BY_PRECISION["int8"]
    assert "Backend: folded (int8)" in capsys.readouterr().out


def test_existing_output_folder_is_refused_and_left_alone(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "earlier"
    out.mkdir()
    (out / "mlperf_log_summary.txt").write_text("earlier result")
    assert run.main(["--output-dir", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert [path.name for path in out.iterdir()] == ["mlperf_log_summary.txt"]
    assert (out / "mlperf_log_summary.txt").read_text() == "earlier result"


@pytest.mark.parametrize(
    "args, message",
    [
        (["--scenario", "Streaming"], "invalid choice: 'Streaming'"),
        (["--mlperf-conf", "missing.conf"], "missing.conf"),
        (["--user-conf", "nowhere/user.conf"], "nowhere/user.conf"),
        (["--count", "25001"], "--count 25001 is outside 1..25000"),
        (["--model-path", "no-weights.safetensors"], "weights file not found: no-weights.safetensors"),
        (["--model-path", "/dev/zero"], "weights /dev/zero is not a regular file"),
        (["--dataset-path", "no-such-dataset"], "python -m qsl.download"),
        (["--scenario", "Offline", "--find-peak-performance"], "use it with --scenario Server"),
        (["--accuracy-run", "a"], "belong to a compliance run"),
        (["--compliance", "TEST01"], "pass --accuracy-run and --performance-run"),
    ],
)
def test_bad_input_is_a_clear_error(args, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    try:
        code = run.main([*args, "--output-dir", str(tmp_path / "out")])
    except SystemExit as stopped:  # argparse's own refusals
        code = stopped.code
    assert code == 2
    error = capsys.readouterr().err
    assert message in error and "Traceback" not in error
    assert not (tmp_path / "out").exists()


def test_a_dataset_variable_that_names_nothing_is_a_clear_error(tmp_path, monkeypatch, capsys):
    missing = tmp_path / "nowhere.tar.gz"
    monkeypatch.setenv("SEQ2CNN_DATASET", str(missing))
    assert run.main(["--output-dir", str(tmp_path / "out")]) == 2
    assert f"$SEQ2CNN_DATASET is {missing}, which does not exist" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_quick_offline_run_is_sized_by_measuring_the_backend(dataset_path, tmp_path, paced):
    """--time without --qps: the query is sized from a measured rate, so the run lasts about --time and is VALID."""
    out = tmp_path / "offline"
    backend = paced(0.01)  # 8 reviews per 10 ms at most: 800 reviews/s on any machine fast enough
    code = run.main(["--scenario", "Offline", "--time", "2", "--max-batchsize", "8", "--dataset-path", str(dataset_path),
                     "--output-dir", str(out)], backend=backend)
    assert code == 0
    record = read_run_record(out)
    calibrated = [o for o in record.settings.overrides if o.option == "calibrated_qps"]
    assert len(calibrated) == 1 and calibrated[0].sets == {"offline_expected_qps": calibrated[0].value}
    assert record.result.valid is True, record.result.failed_checks
    logged = detail_values(out / "mlperf_log_detail.txt")
    seconds = logged["result_query_count"] * logged["effective_samples_per_query"] / record.result.headline.value
    assert 2 <= seconds < 8, f"a 2 s quick run took {seconds:.1f} s (about 2.2 x 2 s expected)"


@pytest.mark.slow
def test_quick_offline_run_is_valid_when_the_machine_is_faster_after_its_calibration(dataset_path, tmp_path, paced,
                                                                                     monkeypatch):
    """A machine busy during the 1 s calibration and idle during the run (here: batches twice as slow while the
    calibration measures) still gets a run of at least --time, so a VALID one."""
    import sut.calibration

    backend = paced(0.01)
    measure = sut.calibration.measure_offline_rate
    measured_busy: list[bool] = []

    def measured_while_busy(*args, **kwargs):
        measured_busy.append(True)
        backend.seconds_per_batch = 0.02
        try:
            return measure(*args, **kwargs)
        finally:
            backend.seconds_per_batch = 0.01

    monkeypatch.setattr(sut.calibration, "measure_offline_rate", measured_while_busy)
    out = tmp_path / "offline"
    code = run.main(["--scenario", "Offline", "--time", "2", "--max-batchsize", "8", "--dataset-path", str(dataset_path),
                     "--output-dir", str(out)], backend=backend)
    record = read_run_record(out)
    assert measured_busy, "the calibration did not measure through sut.calibration.measure_offline_rate"
    assert code == 0 and record.result.valid is True, record.result.failed_checks
    logged = detail_values(out / "mlperf_log_detail.txt")
    seconds = logged["result_query_count"] * logged["effective_samples_per_query"] / record.result.headline.value
    assert seconds >= 2, f"a 2 s quick run took {seconds:.1f} s"


@pytest.mark.slow
@pytest.mark.parametrize("scenario", ["SingleStream", "MultiStream"])
def test_quick_single_query_runs_expect_the_latency_they_measure(scenario, dataset_path, tmp_path, paced):
    """--time without --target-latency: a user.conf that expects 50 ms per query (LoadGen then prepares 2 x 2 s of
    such queries: 80) meets a backend that answers in 2 ms; the run measures that and expects it, so LoadGen has
    queries for the whole --time, and the run is VALID."""
    conf = tmp_path / "slow-expectation.conf"
    conf.write_text(f"seq2cnn.{scenario}.target_latency = 50\n")
    out = tmp_path / scenario
    code = run.main(["--scenario", scenario, "--time", "2", "--user-conf", str(conf), "--dataset-path", str(dataset_path),
                     "--output-dir", str(out)], backend=paced(0.002))
    record = read_run_record(out)
    assert code == 0 and record.result.valid is True, record.result.failed_checks
    calibrated = [o for o in record.settings.overrides if o.option == "calibrated_latency_ms"]
    setting = "single_stream_expected_latency_ns" if scenario == "SingleStream" else "multi_stream_expected_latency_ns"
    assert len(calibrated) == 1 and list(calibrated[0].sets) == [setting]
    assert calibrated[0].sets[setting] < 5e6  # expected below 5 ms: measured (2 ms and more) / 2
    assert record.samples.issued > 80 * (8 if scenario == "MultiStream" else 1)


@pytest.mark.slow
def test_a_quick_multistream_run_goes_on_until_early_stopping_has_its_queries(dataset_path, tmp_path, paced):
    """662 queries of 10 ms take longer than --time 2 and its 4 s bound: the run measures that, goes on past
    --time until LoadGen's early-stopping estimate has its queries, and is VALID (it stopped at 4 s, INVALID)."""
    out = tmp_path / "run"
    code = run.main(["--scenario", "MultiStream", "--time", "2", "--count", "200", "--dataset-path", str(dataset_path),
                     "--output-dir", str(out)], backend=paced(0.01))
    record = read_run_record(out)
    assert code == 0 and record.result.valid is True, record.result.failed_checks
    assert detail_values(out / "mlperf_log_detail.txt")["result_query_count"] >= 662
    raised = [o for o in record.settings.overrides if o.option == "calibrated_max_duration_s"]
    assert len(raised) == 1 and raised[0].sets["max_duration_ms"] > 4000
    assert record.settings.effective["min_query_count"] == 662


@pytest.mark.slow
@pytest.mark.parametrize("scenario, expectation, setting", [
    ("SingleStream", ["--target-latency", "50"], "target_latency"),
    ("Offline", ["--qps", "20"], "target_qps"),
])
def test_a_run_whose_queries_ran_out_before_min_duration_says_what_to_set(scenario, expectation, setting,
                                                                          dataset_path, tmp_path, paced, capsys):
    """A config that expects a slower machine (50 ms per query, 20 samples/s) meets a backend answering in 2 ms:
    LoadGen's prepared queries run out before min_duration (INVALID), and the summary says so with the pace
    measured and the setting to change, instead of a bare 'min duration satisfied: NO'."""
    out = tmp_path / scenario
    code = run.main(["--scenario", scenario, "--time", "2", *expectation, "--dataset-path", str(dataset_path),
                     "--output-dir", str(out)], backend=paced(0.002))
    result = read_run_record(out).result
    assert code == 0 and result.valid is False and result.failed_checks == ["min duration satisfied"]
    printed = capsys.readouterr().out
    duration_line = next(line for line in printed.splitlines() if line.startswith("Duration   : "))
    assert "ran out before min_duration: this machine" in duration_line
    assert f"Set {scenario}'s {setting} " in duration_line and "configs/user.conf" in duration_line


def test_runs_started_in_the_same_second_get_folders_of_their_own(tmp_path, monkeypatch):
    class FrozenClock(datetime):
        @classmethod
        def now(cls, tz=None):
            return datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)

    monkeypatch.setattr(sut.run_folder, "datetime", FrozenClock)
    monkeypatch.chdir(tmp_path)
    folders = [new_run_dir(RunConfig(scenario="Offline")).as_posix() for _ in range(3)]
    assert folders == ["results/20260102-030405-Offline-performance", "results/20260102-030405-Offline-performance-2",
                       "results/20260102-030405-Offline-performance-3"]


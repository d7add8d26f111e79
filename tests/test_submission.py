"""Submission package and its checker, on trees built from short real LoadGen runs.

The runs follow short test rules (configs/mlperf.conf with a 1-second minimum
duration and a smaller Offline minimum), so that a tree of Offline and Server
(performance, accuracy over all 25,000 reviews, TEST01) passes the checker;
copies of it with one fault each must be reported with their path. The
performance and TEST01 runs use the shipped model at a fixed pace (``paced``
in conftest), so that their validity and TEST01's speed check do not depend
on the machine's speed or load.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import run
from sut.loadgen_log import detail_values
from sut.run_record import read_run_record
from tools import check_submission, submission
from tools.submission import SubmissionError, assemble
from tools.system_description import (
    DESCRIPTION_KEYS, SystemConfigError, load_system_config, measured_description, system_description,
)

pytestmark = pytest.mark.slow  # the module's runs take a minute and a half

REPO = Path(__file__).resolve().parent.parent
EXAMPLE_SYSTEM = REPO / "configs" / "systems" / "example.yaml"
SYSTEM = load_system_config(EXAMPLE_SYSTEM).system_id
SCENARIOS = ("Offline", "Server")
#: Short rules: LoadGen's checks stay as they are, with room for runs of seconds, and a Server bound that
#: a busy machine meets with margin (what is tested is the tools, not the machine).
TEST_RULES = {
    "seq2cnn.*.min_duration = 600000": "seq2cnn.*.min_duration = 1000",
    "seq2cnn.Offline.min_query_count = 24576": "seq2cnn.Offline.min_query_count = 2000",
    "seq2cnn.Server.target_latency = 15": "seq2cnn.Server.target_latency = 100",
}
#: Server runs 3 seconds: at 300 queries/s, enough queries for early stopping at p99.
SERVER_RULE = "seq2cnn.Server.min_duration = 3000\n"
#: What the paced SUT sustains: Offline batches of 8 reviews every 20 ms (400 reviews/s, so the 2,000 reviews
#: of the Offline query last 5 s), Server 300 queries/s with batches of 2 ms.
TEST_TUNING = (
    "seq2cnn.SingleStream.target_latency = 0.1\nseq2cnn.MultiStream.target_latency = 1\n"
    "seq2cnn.Offline.target_qps = 400\nseq2cnn.Server.target_qps = 300\n"
)
PACE = {"Offline": (0.02, ["--max-batchsize", "8"]), "Server": (0.002, [])}
#: Accuracy runs: Server issues its 25,000 queries at this rate (seconds, not minutes).
ACCURACY_TUNING = "seq2cnn.Server.target_qps = 5000\n"
#: Server at 100 queries/s: too few queries for early stopping, so LoadGen finds the run INVALID.
SLOW_TUNING = "seq2cnn.Server.target_qps = 100\n"


def _write_rules(folder: Path) -> Path:
    text = (REPO / "configs" / "mlperf.conf").read_text()
    for rule, short in TEST_RULES.items():
        assert rule in text
        text = text.replace(rule, short)
    path = folder / "rules.conf"
    path.write_text(text + SERVER_RULE)
    return path


@pytest.fixture(scope="module")
def runs(tmp_path_factory, dataset_path, folded_backend, paced) -> dict[str, Path]:
    """Real run folders by name: ``<scenario>-<kind>``, ``invalid`` and ``quick`` (Server), and the rules file."""
    root = tmp_path_factory.mktemp("runs")
    rules = _write_rules(root)
    for name, text in (("user.conf", TEST_TUNING), ("accuracy.conf", ACCURACY_TUNING), ("slow.conf", SLOW_TUNING)):
        (root / name).write_text(text)
    common = ["--dataset-path", str(dataset_path), "--mlperf-conf", str(rules), "--user-conf", str(root / "user.conf")]
    folders = {"rules": rules}

    def make(name: str, *args: str, backend=folded_backend) -> int:
        folders[name] = root / name
        return run.main([*common, *args, "--output-dir", str(folders[name])], backend=backend)

    for scenario in SCENARIOS:
        seconds_per_batch, options = PACE[scenario]
        assert make(f"{scenario}-accuracy", "--scenario", scenario, "--accuracy",
                    "--user-conf", str(root / "accuracy.conf")) == 0
        assert make(f"{scenario}-performance", "--scenario", scenario, *options,
                    backend=paced(seconds_per_batch)) == 0
        assert read_run_record(folders[f"{scenario}-performance"]).result.valid, f"{scenario} performance run INVALID"
        code = make(f"{scenario}-TEST01", "--scenario", scenario, *options, "--compliance", "TEST01",
                    "--accuracy-run", str(folders[f"{scenario}-accuracy"]),
                    "--performance-run", str(folders[f"{scenario}-performance"]), backend=paced(seconds_per_batch))
        assert code == 0, (folders[f"{scenario}-TEST01"] / "verify_performance.txt").read_text()
    for scenario in ("SingleStream", "MultiStream"):  # for their rules only
        assert make(f"{scenario}-performance", "--scenario", scenario) == 0
    assert make("invalid", "--scenario", "Server", "--user-conf", str(root / "slow.conf")) == 0
    assert make("quick", "--scenario", "Server", "--mlperf-conf", str(REPO / "configs" / "mlperf.conf"), "--time", "1") == 0
    return folders


def _scenario_runs(runs: dict[str, Path], performance: dict[str, str] | None = None) -> list[Path]:
    """The six runs of a full tree; ``performance`` swaps in another run as a scenario's performance run."""
    chosen = []
    for scenario in SCENARIOS:
        chosen.append(runs[(performance or {}).get(scenario, f"{scenario}-performance")])
        chosen += [runs[f"{scenario}-accuracy"], runs[f"{scenario}-TEST01"]]
    return chosen


def check(tree: Path, rules: Path, capsys, *extra: str) -> tuple[int, list[str]]:
    code = check_submission.main([str(tree), "--mlperf-conf", str(rules), *extra])
    return code, capsys.readouterr().out.splitlines()


@pytest.fixture(scope="module")
def good_tree(runs, tmp_path_factory) -> Path:
    output = tmp_path_factory.mktemp("good") / "submission"
    assemble(_scenario_runs(runs), EXAMPLE_SYSTEM, output)
    return output


@pytest.fixture
def tree_copy(good_tree, tmp_path) -> Path:
    copy = tmp_path / "copy"
    shutil.copytree(good_tree, copy)
    return copy


def _base(tree: Path) -> Path:
    """The example system's ``<division>/<submitter>`` folder."""
    return tree / "closed" / "Seq2CNN-SUT_project"


def _scenario_dir(tree: Path, section: str, scenario: str) -> Path:
    return _base(tree) / section / SYSTEM / "seq2cnn" / scenario


def test_good_tree_has_every_file_and_passes_the_checker(good_tree, runs, dataset_path, capsys):
    base = _base(good_tree)
    description = json.loads((base / "systems" / f"{SYSTEM}.json").read_text())
    assert description["submitter"] == "Seq2CNN-SUT project" and description["division"] == "closed"
    for scenario in SCENARIOS:
        results = _scenario_dir(good_tree, "results", scenario)
        for name in ("mlperf_log_summary.txt", "mlperf_log_detail.txt", "run.json"):
            assert (results / "performance" / "run_1" / name).is_file()
        for name in ("mlperf_log_summary.txt", "mlperf_log_detail.txt", "mlperf_log_accuracy.json", "accuracy.txt"):
            assert (results / "accuracy" / name).is_file()
        test01 = _scenario_dir(good_tree, "compliance", scenario) / "TEST01"
        for name in ("verify_accuracy.txt", "verify_performance.txt", "accuracy/mlperf_log_accuracy.json",
                     "performance/run_1/mlperf_log_summary.txt", "performance/run_1/mlperf_log_detail.txt"):
            assert (test01 / name).is_file()
        measurements = _scenario_dir(good_tree, "measurements", scenario)
        assert (measurements / "mlperf.conf").read_bytes() == runs["rules"].read_bytes()
        assert (measurements / "user.conf").read_text() == TEST_TUNING  # the performance run's
        readme = (measurements / "README.md").read_text()
        assert all(f"run folder {runs[f'{scenario}-{kind}']};" in readme for kind in ("performance", "accuracy", "TEST01"))
        backend = read_run_record(runs[f"{scenario}-performance"]).backend.name  # the paced shipped model
        implementation = json.loads((measurements / f"{SYSTEM}_{backend}_{scenario}.json").read_text())
        assert implementation["starting_weights_filename"] == "seq2cnn.safetensors"
        assert implementation["retraining"] == "no" and implementation["weight_data_types"] == "fp32"
    assert [path.name for path in good_tree.parent.iterdir()] == ["submission"]  # no staging folder left

    code, lines = check(good_tree, runs["rules"], capsys)
    assert code == 0, lines
    assert lines == [f"OK: 2 scenario(s) checked ({SYSTEM} Offline, {SYSTEM} Server), no problem"]
    code, lines = check(base, runs["rules"], capsys, "--dataset-path", str(dataset_path))  # the submitter folder
    assert code == 0, lines


def test_checker_recomputes_accuracy_and_coverage_from_the_logs(tree_copy, runs, dataset_path, capsys):
    offline = _scenario_dir(tree_copy, "results", "Offline") / "accuracy" / "mlperf_log_accuracy.json"
    entries = json.loads(offline.read_text())
    for entry in entries:  # every prediction flipped: accuracy about 12%
        label = int(np.frombuffer(bytes.fromhex(entry["data"]), "<i8")[0])
        entry["data"] = np.array([1 - label], "<i8").tobytes().hex()
    offline.write_text(json.dumps(entries))
    server = _scenario_dir(tree_copy, "results", "Server") / "accuracy" / "mlperf_log_accuracy.json"
    kept = [entry for entry in json.loads(server.read_text()) if entry["qsl_idx"] < 24_900]
    server.write_text(json.dumps(kept))

    code, lines = check(tree_copy, runs["rules"], capsys, "--dataset-path", str(dataset_path))
    assert code == 1
    assert len(lines) == 3, lines
    assert lines[0].startswith(f"{offline}: accuracy 11.") and "below the 99% target" in lines[0]
    assert lines[1] == f"{server}: missing qsl_idx (100): 24900-24999 (an accuracy run covers all 25,000 test reviews)"
    assert lines[2] == "2 problem(s) in 2 of 2 scenario(s)"


def test_missing_log_is_reported_with_its_path(tree_copy, runs, capsys):
    missing = _scenario_dir(tree_copy, "results", "Offline") / "accuracy" / "mlperf_log_detail.txt"
    missing.unlink()
    (_base(tree_copy) / "systems" / f"{SYSTEM}.json").unlink()
    code, lines = check(tree_copy, runs["rules"], capsys)
    assert code == 1
    assert lines == [
        f"{_base(tree_copy) / 'systems' / SYSTEM}.json: missing system description; build the tree with 'python -m tools.submission'",
        f"{missing}: missing (Offline accuracy run)",
        "2 problem(s) in 1 of 2 scenario(s) (1 outside any scenario)",
    ]


def test_invalid_performance_run_is_reported_with_loadgen_checks(runs, tmp_path, capsys):
    tree = tmp_path / "submission"
    assemble(_scenario_runs(runs, {"Server": "invalid"}), EXAMPLE_SYSTEM, tree)
    run_1 = _scenario_dir(tree, "results", "Server") / "performance" / "run_1"
    code, lines = check(tree, runs["rules"], capsys)
    assert code == 1
    assert lines == [
        f"{run_1 / 'mlperf_log_summary.txt'}: result is INVALID (early stopping satisfied: NO)",
        "1 problem(s) in 1 of 2 scenario(s)",
    ]


def test_failed_compliance_test_is_reported(tree_copy, runs, capsys):
    verify = _scenario_dir(tree_copy, "compliance", "Offline") / "TEST01" / "verify_accuracy.txt"
    verify.write_text(verify.read_text().replace("TEST PASS", "TEST FAIL: 3 of 4096 responses differ"))
    code, lines = check(tree_copy, runs["rules"], capsys)
    assert code == 1
    assert lines == [f"{verify}: TEST01 failed: TEST FAIL: 3 of 4096 responses differ", "1 problem(s) in 1 of 2 scenario(s)"]


def test_settings_that_break_the_rules_are_reported(tree_copy, runs, capsys):
    """The quick run under configs/mlperf.conf in place of the Server performance run, checked against the test rules."""
    run_1 = _scenario_dir(tree_copy, "results", "Server") / "performance" / "run_1"
    for name in ("mlperf_log_summary.txt", "mlperf_log_detail.txt", "run.json"):
        shutil.copy(runs["quick"] / name, run_1 / name)
    measured_conf = _scenario_dir(tree_copy, "measurements", "Server") / "mlperf.conf"
    shutil.copy(REPO / "configs" / "mlperf.conf", measured_conf)
    code, lines = check(tree_copy, runs["rules"], capsys)
    assert code == 1
    expected = [
        f"{measured_conf}: differs from the benchmark's rules file {runs['rules']}",
        f"{run_1 / 'mlperf_log_detail.txt'}: min_duration_ms is 1000; the rules ({runs['rules']}) require at least 3000",
        f"{run_1 / 'mlperf_log_detail.txt'}: min_query_count is 1; the rules ({runs['rules']}) require at least 100",
        f"{run_1 / 'mlperf_log_detail.txt'}: target_latency_ns is 15000000; the rules ({runs['rules']}) require "
        "exactly 100000000",
        f"{run_1 / 'run.json'}: a quick run (duration_s=1): not valid for submission; "
        "rerun without --time/--qps/--target-latency/--count",
    ]
    assert [line for line in lines if line in expected] == expected
    # 300 queries in one second are too few for early stopping: INVALID, reported on its summary.
    others = [line for line in lines[:-1] if line not in expected]
    assert len(others) == 1 and others[0].startswith(f"{run_1 / 'mlperf_log_summary.txt'}: result is INVALID ("), others
    assert lines[-1] == f"{len(lines) - 1} problem(s) in 1 of 2 scenario(s)"


@pytest.mark.parametrize("scenario, changed_rule, message", [
    ("MultiStream", "seq2cnn.MultiStream.samples_per_query = 4", "samples_per_query is 8; the rules ({rules}) require exactly 4"),
    ("MultiStream", "seq2cnn.MultiStream.target_latency_percentile = 90",
     "target_latency_percentile is 0.99; the rules ({rules}) require exactly 0.9"),
    ("Server", "seq2cnn.Server.target_latency = 10", "target_latency_ns is 100000000; the rules ({rules}) require exactly 10000000"),
    ("Server", "seq2cnn.*.performance_sample_count_override = 1000",
     "performance_sample_count is 25000; the rules ({rules}) require exactly 1000"),
    ("SingleStream", "seq2cnn.SingleStream.min_query_count = 5000", "min_query_count is 100; the rules ({rules}) require at least 5000"),
])
def test_each_scenarios_settings_are_held_against_the_rules(runs, tmp_path, scenario, changed_rule, message):
    detail = detail_values(runs[f"{scenario}-performance"] / "mlperf_log_detail.txt")
    assert check_submission.rule_violations(detail, scenario, check_submission.benchmark_rules(scenario, runs["rules"]),
                                            runs["rules"]) == []
    changed = tmp_path / "changed.conf"
    changed.write_text(runs["rules"].read_text() + changed_rule + "\n")
    rules = check_submission.benchmark_rules(scenario, changed)
    assert check_submission.rule_violations(detail, scenario, rules, changed) == [message.format(rules=changed)]


def test_not_a_submission_tree_is_bad_usage(tmp_path, capsys):
    assert check_submission.main([str(tmp_path)]) == 2
    assert "is not a submission tree" in capsys.readouterr().err


def test_existing_output_is_refused(runs, good_tree, capsys):
    assert submission.main(["--runs", str(runs["Offline-performance"]), "--system", str(EXAMPLE_SYSTEM),
                            "--output", str(good_tree)]) == 2
    assert "already exists" in capsys.readouterr().err


def test_two_runs_for_one_slot_are_refused_naming_both(runs, tmp_path):
    with pytest.raises(SubmissionError) as error:
        assemble([runs["Server-performance"], runs["invalid"]], EXAMPLE_SYSTEM, tmp_path / "out")
    assert str(runs["Server-performance"]) in str(error.value) and str(runs["invalid"]) in str(error.value)
    assert not (tmp_path / "out").exists()


def test_runs_under_other_rules_are_refused(runs, tmp_path):
    with pytest.raises(SubmissionError, match="different mlperf.conf"):
        assemble([runs["quick"], runs["Server-accuracy"]], EXAMPLE_SYSTEM, tmp_path / "out")


def _copy_run(source: Path, target: Path, change) -> Path:
    shutil.copytree(source, target)
    record = json.loads((target / "run.json").read_text())
    change(record)
    (target / "run.json").write_text(json.dumps(record))
    return target


def test_unfinished_run_is_refused(runs, tmp_path):
    unfinished = _copy_run(runs["Offline-accuracy"], tmp_path / "unfinished", lambda r: r.update(status="running"))
    with pytest.raises(SubmissionError, match=r"did not finish \(status 'running'\): make it again"):
        assemble([unfinished], EXAMPLE_SYSTEM, tmp_path / "out")


def test_changed_config_file_is_refused_and_nothing_is_left(runs, tmp_path):
    changed = tmp_path / "user.conf"
    changed.write_text(TEST_TUNING + "seq2cnn.Offline.target_qps = 1\n")

    def point_at_changed(record):
        record["settings"]["config_files"][1]["path"] = str(changed)

    moved = _copy_run(runs["Offline-performance"], tmp_path / "moved", point_at_changed)
    with pytest.raises(SubmissionError, match=f"{changed} changed since run {moved} loaded it"):
        assemble([runs["Server-performance"], moved], EXAMPLE_SYSTEM, tmp_path / "out")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["moved", "user.conf"]


def test_system_description_is_measured_from_this_machine():
    measured = measured_description()
    for key in ("host_processor_model_name", "host_processors_per_node", "host_processor_core_count",
                "host_memory_capacity", "operating_system", "framework", "other_software_stack"):
        assert measured[key] not in ("", None, 0), key
    assert measured["host_processor_core_count"] * measured["host_processors_per_node"] <= measured["host_processor_vcpu_count"]
    assert "mlcommons-loadgen" in measured["other_software_stack"] and "numba" in measured["framework"]
    description = system_description(load_system_config(EXAMPLE_SYSTEM))
    assert set(DESCRIPTION_KEYS) <= set(description)


@pytest.mark.parametrize("text, message", [
    ("submitter: me\nsystem_name: box\ndivision: closed\nstatus: available\n",
     "missing key(s) system_type; add them as in configs/systems/example.yaml"),
    ("submitter: me\nsystem_name: box\ndivision: closed\nstatus: sold\nsystem_type: edge\n",
     "status is 'sold'; expected one of available, preview, rdi"),
    ("submitter: me\nsystem_name: box\ndivision: closed\nstatus: rdi\nsystem_type: edge\ncpu: fast\n",
     "unknown key(s) cpu"),
    ("- a list\n", "expected a mapping of keys"),
    ("submitter: [unclosed\n", "is not valid YAML"),
])
def test_system_yaml_errors_say_what_and_where(tmp_path, text, message):
    path = tmp_path / "system.yaml"
    path.write_text(text)
    with pytest.raises(SystemConfigError) as error:
        load_system_config(path)
    assert str(path) in str(error.value) and message in str(error.value)


def test_missing_system_yaml_says_what_to_do(tmp_path, capsys):
    missing = tmp_path / "absent.yaml"
    with pytest.raises(SystemConfigError, match=f"cannot read the system description {missing}: .*example.yaml"):
        load_system_config(missing)

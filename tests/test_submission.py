"""Submission package and its checker, on trees built from short real LoadGen runs.

The runs follow short test rules (configs/mlperf.conf with a 1-second minimum
duration and a smaller Offline minimum), so that a tree of Offline and Server
(performance, accuracy over all 25,000 reviews, TEST01) for a datacenter
system passes the checker; copies of it with one fault each must be reported
with their path. The
performance and TEST01 runs use the shipped model at a fixed pace (``paced``
in conftest), so that their validity and TEST01's speed check do not depend
on the machine's speed or load.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import run
from common.text import ordinal
from readback.accuracy import read_accuracy_report
from readback.loadgen_log import DETAIL_FILE, detail_values, read_result
from readback.run_files import SUT_TIMINGS_FILE
from readback.run_record import read_run_record
from readback.timings import read_sut_timings
from tools.submission import checker as check_submission
from tools.submission import layout
from tools.submission import pack as submission
from tools.submission.pack import assemble
from tools.submission.runs import SubmissionError, gather_runs
from tools.submission.system_description import load_system_config
from tools.submission.truncation import TRUNCATED_LIMIT_BYTES, truncated_content

pytestmark = pytest.mark.slow  # the module's runs take a minute and a half

REPO = Path(__file__).resolve().parent.parent
EXAMPLE_SYSTEM = REPO / "configs" / "systems" / "example.yaml"
SYSTEM = load_system_config(EXAMPLE_SYSTEM).system_id
SUBMITTER = load_system_config(EXAMPLE_SYSTEM).submitter
SCENARIOS = ("Offline", "Server")
#: Short rules: LoadGen's checks stay as they are, with room for runs of seconds, and a Server bound that
#: a busy machine meets with margin (what is tested is the tools, not the machine).
TEST_RULES = {
    "seq2cnn.*.min_duration = 600000": "seq2cnn.*.min_duration = 1000",
    "seq2cnn.Offline.min_query_count = 24576": "seq2cnn.Offline.min_query_count = 2000",
    "seq2cnn.Server.target_latency = 15": "seq2cnn.Server.target_latency = 100",
}
#: Server runs 5 seconds: at 300 queries/s, 1,500 queries, room for early stopping at p99 (3 s, 900 queries,
#: left none: a few late queries once made the fixture's TEST01 run INVALID).
SERVER_MIN_DURATION_MS = 5000
SERVER_RULE = f"seq2cnn.Server.min_duration = {SERVER_MIN_DURATION_MS}\n"
#: What the paced SUT sustains: Offline batches of 8 reviews every 20 ms (400 reviews/s, so the 2,000 reviews
#: of the Offline query last 5 s), Server 300 queries/s with batches of 2 ms.
TEST_TUNING = (
    "seq2cnn.SingleStream.target_latency = 0.1\nseq2cnn.MultiStream.target_latency = 1\n"
    "seq2cnn.Offline.target_qps = 400\nseq2cnn.Server.target_qps = 300\n"
)
PACE = {"Offline": (0.02, ["--max-batchsize", "8"]), "Server": (0.002, [])}
#: Accuracy runs: Server issues its 25,000 queries at this rate (seconds, not minutes).
ACCURACY_TUNING = "seq2cnn.Server.target_qps = 5000\n"
#: Server at 30 queries/s: 150 queries in 5 s, too few for early stopping at p99 even with none late, so
#: LoadGen finds the run INVALID (100/s gave 500 queries in 5 s: enough, and the run was VALID).
SLOW_TUNING = "seq2cnn.Server.target_qps = 30\n"


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
def system_yaml(tmp_path_factory) -> Path:
    """The example system as a datacenter system: its benchmark needs Offline and Server, the scenarios tested."""
    path = tmp_path_factory.mktemp("system") / "datacenter.yaml"
    text = EXAMPLE_SYSTEM.read_text()
    assert "system_type: edge\n" in text
    path.write_text(text.replace("system_type: edge\n", "system_type: datacenter\n"))
    return path


@pytest.fixture(scope="module")
def good_tree(runs, system_yaml, tmp_path_factory) -> Path:
    output = tmp_path_factory.mktemp("good") / "submission"
    assemble(_scenario_runs(runs), system_yaml, output)
    return output


@pytest.fixture
def tree_copy(good_tree, tmp_path) -> Path:
    copy = tmp_path / "copy"
    shutil.copytree(good_tree, copy)
    return copy


def _base(tree: Path) -> Path:
    """The example system's ``<division>/<submitter>`` folder."""
    return tree / "closed" / SUBMITTER


def _scenario_dir(tree: Path, scenario: str) -> Path:
    return _base(tree) / "results" / SYSTEM / "seq2cnn" / scenario


def _files_below(folder: Path) -> set[str]:
    return {path.relative_to(folder).as_posix() for path in folder.rglob("*") if path.is_file()}


def test_good_tree_has_the_layout_of_its_rules_version_and_passes_the_checker(good_tree, runs, dataset_path, capsys):
    base = _base(good_tree)
    assert sorted(path.name for path in good_tree.iterdir()) == ["README.md", "closed"]
    assert f"MLPerf Inference {layout.RULES_VERSION} submission" in (good_tree / "README.md").read_text()
    record = json.loads((base / "documentation" / "submission.json").read_text())
    assert record["rules_version"] == layout.RULES_VERSION and record["benchmark"] == "seq2cnn"
    description = json.loads((base / "systems" / f"{SYSTEM}.json").read_text())
    assert description["submitter"] == SUBMITTER == base.name and " " not in SUBMITTER
    assert description["division"] == "closed" and description["accelerators_per_node"] == "0"
    assert re.fullmatch(r"numba \d+\.\d+\S*", description["framework"]), "the runs' framework, not what is installed"
    assert "No calibration and no quantization" in (base / "documentation" / "calibration.md").read_text()
    source = _files_below(base / "src" / "seq2cnn")
    assert {"run.py", "setup.py", "sut/runner.py", "tools/submission/pack.py", "configs/mlperf.conf"} <= source
    assert not [name for name in source if name.startswith(".") or "/." in name or name.endswith(".safetensors")]
    for scenario in SCENARIOS:
        folder = _scenario_dir(good_tree, scenario)
        assert _files_below(folder) == {
            "measurements.json", "mlperf.conf", "user.conf", "README.md",
            "performance/run_1/mlperf_log_summary.txt", "performance/run_1/mlperf_log_detail.txt",
            "accuracy/mlperf_log_summary.txt", "accuracy/mlperf_log_detail.txt", "accuracy/mlperf_log_accuracy.json",
            "accuracy/accuracy.txt",
            "TEST01/verify_accuracy.txt", "TEST01/verify_performance.txt", "TEST01/accuracy/mlperf_log_accuracy.json",
            "TEST01/accuracy/accuracy.txt", "TEST01/performance/run_1/mlperf_log_summary.txt",
            "TEST01/performance/run_1/mlperf_log_detail.txt",
        }, scenario
        assert (folder / "mlperf.conf").read_bytes() == runs["rules"].read_bytes()
        assert (folder / "user.conf").read_text() == TEST_TUNING  # the performance run's
        readme = (folder / "README.md").read_text()
        assert all(f"run folder {runs[f'{scenario}-{kind}']};" in readme for kind in ("performance", "accuracy", "TEST01"))
        measurements = json.loads((folder / "measurements.json").read_text())
        assert measurements["starting_weights_filename"] == "seq2cnn.safetensors"
        assert measurements["retraining"] == "no" and measurements["weight_data_types"] == "fp32"
        assert measurements["framework"] == description["framework"]
        for kind, accuracy_dir in (("accuracy", folder / "accuracy"), ("TEST01", folder / "TEST01" / "accuracy")):
            full = (runs[f"{scenario}-{kind}"] / "mlperf_log_accuracy.json").read_bytes()
            kept = (accuracy_dir / "mlperf_log_accuracy.json").read_bytes()
            assert len(kept) <= TRUNCATED_LIMIT_BYTES < len(full) and kept == truncated_content(full)
            assert kept.startswith(full[:4096]) and kept.endswith(full[-4096:])
            text = (accuracy_dir / "accuracy.txt").read_text()
            assert text.endswith(f"\nhash={hashlib.sha256(full).hexdigest()}\n"), kind
        assert (folder / "accuracy" / "accuracy.txt").read_text().startswith(
            (runs[f"{scenario}-accuracy"] / "accuracy.txt").read_text())
        for kind in layout.KINDS:
            records = base / "documentation" / "runs" / SYSTEM / "seq2cnn" / scenario / kind
            assert (records / "run.json").read_bytes() == (runs[f"{scenario}-{kind}"] / "run.json").read_bytes()
    assert [path.name for path in good_tree.parent.iterdir()] == ["submission"]  # no staging folder left

    code, lines = check(good_tree, runs["rules"], capsys)
    assert code == 0, lines
    assert lines == [(f"OK: 2 scenario(s) checked ({SYSTEM} Offline, {SYSTEM} Server) against the "
                     f"{layout.RULES_VERSION} rules, no problem")]
    code, lines = check(base, runs["rules"], capsys, "--dataset-path", str(dataset_path))  # recomputed from full logs
    assert code == 0, lines
    recomputed = [line for line in lines if line.startswith("accuracy ")]
    assert len(recomputed) >= 2 and all("recomputed from" in line and "against the test labels" in line
                                        for line in recomputed), lines  # each scenario at least once


def _changed_run(source: Path, target: Path, change_log) -> Path:
    """A copy of the accuracy run ``source`` whose full accuracy log ``change_log`` rewrote (entries -> entries)."""
    shutil.copytree(source, target)
    log = target / "mlperf_log_accuracy.json"
    log.write_text(json.dumps(change_log(json.loads(log.read_text()))))
    return target


def test_checker_recomputes_accuracy_and_coverage_from_the_full_logs(runs, system_yaml, tmp_path, dataset_path, capsys):
    def flip(entries):  # every prediction flipped: accuracy 100% minus the run's (about 11%)
        for entry in entries:
            label = int(np.frombuffer(bytes.fromhex(entry["data"]), "<i8")[0])
            entry["data"] = np.array([1 - label], "<i8").tobytes().hex()
        return entries

    flipped = _changed_run(runs["Offline-accuracy"], tmp_path / "flipped", flip)
    cut = _changed_run(runs["Server-accuracy"], tmp_path / "cut", lambda entries: [e for e in entries if e["qsl_idx"] < 24_900])
    chosen = [flipped if path == runs["Offline-accuracy"] else cut if path == runs["Server-accuracy"] else path
              for path in _scenario_runs(runs)]
    tree = tmp_path / "submission"
    assemble(chosen, system_yaml, tree)
    assert check(tree, runs["rules"], capsys)[0] == 0  # accuracy.txt (copied from the run) states a pass

    code, lines = check(tree, runs["rules"], capsys, "--dataset-path", str(dataset_path))
    assert code == 1
    stated = read_accuracy_report(runs["Offline-accuracy"] / "accuracy.txt")
    flipped_percent = 100 * (stated.total - stated.correct) / stated.total
    assert lines[0].startswith(f"{flipped / 'mlperf_log_accuracy.json'}: accuracy {flipped_percent:.3f}% (recomputed)")
    assert "below the 99% target" in lines[0]
    assert lines[1].startswith(f"{_scenario_dir(tree, 'Offline') / 'accuracy' / 'accuracy.txt'}: states ")
    assert lines[2] == (f"{cut / 'mlperf_log_accuracy.json'}: missing qsl_idx (100): 24900-24999 "
                        "(an accuracy run covers all 25,000 test reviews)")
    assert lines[3].startswith(f"{_scenario_dir(tree, 'Server') / 'accuracy' / 'accuracy.txt'}: states ")
    assert lines[-1] == "4 problem(s) in 2 of 2 scenario folder(s)"
    recomputed = lines[4:-1]  # each accuracy the checker recomputed, said before the summary
    assert recomputed and all(line.startswith("accuracy ") and "recomputed from" in line for line in recomputed), lines
    assert any(f"{100 - flipped_percent:.3f}%" not in line and f"{flipped_percent:.3f}%" in line for line in recomputed)


def test_untruncated_or_unhashed_accuracy_logs_are_reported(tree_copy, runs, capsys):
    accuracy = _scenario_dir(tree_copy, "Offline") / "accuracy"
    shutil.copy(runs["Offline-accuracy"] / "mlperf_log_accuracy.json", accuracy / "mlperf_log_accuracy.json")
    test01 = _scenario_dir(tree_copy, "Server") / "TEST01" / "accuracy" / "accuracy.txt"
    test01.write_text("".join(line for line in test01.read_text().splitlines(keepends=True) if not line.startswith("hash=")))
    code, lines = check(tree_copy, runs["rules"], capsys)
    assert code == 1
    size = (accuracy / "mlperf_log_accuracy.json").stat().st_size
    assert lines == [
        (f"{accuracy / 'mlperf_log_accuracy.json'}: mlperf_log_accuracy.json is {size:,} bytes, over the 10,240 a "
        "submission allows: it is not truncated (build the tree with python -m tools.submission)"),
        (f"{accuracy / 'mlperf_log_accuracy.json'}: mlperf_log_accuracy.json is not the truncated form of the full log "
        f"{runs['Offline-accuracy'] / 'mlperf_log_accuracy.json'} (its first and last 4096 bytes)"),
        (f"{test01.parent / 'mlperf_log_accuracy.json'}: accuracy.txt has 0 'hash=<sha256>' lines, expected one: "
        "the sha256 of the full mlperf_log_accuracy.json"),
        "3 problem(s) in 2 of 2 scenario folder(s)",
    ]


def test_tree_rules_on_names_files_and_documents_are_reported(tree_copy, runs, capsys):
    base = _base(tree_copy)
    run_1 = _scenario_dir(tree_copy, "Offline") / "performance" / "run_1"
    (run_1 / "run.json").write_text("{}")  # the project's record, where only LoadGen's files belong
    (base / "src" / "seq2cnn" / ".gitignore").write_text("*.pyc\n")
    (base / "documentation" / "my notes.md").write_text("notes\n")
    (base / "documentation" / "empty").mkdir()
    (tree_copy / "closed" / "stray.txt").write_text("stray\n")
    (tree_copy / "results.csv").write_text("a,b\n")
    (base / "documentation" / "calibration.md").unlink()
    code, lines = check(tree_copy, runs["rules"], capsys)
    assert code == 1
    assert lines == [
        (f"{tree_copy / 'results.csv'}: a file at the tree's root; the rules allow only .md and .pdf files beside the "
        "division folders"),
        f"{tree_copy / 'closed' / 'stray.txt'}: a file in a division folder; it holds submitter folders only",
        f"{base / 'documentation' / 'my notes.md'}: a name with a space; the rules refuse spaces in file and folder names",
        f"{base / 'documentation' / 'empty'}: an empty folder; the rules refuse them",
        f"{base / 'src' / 'seq2cnn' / '.gitignore'}: a name that starts with '.'; the rules refuse hidden files and folders",
        (f"{base / 'documentation' / 'calibration.md'}: missing: a closed submission says what calibration or "
        "quantization it did (calibration.md)"),
        f"{run_1 / 'run.json'}: not a file the rules allow here (expected mlperf_log_detail.txt, mlperf_log_summary.txt)",
        "7 problem(s) in 1 of 2 scenario folder(s) (6 outside any scenario)",
    ]


def test_system_description_and_scenarios_are_held_against_the_rules(tree_copy, runs, capsys):
    base = _base(tree_copy)
    path = base / "systems" / f"{SYSTEM}.json"
    description = json.loads(path.read_text())
    del description["cooling"]
    description.update(submitter="Someone else", host_networking="", is_network="false")
    path.write_text(json.dumps(description))
    shutil.rmtree(_scenario_dir(tree_copy, "Server"))
    code, lines = check(tree_copy, runs["rules"], capsys)
    assert code == 1
    assert lines == [
        f"{path}: missing key(s): cooling",
        (f"{path}: key(s) the rules want a meaningful value for are empty: host_networking (write N/A where one does "
        "not apply)"),
        f"{path}: submitter is 'Someone else' but the tree puts it under '{SUBMITTER}'",
        f"{path}: key 'is_network' belongs to the network division's systems; remove it",
        (f"{base / 'results' / SYSTEM / 'seq2cnn'}: missing scenario(s) Server: a datacenter system's seq2cnn submission "
        "holds Server, Offline"),
        "5 problem(s) in 0 of 1 scenario folder(s) (5 outside any scenario)",
    ]


def test_missing_log_is_reported_with_its_path(tree_copy, runs, capsys):
    missing = _scenario_dir(tree_copy, "Offline") / "accuracy" / "mlperf_log_detail.txt"
    missing.unlink()
    (_base(tree_copy) / "systems" / f"{SYSTEM}.json").unlink()
    code, lines = check(tree_copy, runs["rules"], capsys)
    assert code == 1
    assert lines == [
        f"{_base(tree_copy) / 'systems'}: an empty folder; the rules refuse them",
        f"{_base(tree_copy) / 'systems' / SYSTEM}.json: missing system description; build the tree with 'python -m tools.submission'",
        f"{missing}: missing",
        "3 problem(s) in 1 of 2 scenario folder(s) (2 outside any scenario)",
    ]


def test_invalid_performance_run_is_reported_with_loadgen_checks(runs, system_yaml, tmp_path, capsys):
    tree = tmp_path / "submission"
    assemble(_scenario_runs(runs, {"Server": "invalid"}), system_yaml, tree)
    detail = _scenario_dir(tree, "Server") / "performance" / "run_1" / "mlperf_log_detail.txt"
    code, lines = check(tree, runs["rules"], capsys)
    assert code == 1
    assert lines[0] == f"{detail}: result is INVALID (early stopping satisfied: NO)"
    assert lines[1].startswith(f"{detail}: the performance run did not meet early stopping: ")
    assert lines[2:] == ["2 problem(s) in 1 of 2 scenario folder(s)"]


def test_failed_compliance_test_is_reported(tree_copy, runs, capsys):
    verify = _scenario_dir(tree_copy, "Offline") / "TEST01" / "verify_accuracy.txt"
    verify.write_text(verify.read_text().replace("TEST PASS", "TEST FAIL: 3 of 4096 responses differ"))
    code, lines = check(tree_copy, runs["rules"], capsys)
    assert code == 1
    assert lines == [f"{verify}: TEST01 failed: TEST FAIL: 3 of 4096 responses differ", "1 problem(s) in 1 of 2 scenario folder(s)"]


def _swap_in_server_performance_run(tree: Path, run_dir: Path) -> tuple[Path, Path]:
    """Put ``run_dir``'s logs and record in place of the tree's Server performance run; returns the detail log
    and the record as placed."""
    run_1 = _scenario_dir(tree, "Server") / "performance" / "run_1"
    for name in ("mlperf_log_summary.txt", "mlperf_log_detail.txt"):
        shutil.copy(run_dir / name, run_1 / name)
    record = _base(tree) / "documentation" / "runs" / SYSTEM / "seq2cnn" / "Server" / "performance" / "run.json"
    shutil.copy(run_dir / "run.json", record)
    return run_1 / "mlperf_log_detail.txt", record


def test_settings_that_break_the_rules_are_reported(tree_copy, runs, capsys):
    """The quick run under configs/mlperf.conf in place of the Server performance run, checked against the test rules."""
    detail, record = _swap_in_server_performance_run(tree_copy, runs["quick"])
    measured_conf = _scenario_dir(tree_copy, "Server") / "mlperf.conf"
    shutil.copy(REPO / "configs" / "mlperf.conf", measured_conf)
    code, lines = check(tree_copy, runs["rules"], capsys)
    assert code == 1
    expected = [
        f"{measured_conf}: differs from the benchmark's rules file {runs['rules']}",
        f"{detail}: min_duration_ms is 1000; the rules ({runs['rules']}) require at least {SERVER_MIN_DURATION_MS}",
        f"{detail}: min_query_count is 1; the rules ({runs['rules']}) require at least 100",
        f"{detail}: target_latency_ns is 15000000; the rules ({runs['rules']}) require exactly 100000000",
        (f"{record}: a quick run (duration_s=1): not valid for submission; "
        "rerun without --time/--qps/--target-latency/--count"),
    ]
    assert [line for line in lines if line in expected] == expected
    # 300 queries in one second are too few for early stopping: INVALID, and early stopping not met.
    others = [line for line in lines[:-1] if line not in expected]
    assert len(others) == 2 and others[0].startswith(f"{detail}: result is INVALID ("), others
    assert others[1].startswith(f"{detail}: the performance run did not meet early stopping"), others
    # the minimums, the quick-run flag and early stopping are what a quick run explains
    assert lines[-1] == (f"{len(lines) - 1} problem(s) in 1 of 2 scenario folder(s); 4 of them come from quick runs "
                         "(--rehearsal checks a tree of quick runs and lists those as expected)")

    # A rehearsal lists those four as expected; a rules file that differs, a latency bound that differs from the
    # rules' and an INVALID run stay problems (a quick run explains none of them).
    code, lines = check(tree_copy, runs["rules"], capsys, "--rehearsal")
    assert code == 1
    expected_of_quick = [line.removeprefix("expected of a quick run: ") for line in lines
                         if line.startswith("expected of a quick run: ")]
    assert expected_of_quick == [others[1], expected[1], expected[2], expected[4]]
    assert [line for line in lines if not line.startswith("expected of a quick run: ")] == [
        expected[0], others[0], expected[3],
        "3 problem(s) in 1 of 2 scenario folder(s); besides, 4 finding(s) expected of quick runs"]


def test_a_rehearsal_tree_of_valid_quick_runs_passes_its_structure_check_and_the_packer_says_it_will_fail(
        runs, tree_copy, system_yaml, tmp_path, dataset_path, paced, capsys, caplog):
    """A quick Server run (4 s, under the rules' 5 s) that LoadGen found VALID, in a tree that is right in every
    other way: the checker refuses it (the quick-run flag, the minimum duration and query count), --rehearsal
    passes it, listing those as expected, and the packer's verdict on such a tree names them and says MLPerf's checker will refuse it."""
    quick = tmp_path / "quick-server"
    assert run.main(["--scenario", "Server", "--time", "4", "--qps", "300", "--dataset-path", str(dataset_path),
                     "--mlperf-conf", str(runs["rules"]), "--user-conf", str(runs["rules"].parent / "user.conf"),
                     "--output-dir", str(quick)], backend=paced(PACE["Server"][0])) == 0
    capsys.readouterr()  # the run's summary
    detail, record = _swap_in_server_performance_run(tree_copy, quick)
    code, refused = check(tree_copy, runs["rules"], capsys)
    code_rehearsal, lines = check(tree_copy, runs["rules"], capsys, "--rehearsal")
    assert code_rehearsal == 0, lines
    assert all(line.startswith("expected of a quick run: ") for line in lines[:-1]), lines
    expected = [line.removeprefix("expected of a quick run: ") for line in lines[:-1]]
    # --time 4 set the minimum duration to 4 s and the minimum query count to 1 (early stopping, met or not,
    # decides the validity, which LoadGen judged VALID)
    assert f"{detail}: min_duration_ms is 4000; the rules ({runs['rules']}) require at least {SERVER_MIN_DURATION_MS}" in expected
    assert f"{detail}: min_query_count is 1; the rules ({runs['rules']}) require at least 100" in expected
    assert (f"{record}: a quick run (duration_s=4, target_qps=300): not valid for submission; rerun without "
            "--time/--qps/--target-latency/--count") == expected[-1]
    assert lines[-1].startswith("REHEARSAL OK: 2 scenario(s) checked") and \
        f"; {len(expected)} finding(s) expected of quick runs (listed above), no other problem" in lines[-1]
    # without --rehearsal the same findings are the tree's problems, and the summary says where they come from
    assert code == 1 and refused[:-1] == expected
    assert refused[-1] == (f"{len(expected)} problem(s) in 1 of 2 scenario folder(s); {len(expected)} of them come from "
                           "quick runs (--rehearsal checks a tree of quick runs and lists those as expected)")

    # The packer holds the tree it wrote against the benchmark's rules (configs/mlperf.conf): it is written, and
    # the packer says that MLPerf's checker will refuse it, naming the first problems and the quick runs' share.
    packed = tmp_path / "packed"
    with caplog.at_level(logging.WARNING, logger="tools.submission.pack"):
        assert submission.main(["--runs", str(quick), str(runs["Server-accuracy"]), str(runs["Offline-accuracy"]),
                                str(runs["Offline-performance"]), "--system", str(system_yaml),
                                "--output", str(packed)]) == 0
    verdicts = [r.getMessage() for r in caplog.records if "will NOT pass MLPerf's submission checker" in r.getMessage()]
    assert len(verdicts) == 1, [r.getMessage() for r in caplog.records]
    assert re.search(r"the project's checker finds \d+ problem\(s\) \([1-9]\d* from quick runs\):", verdicts[0])
    assert f"python -m tools.check_submission {packed} lists them all (--rehearsal: " in verdicts[0]
    assert "submission written to" in capsys.readouterr().out


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


def test_timings_over_the_file_limit_go_in_thinned_evenly_without_a_warning(runs, system_yaml, tmp_path, monkeypatch,
                                                                           caplog):
    """A healthy long run's sut_timings.npz is larger than the 50 MB a submission allows per file: the packer
    keeps every k-th sample (k as small as fits), says so at info level, and the copy reads back with its stride."""
    source = runs["Offline-performance"] / SUT_TIMINGS_FILE
    whole = read_sut_timings(source)
    limit = source.stat().st_size // 3  # this run's file stands for a long run's against the real limit
    monkeypatch.setattr(layout, "FILE_SIZE_LIMIT_BYTES", limit)
    with caplog.at_level(logging.INFO, logger="tools.submission.pack"):
        assemble(_scenario_runs(runs), system_yaml, tmp_path / "submission")
    copies = list((tmp_path / "submission").rglob(SUT_TIMINGS_FILE))
    assert copies and all(path.stat().st_size <= limit for path in copies)
    ours = [path for path in copies if len(read_sut_timings(path).issued_ns) and
            read_sut_timings(path).issued_ns[0] == whole.issued_ns[0] and
            read_sut_timings(path).completed_ns[0] == whole.completed_ns[0]]
    assert ours, copies
    kept = read_sut_timings(ours[0])
    assert kept.stride >= 3
    np.testing.assert_array_equal(kept.issued_ns, whole.issued_ns[::kept.stride])
    np.testing.assert_array_equal(kept.completed_ns, whole.completed_ns[::kept.stride])
    said = [record for record in caplog.records
            if f"the package keeps every {ordinal(kept.stride)} sample" in record.getMessage()]
    assert said and all(record.levelno == logging.INFO for record in said)
    assert not [record for record in caplog.records  # the fixture's accuracy runs' own user.conf warns apart
                if record.levelno >= logging.WARNING and SUT_TIMINGS_FILE in record.getMessage()]


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


def test_a_folder_of_runs_gives_the_latest_finished_run_per_slot_and_says_what_it_skipped(runs, tmp_path, caplog):
    pool = tmp_path / "results"
    pool.mkdir()
    for scenario in SCENARIOS:
        for kind in layout.KINDS:
            (pool / f"{scenario}-{kind}").symlink_to(runs[f"{scenario}-{kind}"])
    # later than everything else, yet not the run Offline's TEST01 was verified against
    _copy_run(runs["Offline-performance"], pool / "later-performance",
              lambda record: record.update(started_utc="2999-01-01T00:00:00+00:00"))
    _copy_run(runs["Server-accuracy"], pool / "unfinished", lambda record: record.update(status="failed", error="boom"))
    (pool / "probe-notes").mkdir()  # not a run folder: not a candidate
    caplog.set_level(logging.INFO, logger="tools.submission.runs")
    chosen = {(run.scenario, run.kind): run.path for run in gather_runs([pool])}
    assert chosen == {(scenario, kind): pool / f"{scenario}-{kind}" for scenario in SCENARIOS for kind in layout.KINDS}
    said = caplog.text
    assert f"skipped {pool / 'later-performance'}: Offline-TEST01, the Offline TEST01 run, was verified against" in said
    assert f"skipped {pool / 'unfinished'}: run {pool / 'unfinished'} did not finish (status 'failed': boom)" in said
    assert f"took {pool / 'Server-performance'} as the Server performance run" in said
    (pool / "Offline-TEST01").unlink()  # without a TEST01 to follow, the latest run of the slot
    assert {run.path for run in gather_runs([pool]) if run.kind == "performance"} >= {pool / "later-performance"}


def test_unfinished_run_is_refused(runs, tmp_path):
    unfinished = _copy_run(runs["Offline-accuracy"], tmp_path / "unfinished", lambda r: r.update(status="running"))
    with pytest.raises(SubmissionError, match=r"did not finish \(status 'running'.*\): make it again"):
        assemble([unfinished], EXAMPLE_SYSTEM, tmp_path / "out")


#: the seeds LoadGen 6.0.15 runs with, the MLPerf Inference v6.0 rules'
V60_SEEDS = {"qsl_rng_seed": 2465351861681999779, "sample_index_rng_seed": 14276810075590677512,
             "schedule_rng_seed": 3936089224930324775}
#: what MLPerf's checker says of the first, and what to do
WRONG_SEED = "qsl_rng_seed is wrong, expected=2085463073848966840 (logged 2465351861681999779)"
ADVICE = (f"LoadGen 6.0.15 made the run with the seeds of another round than MLPerf Inference {layout.RULES_VERSION}'s: "
          "pip install 'mlcommons-loadgen>=6.0.16,<6.1' and make the run again")


def _with_v60_seeds(detail_log: Path) -> None:
    """``detail_log`` as LoadGen 6.0.15 writes it: v6.0's seeds, its version."""
    text = detail_log.read_text()
    for name, seed in V60_SEEDS.items():
        text, found = re.subn(rf'("key": "effective_{name}", "value": )\d+', rf"\g<1>{seed}", text)
        assert found == 1, name
    text, found = re.subn(r'("key": "loadgen_version", "value": ")[^"]+"', r'\g<1>6.0.15 @ 0123abcd"', text)
    assert found == 1
    detail_log.write_text(text)


def test_a_run_made_with_another_rounds_seeds_is_refused_whatever_loadgen_is_installed(runs, tmp_path):
    older = _copy_run(runs["Offline-accuracy"], tmp_path / "older", lambda r: None)
    _with_v60_seeds(older / DETAIL_FILE)
    with pytest.raises(SubmissionError) as refused:
        assemble([older], EXAMPLE_SYSTEM, tmp_path / "out")
    assert WRONG_SEED in str(refused.value) and ADVICE.replace("6.0.15", "6.0.15 @ 0123abcd") in str(refused.value)
    assert "sample_index_rng_seed is wrong" in str(refused.value) and "schedule_rng_seed is wrong" in str(refused.value)
    assert not (tmp_path / "out").exists()


def test_an_error_count_unlike_the_error_entries_is_reported(tree_copy, runs, capsys):
    """LoadGen counts its errors (num_errors); a log whose error entries are fewer was cut or changed."""
    detail = _scenario_dir(tree_copy, "Server") / "performance" / "run_1" / DETAIL_FILE
    text, found = re.subn(r'("key": "num_errors", "value": )0', r"\g<1>2", detail.read_text())
    assert found == 1
    detail.write_text(text)
    code, lines = check(tree_copy, runs["rules"], capsys)
    assert code == 1
    assert (f"{detail}: LoadGen counted 2 error(s) (num_errors) but its detail log holds 0 error entries: the log is "
            "incomplete or was changed") in lines
    assert read_result(detail.parent).error_count_mismatch().startswith("LoadGen counted 2 error(s)")


def test_the_checker_refuses_a_detail_log_of_another_rounds_seeds(tree_copy, runs, capsys):
    detail = _scenario_dir(tree_copy, "Offline") / "performance" / "run_1" / DETAIL_FILE
    _with_v60_seeds(detail)
    code, lines = check(tree_copy, runs["rules"], capsys)
    assert code == 1
    [line] = [line for line in lines if line.startswith(str(detail))]
    assert WRONG_SEED in line and ADVICE.replace("6.0.15", "6.0.15 @ 0123abcd") in line, line


def test_changed_config_file_is_refused_and_nothing_is_left(runs, tmp_path):
    changed = tmp_path / "user.conf"
    changed.write_text(TEST_TUNING + "seq2cnn.Offline.target_qps = 1\n")

    def point_at_changed(record):
        record["settings"]["config_files"][1]["path"] = str(changed)

    moved = _copy_run(runs["Offline-performance"], tmp_path / "moved", point_at_changed)
    with pytest.raises(SubmissionError, match=f"{changed} changed since run {moved} loaded it"):
        assemble([runs["Server-performance"], moved], EXAMPLE_SYSTEM, tmp_path / "out")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["moved", "user.conf"]


def test_runs_made_outside_git_need_the_commit_of_their_code(runs, system_yaml, tmp_path):
    def forget_commit(record):
        record["git"] = {"commit": "unknown", "dirty": None}

    unknown = [_copy_run(path, tmp_path / path.name, forget_commit) for path in _scenario_runs(runs)]
    with pytest.raises(SubmissionError, match="records no git commit .* pass --source-commit"):
        assemble(unknown, system_yaml, tmp_path / "refused")
    assert not (tmp_path / "refused").exists()
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()
    base = assemble(unknown, system_yaml, tmp_path / "out", source_commit="HEAD")
    assert json.loads((base / "documentation" / "submission.json").read_text())["source_commit"] == head
    assert (base / "src" / "seq2cnn" / "run.py").is_file()


def test_int8_and_bf16_runs_state_their_scheme_in_calibration_md_and_measurements():
    """A submission with int8 (or bf16) runs says in calibration.md how the tables were reduced, from the weights
    alone, and measurements.json gives the int8 scheme and data types; an fp32 one says no quantization."""
    from types import SimpleNamespace

    from model.quantization import INT8_SCHEME
    from tools.submission.documents import calibration_text, weight_data_types, weight_transformation

    def run(precision):
        backend = SimpleNamespace(name="folded", precision=precision, weights="model/seq2cnn.safetensors",
                                  weights_sha256="ab" * 32)
        return SimpleNamespace(record=SimpleNamespace(backend=backend))

    text = calibration_text([run("fp32"), run("int8"), run("bf16")])
    assert "No calibration." in text and "quantized the folded tables to int8 with one scale per output channel" in text
    assert "rounded the folded tables to bf16" in text and "from the weights alone" in text
    assert "- folded (int8): " in text and INT8_SCHEME in text
    assert "No calibration and no quantization." in calibration_text([run("fp32")])
    assert INT8_SCHEME in weight_transformation("folded", "int8")
    assert weight_data_types(run("int8").record.backend).startswith("int8 (folded tables")
    assert weight_data_types(run("fp32").record.backend) == "fp32"

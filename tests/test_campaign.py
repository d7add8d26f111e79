"""The campaign: one command from nothing to a checked submission tree, that goes on after a stop.

The end-to-end test runs a real ``--quick`` edge campaign (real LoadGen runs through run.py, real reviews, the
shipped weights), kills it with SIGKILL during its second run, starts it again and checks that the first run
was reused, the second made again, every required run is in the tree once, and the checker accepts it."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from common.errors import RunInterrupted
from readback.provenance import git_commit
from tools.campaign import command, launcher, preflight
from tools.campaign.manifest import MANIFEST_FILE, Fingerprint, Manifest
from tools.campaign.plan import KINDS, STARTUP_S, campaign_scenarios, plan_campaign, quick_rules_text
from sut.settings import DEFAULT_MLPERF_CONF, DEFAULT_USER_CONF

REPO = Path(__file__).resolve().parent.parent
EXAMPLE_SYSTEM = REPO / "configs" / "systems" / "example.yaml"
#: the longest a quick edge campaign may take before the test gives up on it (its plan expects a few minutes)
CAMPAIGN_TIMEOUT_S = 1200


def campaign_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tools.campaign", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout)


def test_the_plan_holds_each_required_scenario_s_three_runs_in_order_with_expected_times():
    scenarios = campaign_scenarios("edge", optional=False)
    assert scenarios == ("SingleStream", "Offline")
    assert campaign_scenarios("edge", optional=True) == ("SingleStream", "Offline", "MultiStream")
    assert campaign_scenarios("datacenter", optional=True) == ("Server", "Offline")
    plan = plan_campaign(scenarios, DEFAULT_MLPERF_CONF, DEFAULT_USER_CONF)
    assert [(run.scenario, run.kind) for run in plan] == [(s, k) for s in scenarios for k in KINDS]
    performance = {run.scenario: run.expected_s for run in plan if run.kind == "performance"}
    assert performance["SingleStream"] == pytest.approx(600 + STARTUP_S)  # min_duration rules a full run
    assert performance["Offline"] >= 600 + STARTUP_S
    assert all(run.expected_bytes > 0 for run in plan)


def test_quick_rules_shorten_only_the_minimum_duration(tmp_path):
    text = quick_rules_text(DEFAULT_MLPERF_CONF)
    rules = [line for line in text.splitlines() if line and not line.startswith("#")]
    official = [line for line in DEFAULT_MLPERF_CONF.read_text().splitlines() if line and not line.startswith("#")]
    assert sorted(set(official) - set(rules)) == ["seq2cnn.*.min_duration = 600000"]
    assert sorted(set(rules) - set(official)) == ["seq2cnn.*.min_duration = 10000"]
    assert "NOT valid for submission" in text


@pytest.mark.parametrize("args, message", [
    (["--type", "cloud"], "invalid choice: 'cloud'"),
    (["--type", "datacenter"], "--type datacenter, but"),
    (["--retries", "-1"], "--retries must be 0 or more"),
])
def test_bad_input_is_refused_before_anything_runs(args, message, tmp_path):
    result = campaign_cli("--system", str(EXAMPLE_SYSTEM), "--folder", str(tmp_path / "c"), *args)
    assert result.returncode == 2 and message in result.stderr
    assert not (tmp_path / "c").exists()


def test_a_system_yaml_the_checker_would_refuse_is_refused_with_its_key(tmp_path):
    broken = tmp_path / "system.yaml"
    broken.write_text(EXAMPLE_SYSTEM.read_text().replace("status: rdi", "status: someday"))
    result = campaign_cli("--system", str(broken), "--folder", str(tmp_path / "c"))
    assert result.returncode == 2 and "status is 'someday'" in result.stderr and str(broken) in result.stderr


def test_a_folder_of_another_campaign_or_of_other_files_is_refused(tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    Manifest(Fingerprint("0" * 40, "w", "folded", "int8", "m", "u", ("SingleStream", "Offline"), False)).save(other)
    before = (other / MANIFEST_FILE).read_text()
    result = campaign_cli("--system", str(EXAMPLE_SYSTEM), "--folder", str(other), "--dry-run")
    assert result.returncode == 2 and "holds another campaign's manifest" in result.stderr
    assert "commit: " + "0" * 40 in result.stderr and "precision: int8 (this command: fp32)" in result.stderr
    assert (other / MANIFEST_FILE).read_text() == before
    stray = tmp_path / "stray"
    stray.mkdir()
    (stray / "notes.txt").write_text("mine")
    result = campaign_cli("--system", str(EXAMPLE_SYSTEM), "--folder", str(stray), "--dry-run")
    assert result.returncode == 2 and "holds files but no campaign manifest" in result.stderr


def test_too_little_disk_for_the_plan_is_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(preflight, "free_bytes", lambda path: 10 << 20)
    code = command.main(["--system", str(EXAMPLE_SYSTEM), "--folder", str(tmp_path / "c")])
    error = capsys.readouterr().err
    assert code == 2 and "0.0 GB free" in error and "need about" in error
    assert not (tmp_path / "c").exists()


def test_the_dry_run_prints_the_plan_and_runs_nothing(tmp_path):
    result = campaign_cli("--system", str(EXAMPLE_SYSTEM), "--folder", str(tmp_path / "c"), "--dry-run", "--optional")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("Plan: ") and "campaign under the full rules" in lines[0]
    planned = [line for line in lines if line.startswith("  ") and line.strip()[0].isdigit()]
    assert len(planned) == 9 and all(" expected " in line for line in planned)
    assert any(line.startswith("  total expected") for line in lines)
    assert not (tmp_path / "c").exists()


def test_a_campaign_plans_with_any_backend_of_run_py_and_refuses_a_precision_it_lacks(tmp_path):
    result = campaign_cli("--system", str(EXAMPLE_SYSTEM), "--folder", str(tmp_path / "c"), "--dry-run",
                          "--backend", "openvino-folded")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Plan: ") and "openvino-folded fp32" in result.stdout.splitlines()[0]
    refused = campaign_cli("--system", str(EXAMPLE_SYSTEM), "--folder", str(tmp_path / "c"), "--dry-run",
                           "--backend", "onnxruntime-folded", "--precision", "int8")
    assert refused.returncode == 2 and "runs in fp32: drop --precision" in refused.stderr
    assert not (tmp_path / "c").exists()


def test_an_error_of_the_program_s_own_exits_3_with_its_traceback(tmp_path, monkeypatch, capsys, caplog):
    def broken(*args, **kwargs):
        raise TypeError("a bug in the plan")

    monkeypatch.setattr(command, "plan_campaign", broken)
    with caplog.at_level(logging.ERROR, logger="tools.campaign"):
        code = command.main(["--system", str(EXAMPLE_SYSTEM), "--folder", str(tmp_path / "c"), "--dry-run"])
    assert code == 3
    assert "error: TypeError: a bug in the plan (an error of this program's own" in capsys.readouterr().err
    assert any(record.exc_info and record.exc_info[0] is TypeError for record in caplog.records)


def _fake_run_py(tmp_path: Path, monkeypatch, body: str) -> None:
    """The launcher starts ``body`` (Python) in place of run.py; the campaign runs as if the checkout were clean."""
    script = tmp_path / "run.py"
    script.write_text(body)
    monkeypatch.setattr(launcher, "RUN_PY", script)
    commit = git_commit()["commit"]
    monkeypatch.setattr(command, "git_commit", lambda: {"commit": commit, "dirty": False})


def test_a_run_that_ends_with_status_3_stops_the_campaign_with_3(tmp_path, monkeypatch, capsys):
    _fake_run_py(tmp_path, monkeypatch, "import pathlib, sys\n"
                 "pathlib.Path(sys.argv[sys.argv.index('--output-dir') + 1] + '.argv').write_text(' '.join(sys.argv))\n"
                 "sys.exit(3)\n")
    folder = tmp_path / "c"
    code = command.main(["--system", str(EXAMPLE_SYSTEM), "--folder", str(folder)])
    out = capsys.readouterr().out
    assert code == 3
    log_file = folder / "logs" / "SingleStream-accuracy-1.log"
    assert f"[1/6] SingleStream accuracy: run.py ended with status 3; its output is in {log_file}" in out
    assert "(tries: accuracy/performance/TEST01)" in out  # the table
    tries = json.loads((folder / MANIFEST_FILE).read_text())["runs"]["SingleStream-accuracy"]
    assert [(t["folder"], t["exit_status"]) for t in tries] == [("runs/SingleStream-accuracy-1", 3)]
    argv = (folder / "runs" / "SingleStream-accuracy-1.argv").read_text().split()
    assert argv[argv.index("--scenario") + 1] == "SingleStream" and "--accuracy" in argv
    assert argv[argv.index("--mlperf-conf") + 1] == str(DEFAULT_MLPERF_CONF)


def test_a_signal_stops_the_campaign_after_its_run_ends_recorded(tmp_path, monkeypatch, capsys):
    _fake_run_py(tmp_path, monkeypatch, "import time\ntime.sleep(60)\n")
    monkeypatch.setattr(launcher, "STOP_CHILD_STEPS", ((0.2, signal.SIGTERM), (10.0, signal.SIGKILL)))
    folder = tmp_path / "c"
    started = folder / "logs" / "SingleStream-accuracy-1.log"
    timer = threading.Thread(target=lambda: (_wait_for(started.exists, 30, "the first run"), time.sleep(0.5),
                                             os.kill(os.getpid(), signal.SIGTERM)))
    timer.start()
    try:
        code = command.main(["--system", str(EXAMPLE_SYSTEM), "--folder", str(folder)])
    finally:
        timer.join()
    assert code == 143
    assert "campaign stopped by SIGTERM; run the same command again to go on from here" in capsys.readouterr().err
    tries = json.loads((folder / MANIFEST_FILE).read_text())["runs"]["SingleStream-accuracy"]
    assert [t["exit_status"] for t in tries] == [-signal.SIGTERM]  # the child ended, and its status was saved


def test_the_launcher_stops_its_child_when_a_signal_stops_the_parent(tmp_path, monkeypatch):
    monkeypatch.setattr(launcher, "STOP_CHILD_STEPS", ((0.2, signal.SIGTERM), (10.0, signal.SIGKILL)))
    process = launcher.start_run_py([sys.executable, "-c", "import time; time.sleep(60)"], tmp_path / "logs" / "child.log")
    timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGTERM))
    before = signal.getsignal(signal.SIGTERM)
    with launcher.stop_on_signals():
        timer.start()
        with pytest.raises(RunInterrupted) as stop:
            launcher.wait_for_run_py(process)
    assert stop.value.exit_code == 143 and process.returncode == -signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) == before


def _wait_for(predicate, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.2)


def _children_alive(folder: Path) -> list[str]:
    """run.py processes writing into ``folder`` still alive."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(part.endswith(b"run.py") for part in cmdline) and str(folder).encode() in b" ".join(cmdline):
            found.append(proc.name)
    return found


@pytest.mark.slow
def test_a_quick_campaign_killed_in_its_second_run_goes_on_and_its_tree_passes(dataset_path, tmp_path):
    folder = tmp_path / "campaign"
    # 10 s TEST01 runs on a shared machine miss the 10 % speed check now and then: retried as a user would
    args = [sys.executable, "-m", "tools.campaign", "--system", str(EXAMPLE_SYSTEM), "--quick", "--folder", str(folder),
            "--dataset-path", str(dataset_path), "--retries", "4"]
    first = subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    second_record = folder / "runs" / "SingleStream-performance-1" / "run.json"  # written as the run starts
    try:
        _wait_for(lambda: second_record.is_file() or first.poll() is not None,
                  CAMPAIGN_TIMEOUT_S, "the campaign's second run")
        assert first.poll() is None, first.communicate()[0]
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
    _wait_for(lambda: not _children_alive(folder), 120, "the killed campaign's run to end")
    manifest = json.loads((folder / MANIFEST_FILE).read_text())
    assert [t["folder"] for t in manifest["runs"]["SingleStream-accuracy"]] == ["runs/SingleStream-accuracy-1"]

    again = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=CAMPAIGN_TIMEOUT_S)
    out = again.stdout
    assert again.returncode == 0, out + again.stderr
    assert "[1/6] SingleStream accuracy: reused runs/SingleStream-accuracy-1 (PASS" in out
    assert ("[2/6] SingleStream performance: runs/SingleStream-performance-1 not reused "
            "(status 'interrupted': RunInterrupted: SIGTERM received)") in out
    manifest = json.loads((folder / MANIFEST_FILE).read_text())
    assert len(manifest["runs"]["SingleStream-accuracy"]) == 1
    performance_tries = [t["folder"] for t in manifest["runs"]["SingleStream-performance"]]
    assert performance_tries[:2] == ["runs/SingleStream-performance-1", "runs/SingleStream-performance-2"]
    # a retried TEST01 is made with its performance run again: one TEST01 per performance try after the kill
    assert len(manifest["runs"]["SingleStream-TEST01"]) == len(performance_tries) - 1
    assert json.loads((folder / "runs/SingleStream-performance-1/run.json").read_text())["status"] == "interrupted"
    records = sorted((folder / "submission").rglob("run.json"))
    kinds = sorted((json.loads(r.read_text())["scenario"], json.loads(r.read_text())["kind"]) for r in records)
    assert kinds == sorted((s, k) for s in ("SingleStream", "Offline") for k in KINDS)
    assert "Checker  : OK: 2 scenario(s) checked" in out and "NOT valid for submission" in out
    assert (folder / "report" / "report.html").is_file()
    table = out[out.index("scenario  "):]
    assert "SingleStream" in table and "Offline" in table and "PASS" in table

"""Every tool's command line ends as ``run.py`` does (:func:`common.errors.run_command`): bad input exits 2 with an
``error:`` line, an error of the program's own (a bug) exits 3 with its traceback logged.

Each tool runs in this process (its ``main``), on inputs that fail before any data is read or any LoadGen run
starts: a folder that does not exist, an output that exists; the bug is planted by making one of the tool's own
functions raise ``TypeError``.
"""

from __future__ import annotations

import importlib
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from common.errors import EXIT_BAD_INPUT, EXIT_INFERENCE_FAILED

REPO = Path(__file__).resolve().parent.parent
EXAMPLE_SYSTEM = REPO / "configs" / "systems" / "example.yaml"
PLANTED = "planted bug"


@dataclass(frozen=True)
class Tool:
    """A command line: its module, arguments it refuses (bad input), and the function of its own that the bug is
    planted in, with arguments that reach that function."""

    module: str
    bad_input: Callable[[Path], list[str]]
    buggy: str
    reaching: Callable[[Path], list[str]]


def existing(path: Path) -> Path:
    path.write_text("already here\n")
    return path


def accuracy_log(folder: Path) -> Path:
    folder.mkdir(exist_ok=True)
    (folder / "mlperf_log_accuracy.json").write_text("[]\n")
    return folder / "mlperf_log_accuracy.json"


def beside_its_own_report(tmp: Path) -> list[str]:
    """An accuracy log whose run's own ``accuracy.txt`` is there: refused without ``--output``."""
    log_path = accuracy_log(tmp / "run")
    existing(log_path.parent / "accuracy.txt")
    return ["--mlperf-accuracy-file", str(log_path)]


TOOLS = {
    "check_submission": Tool("tools.submission.checker", lambda tmp: [str(tmp / "missing")],
                             "submitter_dirs", lambda tmp: [str(tmp)]),
    "submission": Tool("tools.submission.pack",
                       lambda tmp: ["--runs", str(tmp / "missing"), "--system", str(EXAMPLE_SYSTEM),
                                    "--output", str(tmp / "tree")],
                       "gather_runs",
                       lambda tmp: ["--runs", str(tmp), "--system", str(EXAMPLE_SYSTEM), "--output", str(tmp / "tree")]),
    "report": Tool("tools.report.page", lambda tmp: [str(tmp / "missing")], "build_page", lambda tmp: [str(tmp)]),
    "system_description": Tool("tools.submission.system_description", lambda tmp: [str(tmp / "missing.yaml")],
                               "load_system_config", lambda tmp: [str(EXAMPLE_SYSTEM)]),
    "accuracy_imdb": Tool("tools.accuracy_imdb", beside_its_own_report, "resolved_reference",
                          lambda tmp: ["--mlperf-accuracy-file", str(accuracy_log(tmp / "run")),
                                       "--output", str(tmp / "accuracy.txt")]),
    "verify_test01": Tool("tools.verify_test01",
                          lambda tmp: ["--compliance-run", str(tmp / "c"), "--accuracy-run", str(tmp / "a"),
                                       "--performance-run", str(tmp / "p")],
                          "verify_test01",
                          lambda tmp: ["--compliance-run", str(tmp / "c"), "--accuracy-run", str(tmp / "a"),
                                       "--performance-run", str(tmp / "p")]),
    "bench": Tool("tools.bench.backends", lambda tmp: ["--output", str(existing(tmp / "bench.json"))],
                  "load_data", lambda tmp: ["--output", str(tmp / "bench.json")]),
    "bench.harness": Tool("tools.bench.harness", lambda tmp: ["--output", str(existing(tmp / "harness.json"))],
                          "measure", lambda tmp: ["--paths", "arrays", "--workers", "1", "--repeats", "1"]),
    "bench_ray": Tool("tools.bench.ray", lambda tmp: ["--dataset-path", str(tmp / "missing.tar.gz")],
                      "resolve_dataset_path", lambda tmp: []),
}


@pytest.fixture(autouse=True)
def _environment_kept(monkeypatch):
    """The Ray bench sets OMP_WAIT_POLICY for the process: put back as it was after each test."""
    monkeypatch.setenv("OMP_WAIT_POLICY", os.environ.get("OMP_WAIT_POLICY", "PASSIVE"))


@pytest.mark.parametrize("name", sorted(TOOLS))
def test_bad_input_exits_2_with_an_error_line(name, tmp_path, capsys, caplog):
    tool = TOOLS[name]
    main = importlib.import_module(tool.module).main
    assert main(tool.bad_input(tmp_path)) == EXIT_BAD_INPUT
    error = capsys.readouterr().err
    assert error.startswith("error: ") and "Traceback" not in error, error
    assert not [record for record in caplog.records if record.exc_info], "bad input logs no traceback"


@pytest.mark.parametrize("name", sorted(TOOLS))
def test_a_bug_exits_3_with_its_traceback_logged(name, tmp_path, capsys, caplog, monkeypatch):
    tool = TOOLS[name]
    module = importlib.import_module(tool.module)

    def planted(*args, **kwargs):
        raise TypeError(PLANTED)

    monkeypatch.setattr(module, tool.buggy, planted)
    with caplog.at_level(logging.ERROR):
        assert module.main(tool.reaching(tmp_path)) == EXIT_INFERENCE_FAILED
    assert f"error: TypeError: {PLANTED}" in capsys.readouterr().err
    logged = [record for record in caplog.records if record.exc_info]
    assert len(logged) == 1 and isinstance(logged[0].exc_info[1], TypeError), caplog.text
    assert "Traceback" in caplog.text and PLANTED in caplog.text



def test_a_reader_that_goes_away_ends_a_command_quietly_as_sigpipe_would():
    """``python -m tools.campaign ... | head -1``: the command's next write fails with BrokenPipeError; it ends
    with 128 + SIGPIPE and no error line blaming a path or the disk."""
    body = ("import logging, sys\nfrom common.errors import run_command\n"
            "def body():\n    raise BrokenPipeError(32, 'Broken pipe')\n"
            "sys.exit(run_command(body, logging.getLogger('tool')))\n")
    done = subprocess.run([sys.executable, "-c", body], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 128 + signal.SIGPIPE
    assert done.stderr == ""

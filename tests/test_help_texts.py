"""Every tool's ``--help`` says values, not the names of constants, and shows no reStructuredText markup."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

from common.text import plain

REPO = Path(__file__).resolve().parents[1]
#: The module whose docstring is each command's --help description, and the command.
COMMANDS = {
    "run.py": [sys.executable, "run.py"],
    "model/export_onnx.py": [sys.executable, "-m", "model.export_onnx"],
    "tools/accuracy_imdb.py": [sys.executable, "-m", "tools.accuracy_imdb"],
    "tools/bench/backends.py": [sys.executable, "-m", "tools.bench"],
    "tools/bench/ray.py": [sys.executable, "-m", "tools.bench_ray"],
    "tools/campaign/command.py": [sys.executable, "-m", "tools.campaign"],
    "tools/report/page.py": [sys.executable, "-m", "tools.report"],
    "tools/soak/soak.py": [sys.executable, "-m", "tools.soak"],
    "tools/submission/checker.py": [sys.executable, "-m", "tools.check_submission"],
    "tools/submission/pack.py": [sys.executable, "-m", "tools.submission"],
    "tools/submission/system_description.py": [sys.executable, "-m", "tools.system_description"],
    "tools/verify_test01.py": [sys.executable, "-m", "tools.verify_test01"],
}
_DATA_ROLE = re.compile(r":data:`~?([^`]+)`")


def test_plain_drops_markup_and_says_the_values_it_is_given():
    doc = "at most :data:`MAX_GROWTH` of :mod:`tools.soak`, in ``soak.json``; see :func:`~a.b`"
    assert plain(doc, {"MAX_GROWTH": "5%"}) == "at most 5% of tools.soak, in soak.json; see a.b"


@pytest.mark.parametrize("module", sorted(COMMANDS))
def test_help_names_no_constant_and_shows_no_markup(module):
    doc = ast.get_docstring(ast.parse((REPO / module).read_text()), clean=False) or ""
    constants = {name.rsplit(".", 1)[-1] for name in _DATA_ROLE.findall(doc)}
    shown = subprocess.run([*COMMANDS[module], "--help"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr
    typed = " ".join(["python", *COMMANDS[module][1:]])
    assert shown.stdout.startswith(f"usage: {typed} "), shown.stdout  # the command as a user types it
    assert "``" not in shown.stdout and not re.search(r":[a-z]+:`", shown.stdout), shown.stdout
    assert [name for name in constants if re.search(rf"\b{name}\b", shown.stdout)] == [], shown.stdout

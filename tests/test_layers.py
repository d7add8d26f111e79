"""The layers of the code: arrows point down (run.py -> tools/ -> sut/ -> model/ -> qsl/), and a backend's
heavy dependencies load only when that backend is chosen."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
LAYERS = ["qsl", "model", "sut", "tools"]  # each may import those before it, never those after it


def imported_packages(path: Path) -> set[str]:
    """The top-level names a module imports."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("layer", LAYERS)
def test_a_layer_imports_no_layer_above_it(layer):
    above = set(LAYERS[LAYERS.index(layer) + 1:]) | {"run"}
    offenders = {str(path.relative_to(REPO)): sorted(imported_packages(path) & above)
                 for path in sorted((REPO / layer).rglob("*.py")) if imported_packages(path) & above}
    assert offenders == {}


def test_run_py_uses_the_library_not_the_tools():
    assert "tools" not in imported_packages(REPO / "run.py")


def test_numba_and_the_folded_kernel_load_only_with_the_folded_backend():
    code = ("import sys, run; from model.backends import create_backend; "
            "print('numba' in sys.modules, 'model.folded' in sys.modules)")
    loaded = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert loaded.stdout.split() == ["False", "False"], loaded.stderr

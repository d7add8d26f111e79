"""The layers of the code: arrows point down (run.py and tools/, side by side at the top, -> sut/ -> readback/ ->
model/ -> qsl/ -> common/; run.py imports no tool), no module imports itself back through others, reading a run folder loads no runtime, only the Ray
executor knows Ray, and a backend's heavy dependencies load only when that backend is chosen."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
LAYERS = ["common", "qsl", "model", "readback", "sut", "tools"]  # each may import those before it, never after
#: what loads only when the folded backend is created: numba, the folded tables, their tiles and the CPU kernel
FOLDED_BACKEND_ONLY = ("numba", "model.folded", "model.folded_tiles", "model.folded_cpu")


def imported_modules(path: Path) -> set[str]:
    """The modules of this project that a module imports (``a.b`` for ``from a.b import c`` and ``import a.b``)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return {name for name in names if (REPO / (name.replace(".", "/") + ".py")).is_file()}


def project_modules() -> dict[str, Path]:
    return {".".join(path.relative_to(REPO).with_suffix("").parts): path
            for layer in LAYERS for path in sorted((REPO / layer).rglob("*.py")) if path.name != "__init__.py"}


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
            f"print(sorted(name for name in {FOLDED_BACKEND_ONLY!r} if name in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert loaded.stdout.strip() == "[]", loaded.stderr


def test_no_module_imports_itself_back_through_others():
    modules = project_modules()
    graph = {name: imported_modules(path) & modules.keys() for name, path in modules.items()}
    circles = []

    def visit(name: str, trail: list[str]) -> None:
        for imported in graph[name]:
            if imported in trail:
                circles.append(" -> ".join(trail[trail.index(imported):] + [imported]))
            elif imported not in done:
                visit(imported, trail + [imported])
        done.add(name)

    done: set[str] = set()
    for name in graph:
        if name not in done:
            visit(name, [name])
    assert circles == []


def test_reading_a_run_folder_back_loads_no_runtime():
    """The report, the packer and the checker read runs through readback/ alone: no LoadGen, torch, numba, Ray."""
    readers = " ".join(f"import {name};" for name in sorted(project_modules()) if name.startswith("readback."))
    code = f"import sys; {readers} print(sorted(m for m in ('mlperf_loadgen', 'torch', 'numba', 'ray') if m in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert loaded.stdout.strip() == "[]", loaded.stderr


def test_only_the_ray_executor_knows_ray():
    """Outside sut/ray_*.py, nothing imports Ray or the Ray modules, but the runner's one choice of executor
    and the Ray benchmark tool."""
    allowed = {"sut.runner", "tools.bench.ray", "tools.bench_ray"}
    knows_ray = {name: sorted(imported for imported in imported_modules(path) | imported_packages(path)
                              if imported == "ray" or imported.startswith("sut.ray_"))
                 for name, path in project_modules().items()
                 if not name.startswith("sut.ray_") and name not in allowed}
    assert {name: found for name, found in knows_ray.items() if found} == {}


def test_a_local_run_loads_no_ray_module():
    code = ("import sys, run, sut.runner; from sut.config import RunConfig; "
            "sut.runner.executor_class(RunConfig()); "
            "print(sorted(m for m in sys.modules if m == 'ray' or m.startswith('sut.ray_')))")
    loaded = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert loaded.stdout.strip() == "[]", loaded.stderr


def test_the_command_line_is_parsed_and_checked_before_torch_numba_or_the_sut_load():
    """--help and a mistyped option answer without loading the runtime (it took 4 s before they could)."""
    probe = ("import sys, run; run.parse_args(['--scenario', 'Offline', '--precision', 'int8']); "
             "print(sorted(m for m in ('torch', 'numba', 'ray', 'sut.runner', 'sut.system') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "[]", result.stdout + result.stderr[-2000:]

"""The Pythons the project installs on: setup.py's python_requires, and make refusing the others before it
installs anything."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def supported_pythons() -> list[str]:
    """The Makefile's SUPPORTED_PYTHONS."""
    return re.search(r"^SUPPORTED_PYTHONS := (.+)$", (REPO / "Makefile").read_text(), re.M)[1].split()


def test_setup_py_and_the_makefile_name_the_same_pythons_and_this_one_among_them():
    low, high = re.search(r'python_requires=">=3\.(\d+),<3\.(\d+)"', (REPO / "setup.py").read_text()).groups()
    assert supported_pythons() == [f"3.{minor}" for minor in range(int(low), int(high))]
    assert f"{sys.version_info.major}.{sys.version_info.minor}" in supported_pythons()


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
@pytest.mark.parametrize("version", ["3.10", "3.14"])
def test_make_refuses_a_python_without_wheels_before_installing_anything(version, tmp_path):
    for name in ("Makefile", "setup.py"):
        shutil.copy(REPO / name, tmp_path / name)
    python = tmp_path / f"python{version}"
    python.write_text(f"#!/bin/sh\necho {version}\n")  # answers the version question as that Python would
    python.chmod(0o755)
    done = subprocess.run(["make", "install", f"PYTHON={python}"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2
    assert (f"{python} is Python {version}; this project installs on Python {' '.join(supported_pythons())}"
            in done.stderr)
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(["Makefile", "setup.py", python.name])

"""Where a run came from: package versions, git commit, machine, for ``run.json``."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("torch", "numpy", "spacy", "mlcommons-loadgen", "safetensors", "pyyaml")


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for package in PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


#: set by the Docker image (its build argument SOURCE_COMMIT): the commit its code was copied from
SOURCE_COMMIT_VARIABLE = "SEQ2CNN_SOURCE_COMMIT"


def git_commit() -> dict[str, object]:
    """The checkout's commit and whether it had uncommitted changes. Outside git (a Docker image) the commit is
    ``$SEQ2CNN_SOURCE_COMMIT`` when the image was built with it, else ``unknown``; ``dirty`` is then ``None``
    (not known)."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=True, timeout=10).stdout.strip()

    try:
        return {"commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}
    except (OSError, subprocess.SubprocessError):
        return {"commit": os.environ.get(SOURCE_COMMIT_VARIABLE) or "unknown", "dirty": None}


def processor_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict[str, object]:
    return {
        "hostname": platform.node(),
        "os": platform.platform(),
        "processor": processor_name(),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
    }

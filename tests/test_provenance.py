"""Where a run came from, as run.json records it: the commit inside and outside a git checkout."""

from __future__ import annotations

import subprocess

import readback.provenance as provenance


def test_a_checkout_records_its_head_commit():
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=provenance.REPO, capture_output=True, text=True,
                          check=True).stdout.strip()
    recorded = provenance.git_commit()
    assert recorded["commit"] == head and recorded["dirty"] in (True, False)


def test_outside_git_the_commit_is_the_one_the_docker_image_was_built_from(monkeypatch):
    """A Docker image has no .git: its build argument SOURCE_COMMIT (an environment variable in the image) is the
    commit; without it the commit is 'unknown'. Whether the code was changed is then not known (None)."""
    def no_git(*args, **kwargs):
        raise FileNotFoundError("git")

    monkeypatch.setattr(provenance.subprocess, "run", no_git)
    monkeypatch.setenv(provenance.SOURCE_COMMIT_VARIABLE, "0123456789abcdef0123456789abcdef01234567")
    assert provenance.git_commit() == {"commit": "0123456789abcdef0123456789abcdef01234567", "dirty": None}
    monkeypatch.delenv(provenance.SOURCE_COMMIT_VARIABLE)
    assert provenance.git_commit() == {"commit": "unknown", "dirty": None}

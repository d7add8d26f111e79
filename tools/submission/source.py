"""The code of a submission (``src/``): the git commit that made its runs, extracted from the checkout."""

from __future__ import annotations

import io
import logging
import subprocess
import tarfile
from collections import Counter
from pathlib import Path, PurePosixPath

from readback.provenance import REPO
from tools.submission.runs import RunFolder, SubmissionError

log = logging.getLogger(__name__)

#: Weights are data, not code: src/ leaves them out (measurements.json names them with their sha256).
SOURCE_EXCLUDED_SUFFIXES = (".safetensors",)


def _git(*args: str) -> str:
    """The output of ``git args`` in the project's checkout; SubmissionError when git cannot answer."""
    try:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=True, timeout=60).stdout
    except subprocess.CalledProcessError as error:
        raise SubmissionError(f"git {' '.join(args)} failed in {REPO}: {error.stderr.strip()}") from None
    except (OSError, subprocess.SubprocessError) as error:
        raise SubmissionError(f"cannot run git in {REPO} to copy the code into src/ ({error}): install git") from None


def source_commit(runs: list[RunFolder], given: str | None = None) -> str:
    """The git commit whose code ``src/`` holds: ``given`` (``--source-commit``), else the runs' own, else
    the latest run's when they differ. Runs that recorded none (made outside a git checkout) need ``given``."""
    commits = Counter(str(run.record.git.get("commit", "unknown")) for run in runs)
    known = sorted(commit for commit in commits if commit != "unknown")
    if given is not None:
        commit = _git("rev-parse", "--verify", f"{given}^{{commit}}").strip()
        if known and known != [commit]:
            log.warning("--source-commit %s, but the runs recorded commit(s) %s", commit, ", ".join(known))
    else:
        latest = max(runs, key=lambda run: run.record.started_utc)
        commit = str(latest.record.git.get("commit", "unknown"))
        if len(commits) > 1:
            log.warning("the runs were made at %d commits (%s); src/ holds the latest run's, %s",
                        len(commits), ", ".join(f"{c} ({n} runs)" for c, n in commits.items()), commit)
        if commit == "unknown":
            raise SubmissionError(
                "the latest run records no git commit (it was made outside a git checkout), so which code made the "
                "runs is unknown: pass --source-commit with the commit of the code that made them")
    dirty = [str(run.path) for run in runs if run.record.git.get("dirty")]
    if dirty:
        log.warning("run(s) %s were made with uncommitted changes, which src/ (commit %s) does not hold",
                    ", ".join(dirty), commit)
    return commit


def write_source(target: Path, commit: str) -> int:
    """Extract the project's tracked files at ``commit`` into ``target``, without dot-files and weights.

    Returns the number of files written.
    """
    excluded = [f":(exclude)*{suffix}" for suffix in SOURCE_EXCLUDED_SUFFIXES]
    try:
        archive = subprocess.run(["git", "archive", "--format=tar", commit, "--", ".", *excluded], cwd=REPO,
                                 capture_output=True, check=True, timeout=120).stdout
    except subprocess.CalledProcessError as error:
        raise SubmissionError(
            f"cannot read the code of commit {commit} from the git checkout {REPO} "
            f"({error.stderr.decode(errors='replace').strip()}): pack from the checkout that made the runs") from None
    except (OSError, subprocess.SubprocessError) as error:
        raise SubmissionError(f"cannot run git in {REPO} to copy the code into src/ ({error}): install git") from None
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        members = [
            member for member in tar.getmembers()
            if member.isfile()
            and not any(part.startswith(".") for part in PurePosixPath(member.name).parts)
        ]
        tar.extractall(target, members=members, filter="data")
    return len(members)

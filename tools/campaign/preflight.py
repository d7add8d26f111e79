"""What a campaign checks before its first run: the system YAML as the submission checker would read it, the
folder (new, or one of this same campaign), and the free disk for the runs still to make.

Each check raises :class:`~tools.campaign.manifest.CampaignError` (bad input, exit 2) with what to do; none
writes into the campaign's folder.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from common.files import sha256_of_file, write_text_atomically
from model.paths import DEFAULT_WEIGHTS
from readback.provenance import git_commit
from sut.settings import DEFAULT_MLPERF_CONF
from tools.campaign.manifest import CampaignError, Fingerprint, Manifest, load_manifest
from tools.campaign.plan import PlannedRun, needed_bytes
from tools.submission import layout
from tools.submission.checker import SubmissionChecker
from tools.submission.system_description import SystemConfig, system_description


def fingerprint_now(backend: str, precision: str, mlperf_conf: Path, user_conf: Path, scenarios: tuple[str, ...],
                    quick: bool) -> Fingerprint:
    """The fingerprint of a campaign started now from this checkout."""
    git = git_commit()
    return Fingerprint(str(git["commit"]), sha256_of_file(DEFAULT_WEIGHTS), backend, precision,
                       sha256_of_file(mlperf_conf), sha256_of_file(user_conf), scenarios, quick)


def check_system(config: SystemConfig, asked_type: str | None) -> str:
    """The system type to plan for; :class:`CampaignError` when ``--type`` contradicts the YAML or the system
    description would not pass the submission checker."""
    if asked_type is not None and layout.SYSTEM_TYPES[asked_type] != layout.SYSTEM_TYPES[config.system_type]:
        raise CampaignError(f"--type {asked_type}, but {config.path} says system_type: {config.system_type}; "
                            "make them agree (the tree's scenarios follow the system type)")
    with tempfile.TemporaryDirectory(prefix="campaign-system-") as scratch:
        base = Path(scratch) / config.division / config.submitter
        path = base / layout.system_file(config.system_id)
        path.parent.mkdir(parents=True)
        write_text_atomically(path, json.dumps(system_description(config), indent=2) + "\n")
        checker = SubmissionChecker(DEFAULT_MLPERF_CONF)
        checker.check_description(path, config.system_id, base)
    if checker.problems:
        listed = "; ".join(problem.message for problem in checker.problems)
        raise CampaignError(f"the system description from {config.path} would fail the submission checker: {listed}")
    return config.system_type


def check_folder(folder: Path, fingerprint: Fingerprint) -> Manifest:
    """The manifest to go on with: the folder's own when it holds this campaign, a new one for a new or empty
    folder; :class:`CampaignError` for a folder of another campaign or of other files."""
    if folder.exists() and not folder.is_dir():
        raise CampaignError(f"--folder {folder} is a file; pass a folder for the campaign")
    manifest = load_manifest(folder) if folder.is_dir() else None
    if manifest is None:
        if folder.is_dir() and any(folder.iterdir()):
            raise CampaignError(f"--folder {folder} holds files but no campaign manifest; pass a new or empty folder")
        return Manifest(fingerprint)
    differences = fingerprint.differences(manifest.fingerprint)
    if differences:
        raise CampaignError(f"--folder {folder} holds another campaign's manifest ({'; '.join(differences)}); its runs "
                            "cannot go into this tree: pass another --folder, or run that campaign's own command")
    return manifest


def free_bytes(path: Path) -> int:
    """Bytes free on the disk that holds ``path``."""
    return shutil.disk_usage(path).free


def check_disk(folder: Path, plan: list[PlannedRun], manifest: Manifest) -> None:
    """:class:`CampaignError` when the disk holding ``folder`` has less room than the runs still to make need."""
    existing = folder if folder.exists() else next(parent for parent in folder.parents if parent.exists())
    left = [run for run in plan if not any(one.good for one in manifest.runs.get(run.name, []))]
    needed, free = needed_bytes(left), free_bytes(existing)
    if free < needed:
        raise CampaignError(f"the disk of {existing} has {free / 1e9:.1f} GB free; the plan's runs and tree need about "
                            f"{needed / 1e9:.1f} GB: free some space or pass a --folder on another disk")

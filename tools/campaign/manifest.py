"""A campaign's manifest (``campaign.json`` in its folder): what the campaign is, and every try of every run.

The campaign is identified by its :class:`Fingerprint`: the git commit of the checkout, the weights' sha256,
the backend and table precision, the sha256 of the ``mlperf.conf`` and ``user.conf`` the runs load, the
scenarios, and whether it is a quick campaign. A folder whose manifest holds another fingerprint holds another
campaign: it is refused (:class:`CampaignError`), so that runs of different code or settings never meet in
one tree.

Each run (``<scenario>-<kind>``) has a list of tries, each with its own folder (``runs/<name>-<n>``, never
reused or deleted) and what came of it (:class:`Try`). A try is reusable after a stop when its folder holds a
finished ``run.json`` of this fingerprint whose outcome is a good one (:func:`tools.campaign.outcome.outcome_of`);
anything else (a run stopped by Ctrl-C, SIGKILL or a reboot, a failed one) is made again as a new try.

The manifest is written atomically after every change (JSON, no pickle): a stop at any moment leaves the last
complete state.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from common.errors import BadInputError
from common.files import write_text_atomically

MANIFEST_FILE = "campaign.json"
#: the manifest's format; a campaign refuses a folder with another
MANIFEST_VERSION = 1


class CampaignError(BadInputError):
    """A campaign that cannot start or go on as asked: the message says what, where and what to do."""


@dataclass(frozen=True)
class Fingerprint:
    """What every run of one campaign shares; runs are reused only under the same fingerprint."""

    commit: str
    weights_sha256: str
    backend: str
    precision: str
    mlperf_conf_sha256: str
    user_conf_sha256: str
    scenarios: tuple[str, ...]
    quick: bool

    def differences(self, other: Fingerprint) -> list[str]:
        """Each field where ``other`` differs, as ``name: self's value (other: other's)``."""
        mine, theirs = asdict(self), asdict(other)
        return [f"{key}: {theirs[key]} (this command: {mine[key]})" for key in mine if mine[key] != theirs[key]]


@dataclass
class Try:
    """One try of a run: its folder (relative to the campaign folder), run.py's exit status (None while it
    runs or when the campaign stopped during it), and the outcome read from its folder."""

    folder: str
    exit_status: int | None = None
    outcome: str | None = None
    good: bool | None = None
    #: for TEST01: the accuracy and performance runs it was verified against (folders, as above)
    baselines: list[str] = field(default_factory=list)


@dataclass
class Manifest:
    """The campaign's state: its fingerprint and, per run name, its tries in order."""

    fingerprint: Fingerprint
    runs: dict[str, list[Try]] = field(default_factory=dict)

    def tries(self, name: str) -> list[Try]:
        return self.runs.setdefault(name, [])

    def save(self, folder: Path) -> None:
        data = {"version": MANIFEST_VERSION, "fingerprint": asdict(self.fingerprint),
                "runs": {name: [asdict(one) for one in tries] for name, tries in self.runs.items()}}
        write_text_atomically(Path(folder) / MANIFEST_FILE, json.dumps(data, indent=2) + "\n")


def load_manifest(folder: Path) -> Manifest | None:
    """The manifest in ``folder``; None when it has none. :class:`CampaignError` for one that cannot be read."""
    path = Path(folder) / MANIFEST_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CampaignError(f"{path} cannot be read ({error}); it is not a manifest this tool wrote: "
                            "choose another --folder") from None
    if not isinstance(data, dict) or data.get("version") != MANIFEST_VERSION:
        raise CampaignError(f"{path} is not a version {MANIFEST_VERSION} campaign manifest: choose another --folder")
    try:
        printed = dict(data["fingerprint"])
        printed["scenarios"] = tuple(printed["scenarios"])
        fingerprint = Fingerprint(**printed)
        runs = {str(name): [Try(**one) for one in tries] for name, tries in data["runs"].items()}
    except (KeyError, TypeError, ValueError) as error:
        raise CampaignError(f"{path} is damaged ({type(error).__name__}: {error}): choose another --folder") from None
    return Manifest(fingerprint, runs)

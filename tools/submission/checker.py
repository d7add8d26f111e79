"""Check a submission tree written by :mod:`tools.submission` and report every problem with its path.

    python -m tools.check_submission SUBMISSION_DIR [--mlperf-conf configs/mlperf.conf] [--labels]

``SUBMISSION_DIR`` is the tree's root or one ``<division>/<submitter>``
folder in it. The tree is held against the MLPerf Inference rules of
:data:`~tools.submission.layout.RULES_VERSION` (the layout of
:mod:`tools.submission.layout`), checking what MLPerf's own submission checker
checks on such a tree, so that a submitter learns it here first:

- the tree: nothing at its root but division folders and ``*.md``/``*.pdf``
  files, no file directly in a division folder; below a submitter: no file or
  folder whose name starts with ``.`` or holds a space, no ``__pycache__``, no
  empty folder, no broken link, no file over 50 MB; ``src/`` with the code,
  ``documentation/calibration.md``, ``documentation/submission.json`` naming
  the rules version; a system description for every system with results and
  results for every system description;
- the system description: every key the rules ask for, a meaningful value
  where they ask for one, a valid status and system type, the submitter and
  division of its folders, no network-division keys in another division;
- the scenarios: those the benchmark requires for the system type
  (:data:`~tools.submission.layout.REQUIRED_SCENARIOS`), none it does not know;
- per scenario: ``measurements.json`` with its keys, ``user.conf`` and
  ``README.md`` not empty, a ``mlperf.conf`` byte for byte the
  ``--mlperf-conf`` rules; exactly LoadGen's files in each log folder;
- performance and TEST01 runs: LoadGen's errors, the logged settings against
  the rules (LoadGen's built-in rules, then ``--mlperf-conf``: minimum
  duration, minimum query count or Offline samples per query, latency
  percentile and bound, samples per query, performance sample count, random
  seeds), the LoadGen series of the rules version, early stopping met; a
  performance run LoadGen judged INVALID (with its failed checks); a quick run
  (from the project's record, ``documentation/runs/.../run.json``);
- accuracy: the ``accuracy=`` figure of ``accuracy.txt`` at or above 99% of
  the fp32 reference, its ``RESULT`` verdict, a ``hash=`` line, a truncated
  ``mlperf_log_accuracy.json`` (at most 10 KiB), all 25,000 test reviews in the
  run's QSL. When the full log is still where the tree's record says (the run
  folder), its sha256 must be the stated hash, the kept bytes its truncated
  form, and with ``--labels`` (or ``--dataset-path``) the accuracy is
  recomputed from it against the test labels;
- TEST01: ``verify_accuracy.txt`` with a ``TEST PASS`` line,
  ``verify_performance.txt`` with ``TEST PASS``, its truncated accuracy log
  with its hash.

``--rehearsal`` checks a tree of quick runs (``run.py --time``, a rehearsal
of the pipeline before the real runs): the findings a quick run explains
(the quick-run flag, a duration or query count under the rules' minimum,
early stopping not met, a failed TEST01 speed check) are listed as
expected; everything else (the tree, the documents, the system description,
the scenarios, accuracy, TEST01's accuracy check, an INVALID run) counts as
without it. MLPerf's own checker refuses such a tree all the same.

Output: one line ``PATH: problem`` per problem (in a rehearsal, ``expected of
a quick run: PATH: finding`` before them), then a summary line. Exit status 0
when there is no problem, 1 when there is any, 2 when the folder is not a
submission tree or an option is unusable, 3 for an error of this program's
own (its traceback is logged).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from common.errors import BadInputError, run_command
from common.text import plain, with_article
from qsl.locations import DATASET_LOOKUP_HELP
from qsl.reviews import checked_test_labels, dataset_root
from readback.benchmark import MODEL_NAME, SCENARIOS
from readback.loadgen_log import ACCURACY_FILE
from sut.settings import DEFAULT_MLPERF_CONF
from tools.submission import layout
from tools.submission.scenario_checks import (
    ScenarioCheck,
    benchmark_rules,
    file_names,
    rule_violations,
)
from tools.submission.system_description import DESCRIPTION_KEYS, MEANINGFUL_KEYS

#: The checker's command line and classes, and the rules a run's settings are held against (as
#: ``tools.check_submission`` had them).
__all__ = ["Problem", "SubmissionChecker", "UsageError", "benchmark_rules", "check_tree", "main", "rule_violations",
           "submitter_dirs"]

log = logging.getLogger(__name__)

NOT_SCENARIO = "(system)"  # the scenario label of problems outside any scenario
STATUSES = ("available", "preview", "rdi")
#: Keys of the network division's system descriptions: their presence elsewhere changes what is required.
NETWORK_KEY = "is_network"
#: Files the rules allow at the tree's root besides the division folders (by suffix).
ROOT_FILE_SUFFIXES = (".md", ".pdf")


class UsageError(BadInputError):
    """The folder is not a submission tree, or an option cannot be used."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the submission, where it is, and which system and scenario it concerns."""

    path: Path
    message: str
    system: str
    scenario: str = NOT_SCENARIO
    #: a finding a quick run explains (too short, too few queries, a noisy TEST01 speed check)
    quick: bool = False

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


def submitter_dirs(root: Path) -> list[Path]:
    """The ``<division>/<submitter>`` folders of a tree: ``root`` itself or those two levels below it."""
    if (root / "systems").is_dir() or (root / "results").is_dir():
        return [root]
    found = sorted({path.parent for name in ("systems", "results") for path in root.glob(f"*/*/{name}") if path.is_dir()})
    if not found:
        raise UsageError(
            f"{root} is not a submission tree: neither it nor any <division>/<submitter> folder below it has systems/ "
            "or results/; pass the --output folder of 'python -m tools.submission'"
        )
    return found


def _subfolders(path: Path) -> set[str]:
    return {child.name for child in path.iterdir() if child.is_dir()} if path.is_dir() else set()


def _is_integer(value: object) -> bool:
    try:
        int(str(value))
    except ValueError:
        return False
    return True


class SubmissionChecker:
    """Checks ``<division>/<submitter>`` folders against the rules file and, if given, the test labels."""

    def __init__(self, mlperf_conf: Path, labels: np.ndarray | None = None, rehearsal: bool = False):
        self.mlperf_conf = Path(mlperf_conf)
        #: a rehearsal tree (of quick runs): what quick runs explain is expected, not a problem
        self.rehearsal = rehearsal
        try:
            self.reference_conf = self.mlperf_conf.read_bytes()
        except OSError as error:
            raise UsageError(f"cannot read the rules file {mlperf_conf}: {error.strerror or error}; pass --mlperf-conf") from None
        self.labels = labels
        self.problems: list[Problem] = []
        #: in a rehearsal: the findings quick runs explain
        self.expected: list[Problem] = []
        self.scenarios: list[tuple[str, str]] = []  # (system, scenario) checked
        self.rejected: list[tuple[str, str]] = []  # (system, scenario folder) not allowed for its system type
        #: with labels: one line per accuracy recomputed from its full log
        self.recomputed: list[str] = []

    def add(self, path: Path, message: str, system: str, scenario: str = NOT_SCENARIO, quick: bool = False) -> None:
        problem = Problem(path, message, system, scenario, quick)
        (self.expected if quick and self.rehearsal else self.problems).append(problem)

    def check_root(self, root: Path) -> None:
        """The tree's root: division folders and documents only; division folders hold submitter folders only."""
        for child in sorted(root.iterdir()):
            if child.is_dir() and child.name not in layout.DIVISIONS:
                self.add(child, f"unknown folder at the tree's root; expected division folders ({', '.join(layout.DIVISIONS)})", "-")
            elif not child.is_dir() and not child.name.endswith(ROOT_FILE_SUFFIXES):
                self.add(child, f"a file at the tree's root; the rules allow only {' and '.join(ROOT_FILE_SUFFIXES)} "
                                "files beside the division folders", "-")
        for division in sorted(layout.DIVISIONS):
            for name in sorted(file_names(root / division)):
                self.add(root / division / name, "a file in a division folder; it holds submitter folders only", "-")

    def check(self, base: Path) -> None:
        """Check one ``<division>/<submitter>`` folder."""
        self._check_names_and_files(base)
        self._check_documents(base)
        described = {path.stem for path in (base / "systems").glob("*.json")}
        with_results = _subfolders(base / "results")
        for system in sorted(described - with_results):
            self.add(base / layout.system_file(system), "a system description without results/<system>/", system)
        if not described | with_results:
            self.add(base / "systems", "no system description and no results", "-")
        for system in sorted(described | with_results):
            self._check_system(base, system)

    def _check_names_and_files(self, base: Path) -> None:
        """Names and files the rules refuse anywhere below a submitter folder."""
        for folder, dirs, files in os.walk(base):
            here = Path(folder)
            dirs.sort()  # walk in a stable order, so that reports read the same every time
            files.sort()
            for name in dirs + files:
                path = here / name
                if name.startswith("."):
                    self.add(path, "a name that starts with '.'; the rules refuse hidden files and folders", "-")
                if " " in name:
                    self.add(path, "a name with a space; the rules refuse spaces in file and folder names", "-")
                if name == "__pycache__":
                    self.add(path, "a __pycache__ folder; remove it", "-")
                if path.is_symlink() and not path.exists():
                    self.add(path, f"a broken link (to {os.readlink(path)})", "-")
            for name in files:
                path = here / name
                if path.is_file() and path.stat().st_size > layout.FILE_SIZE_LIMIT_BYTES:
                    self.add(path, f"{path.stat().st_size / 2**20:.1f} MiB, over the rules' 50 MB per file", "-")
            if here != base and not dirs and not files:
                self.add(here, "an empty folder; the rules refuse them", "-")

    def _check_documents(self, base: Path) -> None:
        if not (base / layout.SOURCE_DIR.parent).is_dir():
            self.add(base / layout.SOURCE_DIR.parent, "missing: the code of the submission (src/)", "-")
        if base.parent.name != "open" and not any((base / path).is_file() for path in
                                                  (layout.CALIBRATION_FILE, PurePosixPath(layout.CALIBRATION_FILE.name))):
            self.add(base / layout.CALIBRATION_FILE, "missing: a closed submission says what calibration or "
                                                     "quantization it did (calibration.md)", "-")
        path = base / layout.SUBMISSION_RECORD
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            version = record.get("rules_version") if isinstance(record, dict) else None
        except FileNotFoundError:
            self.add(path, f"missing: the record of the rules version ({layout.RULES_VERSION}) the tree follows", "-")
            return
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            self.add(path, f"unreadable: {error}", "-")
            return
        if version != layout.RULES_VERSION:
            self.add(path, f"rules_version is {version!r}; this checker knows the {layout.RULES_VERSION} layout and rules", "-")

    def full_log(self, base: Path, scenario: str, kind: str) -> Path | None:
        """Where the tree's record says the untruncated accuracy log of a run is (it may be gone)."""
        try:
            record = json.loads((base / layout.SUBMISSION_RECORD).read_text(encoding="utf-8"))
            for entry in record.get("runs", []):
                if entry.get("scenario") == scenario and entry.get("kind") == kind and entry.get("run_dir"):
                    return Path(entry["run_dir"]) / ACCURACY_FILE
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
            pass
        return None

    def _check_system(self, base: Path, system: str) -> None:
        description = self.check_description(base / layout.system_file(system), system, base)
        system_type = layout.SYSTEM_TYPES.get(str(description.get("system_type"))) if description else None
        benchmark_parent = base / "results" / system
        for model in sorted(_subfolders(benchmark_parent) - {MODEL_NAME}):
            self.add(benchmark_parent / model, f"unknown benchmark folder; this tree holds {MODEL_NAME} only", system)
        scenarios = _subfolders(base / layout.benchmark_dir(system))
        if not scenarios:
            self.add(base / layout.benchmark_dir(system), "no scenario results for this system", system)
        if system_type is not None:
            missing = [s for s in layout.REQUIRED_SCENARIOS[system_type] if s not in scenarios]
            if missing:
                self.add(base / layout.benchmark_dir(system), f"missing scenario(s) {', '.join(missing)}: a "
                         f"{system_type} system's {MODEL_NAME} submission holds "
                         f"{', '.join(layout.REQUIRED_SCENARIOS[system_type])}", system)
        allowed = (layout.REQUIRED_SCENARIOS[system_type] + layout.OPTIONAL_SCENARIOS[system_type]
                   if system_type else tuple(SCENARIOS))
        for scenario in sorted(scenarios):
            if scenario not in SCENARIOS or scenario not in allowed:
                self.add(base / layout.scenario_dir(system, scenario),
                         f"scenario {scenario!r} is not one of {', '.join(allowed)}" +
                         (f" (for {with_article(system_type)} system)" if system_type else ""), system, scenario)
                self.rejected.append((system, scenario))
                continue
            self.scenarios.append((system, scenario))
            ScenarioCheck(self, base, system, scenario).run()

    def check_description(self, path: Path, system: str, base: Path) -> dict:
        """The system description at ``path`` (of ``system``, in the tree folder ``base``), its problems added;
        its content ({} when unreadable)."""
        try:
            description = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            self.add(path, "missing system description; build the tree with 'python -m tools.submission'", system)
            return {}
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            self.add(path, f"unreadable system description: {error}", system)
            return {}
        if not isinstance(description, dict):
            self.add(path, "the system description is not a JSON object", system)
            return {}
        missing = [key for key in DESCRIPTION_KEYS if key not in description]
        if missing:
            self.add(path, f"missing key(s): {', '.join(missing)}", system)
        empty = [key for key in MEANINGFUL_KEYS if key in description and description[key] in ("", None)]
        if empty:
            self.add(path, f"key(s) the rules want a meaningful value for are empty: {', '.join(empty)} "
                           "(write N/A where one does not apply)", system)
        if str(description.get("status", "")).lower() not in STATUSES:
            self.add(path, f"status is {description.get('status')!r}; expected one of {', '.join(STATUSES)}", system)
        if description.get("system_type") not in layout.SYSTEM_TYPES:
            self.add(path, f"system_type is {description.get('system_type')!r}; expected one of "
                           f"{', '.join(layout.SYSTEM_TYPES)}", system)
        for key in ("number_of_nodes", "accelerators_per_node"):
            if key in description and not _is_integer(description[key]):
                self.add(path, f"{key} is {description[key]!r}; expected a whole number (e.g. \"0\")", system)
        if str(description.get("submitter", "")).lower() != base.name.lower():
            self.add(path, f"submitter is {description.get('submitter')!r} but the tree puts it under {base.name!r}", system)
        if str(description.get("division", "")).lower() != base.parent.name.lower():
            self.add(path, f"division is {description.get('division')!r} but the tree puts it under {base.parent.name!r}",
                     system)
        if NETWORK_KEY in description and base.parent.name != "network":
            self.add(path, f"key {NETWORK_KEY!r} belongs to the network division's systems; remove it", system)
        return description

    def summary(self) -> str:
        """The last line of the report."""
        checked = len(self.scenarios)
        if not self.problems:
            listed = ", ".join(f"{system} {scenario}" for system, scenario in self.scenarios)
            if self.rehearsal:
                return (f"REHEARSAL OK: {checked} scenario(s) checked ({listed}) against the {layout.RULES_VERSION} "
                        f"rules; {len(self.expected)} finding(s) expected of quick runs (listed above), no other "
                        "problem: the tree's structure passes, its runs are NOT valid for submission")
            return f"OK: {checked} scenario(s) checked ({listed}) against the {layout.RULES_VERSION} rules, no problem"
        concerned = {(p.system, p.scenario) for p in self.problems if p.scenario != NOT_SCENARIO}
        outside = sum(p.scenario == NOT_SCENARIO for p in self.problems)
        folders = checked + len(self.rejected)
        line = f"{len(self.problems)} problem(s) in {len(concerned)} of {folders} scenario folder(s)"
        if self.rejected:
            line += f" ({len(self.rejected)} not allowed for the system's type)"
        line += f" ({outside} outside any scenario)" if outside else ""
        if self.rehearsal:
            line += f"; besides, {len(self.expected)} finding(s) expected of quick runs"
        elif quick := sum(p.quick for p in self.problems):
            line += (f"; {quick} of them come from quick runs (--rehearsal checks a tree of quick runs and lists "
                     "those as expected)")
        return line


def check_tree(submission: Path, mlperf_conf: Path = DEFAULT_MLPERF_CONF, labels: np.ndarray | None = None,
               rehearsal: bool = False) -> SubmissionChecker:
    """Check a tree's root (when ``submission`` is one) and each ``<division>/<submitter>`` folder; the checker
    holds the problems (and, in a rehearsal, the expected findings). :class:`UsageError` if it is no tree."""
    if not submission.is_dir():
        raise UsageError(f"{submission} is not a folder; pass the --output folder of 'python -m tools.submission'")
    bases = submitter_dirs(submission)
    checker = SubmissionChecker(mlperf_conf, labels, rehearsal=rehearsal)
    if bases != [submission]:
        checker.check_root(submission)
    for base in bases:
        checker.check(base)
    return checker


def main(argv: list[str] | None = None) -> int:
    required = "; ".join(f"{kind}: {', '.join(names)}" for kind, names in layout.REQUIRED_SCENARIOS.items())
    description = plain(__doc__, {"tools.submission.layout.RULES_VERSION": layout.RULES_VERSION,
                                  "tools.submission.layout.REQUIRED_SCENARIOS": required})
    parser = argparse.ArgumentParser(prog="python -m tools.check_submission", description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("submission", type=Path, help="the submission tree, or one <division>/<submitter> folder of it")
    parser.add_argument("--mlperf-conf", type=Path, default=DEFAULT_MLPERF_CONF, help="the benchmark's rules (default: %(default)s)")
    parser.add_argument("--labels", action="store_true",
                        help="recompute accuracy from the full logs (in the run folders) against the test labels")
    parser.add_argument("--dataset-path", type=Path, help=f"with --labels: {DATASET_LOOKUP_HELP}")
    parser.add_argument("--rehearsal", action="store_true",
                        help="a tree of quick runs (a rehearsal of the pipeline): what quick runs explain (the "
                             "quick-run flag, a duration or query count under the rules' minimum, early stopping not "
                             "met, a failed TEST01 speed check) is listed as expected; every other check counts")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    return run_command(lambda: check_and_say(args), log)


def check_and_say(args: argparse.Namespace) -> int:
    """Check the tree the command line names and print the findings: 1 when there are problems, else 0."""
    if not args.submission.is_dir():
        raise UsageError(f"{args.submission} is not a folder; pass the --output folder of 'python -m tools.submission'")
    submitter_dirs(args.submission)  # a folder that is no tree is refused before the labels are read
    labels = checked_test_labels(dataset_root(args.dataset_path))[0] if args.labels or args.dataset_path else None
    checker = check_tree(args.submission, args.mlperf_conf, labels, args.rehearsal)
    for problem in checker.expected:
        print(f"expected of a quick run: {problem}")
    for problem in checker.problems:
        print(problem)
    for line in checker.recomputed:
        print(f"accuracy {line}")
    print(checker.summary())
    return 1 if checker.problems else 0


if __name__ == "__main__":
    sys.exit(main())

"""The documentation cannot drift from the code: every command that ``README.md`` and ``docs/`` print in a
``sh`` block is run exactly as printed, or named here with why it is not, and the facts they state about the
code (the paths they name, the layer order, their links) are checked.

The commands run in order (README first, then each document), in a copy of the checkout with a home of its own
(so its own ``~/.cache/seq2cnn``: the first run extracts, tokenizes, builds the tables and compiles the kernel as
a new user's does) and its own ``results/``; the dataset is found as the README says, through
``$SEQ2CNN_DATASET`` or ``../shared/data`` beside the checkout. A command printed twice runs once.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_layers import LAYERS

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
#: the documents whose commands are run, in the order a reader meets them
DOCUMENTS = [README, *(REPO / "docs" / name for name in (
    "running.md", "backends.md", "compliance.md", "model.md", "submission.md", "ray.md", "docker.md",
    "measurements.md"))]
README_MAX_LINES = 250
#: the most one documented command may take on a machine three times slower than a 2-core VM (s)
COMMAND_TIMEOUT_S = 900

LONG = "longer than about a minute"
NOT_RUN = {
    # command (its trailing comment left out) -> why the docs test does not run it
    "make run": f"{LONG}: a full-rules run (600 s), after creating a virtual environment",
    "make test": "the whole suite, which this test is part of",
    "make test-fast": f"{LONG}: the fast test subset, which CI's whole suite covers",
    "make docker-test": "needs root and a Docker daemon, and changes the machine",
    "python run.py --scenario SingleStream": f"{LONG}: a full-rules run (600 s)",
    "python -m qsl.download": "needs the internet",
    "python -m tools.soak": f"{LONG}: a peak search, then 30 minutes of Server",
    "python -m tools.soak --peak-qps 1750 --minutes 2 --window-minutes 0.5": f"{LONG}: 2 minutes of Server",
    "python -m tools.bench": f"{LONG}: every backend and precision, the reference on 256 reviews",
    "python -m model.evaluate --backend reference --save-logits reference.npz":
        f"{LONG}: the reference backend on 25,000 reviews (about an hour on 2 cores)",
    "python -m tools.bench --reference-logits reference.npz": f"{LONG}, and needs the reference's logits (an hour)",
    "python -m tools.bench.harness": f"{LONG}: six Offline runs of a million samples",
    "python run.py --scenario Offline --compliance TEST01 "
    "--accuracy-run results/offline-accuracy --performance-run results/offline-performance":
        f"compares with an Offline performance run under the rules ({LONG}: 600 s), which no document makes here",
    "python run.py --scenario Server --find-peak-performance --time 10 --qps 100": f"{LONG}: a dozen 10 s probes",
    "python -m model.train": f"{LONG}: five epochs of training",
    "python -m qsl.build_vocab": f"{LONG}: tokenizes the train split, and rewrites the shipped vocabulary",
    "python -m model.reference_import CHECKPOINT --output model/imported.safetensors":
        "needs a checkpoint of the original reference, which the project does not ship",
    "python -m tools.campaign --system configs/systems/example.yaml": f"{LONG}: every run of a submission (44 minutes)",
    "python -m tools.campaign --system configs/systems/example.yaml --quick": f"{LONG}: a dozen quick runs",
    "python -m tools.submission --runs results/ --system configs/systems/example.yaml --output submission/":
        "needs the runs of a whole submission, which only the campaigns above (not run) make",
    "python -m tools.check_submission submission/ --labels": "reads the submission tree of the packer above (not run)",
    "python -m tools.check_submission submission/ --rehearsal": "reads the submission tree of the packer above (not run)",
    "python -m tools.report submission/ --output report/": "reads the submission tree of the packer above (not run)",
    "pip install -e '.[ray]'": "changes the environment (make install has installed Ray)",
    "python run.py --scenario Offline --ray": "starts a Ray cluster (tests/test_ray.py runs these on 127.0.0.1)",
    "python run.py --scenario Offline --ray --accuracy": "starts a Ray cluster (tests/test_ray.py runs these)",
    "python run.py --scenario Server --ray --ray-actors 2 --ray-actor-cpus 1 --time 30 --qps 100":
        "starts a Ray cluster (tests/test_ray.py runs these)",
    "ray start --head --port 6379 --include-dashboard false": "starts a Ray cluster on the machine's own address",
    "ray start --address HEAD_IP:6379": "joins a Ray cluster of other machines",
    "python run.py --scenario Offline --ray --ray-address HEAD_IP:6379 --ray-actor-cpus 16":
        "needs a Ray cluster of other machines",
    "python run.py --scenario Server --ray --device cuda --time 60 --qps 20000": "needs GPUs and starts a Ray cluster",
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 ray start --head --node-ip-address 127.0.0.1":
        "starts a Ray cluster that outlives the command",
    "docker build -t seq2cnn-mlperf .": "needs a Docker daemon and an image registry",
    "docker volume create seq2cnn-cache": "needs a Docker daemon",
    "DATA=$PWD/../shared/data/aclImdb_labeled.tar.gz": "sets a shell variable for the docker commands (not run)",
    'docker run --rm -v "$DATA:/data/imdb.tar.gz:ro" -e SEQ2CNN_DATASET=/data/imdb.tar.gz '
    '-v seq2cnn-cache:/cache -v "$PWD/results:/app/results" seq2cnn-mlperf --scenario Offline --time 10':
        "needs a Docker daemon and the image",
    'docker run --rm -v "$DATA:/data/imdb.tar.gz:ro" -e SEQ2CNN_DATASET=/data/imdb.tar.gz '
    '-v seq2cnn-cache:/cache -v "$PWD/results:/app/results" seq2cnn-mlperf --scenario Offline --accuracy':
        "needs a Docker daemon and the image",
    "apt-get install docker.io debootstrap": "needs root and changes the machine",
    "docker/base-image.sh": "needs root, debootstrap and a Docker daemon",
    "python3 -m http.server --bind 127.0.0.1 --directory /opt/wheels 8000 &": "starts a server that outlives the command",
    "docker build --network host --build-arg BASE_IMAGE=seq2cnn-base:bookworm "
    "--build-arg TORCH_FIND_LINKS=http://127.0.0.1:8000/ -t seq2cnn-mlperf .": "needs root and a Docker daemon",
}

#: names in backticks that are paths of this checkout: they start with one of its top-level entries
_PATH_IN_BACKTICKS = re.compile(r"`((?:common|qsl|model|readback|sut|tools|configs|docs|docker|tests)/[^`\s]*"
                                r"|run\.py|setup\.py|Makefile|Dockerfile|\.ci/run)`")
_LINK = re.compile(r"\]\(([^)\s]+)\)")


def shell_blocks(document: Path) -> list[str]:
    """The command lines of ``document``'s ``sh`` blocks, each as printed (continuation lines joined)."""
    commands, inside, pending = [], False, ""
    for line in document.read_text().splitlines():
        if line.startswith("```"):
            inside = line.strip() == "```sh"
            continue
        if not inside or (not pending and (not line.strip() or line.lstrip().startswith("#"))):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1].rstrip() + " "
            continue
        commands.append(pending + line.strip())
        pending = ""
    return commands


def without_comment(command: str) -> str:
    """The command without its trailing ``# comment``."""
    return re.sub(r"\s+#.*$", "", command).strip()


def documented_commands() -> list[tuple[Path, str]]:
    """Every distinct command of the documents, in reading order, with the document it first appears in."""
    seen, commands = set(), []
    for document in DOCUMENTS:
        for command in shell_blocks(document):
            if without_comment(command) not in seen:
                seen.add(without_comment(command))
                commands.append((document, command))
    return commands


def test_every_command_not_run_is_still_documented_and_says_why():
    documented = {without_comment(command) for _, command in documented_commands()}
    assert sorted(set(NOT_RUN) - documented) == []
    assert all(reason.strip() for reason in NOT_RUN.values())


def test_the_modules_of_commands_not_run_exist():
    """A command the docs test does not run still names a module that exists and paths that exist."""
    for command in NOT_RUN:
        if match := re.match(r"python3? -m ([\w.]+)", command):
            assert importlib.util.find_spec(match.group(1)) is not None, command
        for word in command.split():
            if word.startswith(("configs/", "docker/")):
                assert (REPO / word).exists(), command


def test_the_readme_is_a_ten_minute_read():
    assert len(README.read_text().splitlines()) <= README_MAX_LINES


def test_the_layer_order_the_readme_states_is_the_one_the_layer_test_holds():
    text = " ".join(README.read_text().split())
    statement = text[text.index("Imports point down only:"):].split(", with no circle")[0]
    stated = [name.rstrip("/") for name in re.findall(r"`([^`]+)`", statement)]
    assert stated == ["run.py", "tools", *reversed(LAYERS[:-1])]


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: path.name)
def test_every_path_and_link_a_document_names_exists(document):
    text = document.read_text()
    missing = [name for name in _PATH_IN_BACKTICKS.findall(text)
               if "<" not in name and not (REPO / name.rstrip("/")).exists()]
    for link in _LINK.findall(text):
        if link.startswith(("http://", "https://")):
            continue
        target, _, anchor = link.partition("#")
        path = (document.parent / target).resolve() if target else document
        if not path.exists():
            missing.append(link)
        elif anchor and anchor not in {_anchor(line) for line in path.read_text().splitlines() if line.startswith("#")}:
            missing.append(link)
    assert missing == []


def _anchor(heading: str) -> str:
    """GitHub's anchor of a markdown heading."""
    words = heading.lstrip("#").strip().lower()
    return re.sub(r"\s", "-", re.sub(r"[^\w\s-]", "", words))


def _copy_of_the_checkout(destination: Path) -> Path:
    """The checkout's files without its environment, caches and results, committed in a git repository of their
    own: what a new clone has, the changes not yet committed here included."""
    ignored = shutil.ignore_patterns(".git", ".venv", "__pycache__", "*.egg-info", "results", "submission", "report",
                                     "bench.json", ".pytest_cache")
    copy = Path(shutil.copytree(REPO, destination, ignore=ignored, symlinks=True))
    identity = {"GIT_AUTHOR_NAME": "docs test", "GIT_AUTHOR_EMAIL": "docs@test", "GIT_COMMITTER_NAME": "docs test",
                "GIT_COMMITTER_EMAIL": "docs@test"}
    for git in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "the checkout as the docs test found it"]):
        subprocess.run(["git", *git], cwd=copy, env={**os.environ, **identity}, check=True)
    return copy


def _environment(root: Path, dataset: Path) -> dict[str, str]:
    """A user's environment in ``root``: its own home and caches, the project's Python first on the PATH, the
    dataset where the README says it is found."""
    home = root / "home"
    home.mkdir()
    environment = {key: value for key, value in os.environ.items()
                   if key not in {"SEQ2CNN_CACHE_DIR", "NUMBA_CACHE_DIR", "SEQ2CNN_DATASET", "XDG_CACHE_HOME"}}
    environment.update(HOME=str(home), PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    if "SEQ2CNN_DATASET" not in os.environ and dataset.parent.parent == REPO.parent / "shared":
        (root / "shared").symlink_to(dataset.parent.parent, target_is_directory=True)  # beside the copy, as here
    else:  # named by the variable, or found in this home's cache: handed on as the variable
        environment["SEQ2CNN_DATASET"] = str(dataset)
    return environment


@pytest.mark.slow
def test_the_documented_commands_run_as_printed(tmp_path, dataset_path):
    checkout = _copy_of_the_checkout(tmp_path / "checkout")
    environment = _environment(tmp_path, dataset_path)
    failures = []
    for document, command in documented_commands():
        if without_comment(command) in NOT_RUN:
            continue
        process = subprocess.Popen(["bash", "-c", command], cwd=checkout, env=environment, text=True,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            output, _ = process.communicate(timeout=COMMAND_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            output, _ = process.communicate()
        if process.returncode != 0:
            failures.append(f"{document.relative_to(REPO)}: {command}\n  exit {process.returncode}; its last lines:\n"
                            + "\n".join(output.splitlines()[-15:]))
    assert failures == [], "\n\n".join(failures)

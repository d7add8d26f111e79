"""The MLPerf system description of this machine: ``systems/<system>.json`` of a submission.

    python -m tools.system_description configs/systems/example.yaml     # prints the JSON

The keys are those the MLPerf Inference (v6.1) submission checker requires of
a system description (:data:`DESCRIPTION_KEYS`, of which
:data:`MEANINGFUL_KEYS` must not be empty). What the machine can tell is
measured here, from files Linux exposes without root: processor model,
sockets and physical cores (``/proc/cpuinfo``), frequency and caches
(``/sys/devices/system/cpu``), memory (``/proc/meminfo``), storage (the file
system of the repository and the block device behind it, via
``/proc/self/mountinfo`` and ``/sys/dev/block``), operating system
(``/etc/os-release``), accelerator (``torch.cuda``), framework and software
versions (installed packages). A reader that finds nothing says so
(:data:`NOT_EXPOSED`) instead of failing. What the machine cannot tell
(submitter, system name, division, availability, system type, cooling,
networking, ...) comes from a small YAML file, ``configs/systems/<name>.yaml``,
read by :func:`load_system_config`; see ``configs/systems/example.yaml``. That
file may also replace or add any key under ``overrides:``.

Exit status: 0 printed, 2 a YAML file that cannot be used (the message says
what and where), 3 an error of this program's own (its traceback is logged).
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import re
import shutil
import sys
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import yaml

from common.errors import BadInputError, run_command
from common.text import plain
from readback.cluster import ClusterInfo
from readback.provenance import REPO, package_versions, processor_name
from tools.submission.machine import (
    GIB,
    NOT_EXPOSED,
    accelerator,
    cpu_topology,
    memory_configuration,
    memory_gib,
    operating_system,
    processor_caches,
    processor_frequency,
    storage_type,
)

REQUIRED_KEYS = ("submitter", "system_name", "division", "status", "system_type")
ALLOWED_VALUES = {
    "division": ("closed", "open"),
    "status": ("available", "preview", "rdi"),
    "system_type": ("datacenter", "edge", "datacenter,edge"),
}
#: Optional YAML keys that go into the description as they are: what the OS cannot tell (default ``N/A``).
DESCRIBED_KEYS = (
    "cooling", "system_type_detail", "host_networking", "host_networking_topology", "host_network_card_count",
    "host_processor_interconnect",
)
OPTIONAL_KEYS = ("number_of_nodes", "hw_notes", "sw_notes", *DESCRIBED_KEYS, "overrides")
#: Keys every system description has: those the MLPerf Inference v6.1 submission checker requires, no more
#: (it warns of any other; the logical CPU count is in ``hw_notes``; a YAML's overrides may add keys). No
#: ``is_network``: with it the checker demands the network division's keys.
DESCRIPTION_KEYS = (
    "division", "submitter", "status", "system_name", "number_of_nodes", "host_processor_model_name",
    "host_processors_per_node", "host_processor_core_count", "host_memory_capacity",
    "host_storage_capacity", "host_storage_type", "accelerators_per_node", "accelerator_model_name",
    "accelerator_memory_capacity", "framework", "operating_system", "system_type", "other_software_stack",
    "host_processor_frequency", "host_processor_caches", "host_memory_configuration", "host_processor_interconnect",
    "host_networking", "host_networking_topology", "accelerator_frequency", "accelerator_host_interconnect",
    "accelerator_interconnect", "accelerator_interconnect_topology", "accelerator_memory_configuration",
    "accelerator_on-chip_memories", "cooling", "hw_notes", "sw_notes", "host_network_card_count",
    "system_type_detail",
)
#: Keys the checker wants non-empty (a string or a number). The others may be empty for it; here only the notes can be.
MEANINGFUL_KEYS = (
    "division", "submitter", "status", "system_name", "number_of_nodes", "host_processor_model_name",
    "host_processors_per_node", "host_processor_core_count", "host_memory_capacity", "host_storage_capacity",
    "host_storage_type", "accelerators_per_node", "accelerator_model_name", "accelerator_memory_capacity",
    "framework", "operating_system", "system_type", "other_software_stack", "host_memory_configuration",
    "host_networking", "host_networking_topology", "accelerator_host_interconnect", "accelerator_interconnect",
    "accelerator_memory_configuration", "cooling", "host_network_card_count",
)
#: Software listed in ``other_software_stack`` (package names as pip knows them).
SOFTWARE_STACK = ("mlcommons-loadgen", "numba", "numpy", "spacy", "safetensors", "pyyaml")

logger = logging.getLogger(__name__)


class SystemConfigError(BadInputError, ValueError):
    """A system YAML file that is missing, unreadable or has a wrong or missing key."""


@dataclass(frozen=True)
class SystemConfig:
    """What a system YAML file says about the machine (see ``configs/systems/example.yaml``)."""

    path: Path
    submitter: str
    system_name: str
    division: str
    status: str
    system_type: str
    number_of_nodes: int = 1
    hw_notes: str = ""
    sw_notes: str = ""
    overrides: dict[str, object] = field(default_factory=dict)
    #: The :data:`DESCRIBED_KEYS` the file sets (the others are ``N/A``).
    described: dict[str, object] = field(default_factory=dict)

    @property
    def system_id(self) -> str:
        """The system's folder and file name in a submission: ``system_name`` made file-system safe."""
        return safe_name(self.system_name)


def safe_name(name: str) -> str:
    """``name`` with every run of characters other than letters, digits, ``.``, ``_`` and ``-`` replaced by ``_``."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "system"


def _check_submitter(path: Path, submitter: str) -> None:
    """Refuse a submitter that is not already its own folder name (``safe_name(submitter) == submitter``)."""
    if safe_name(submitter) == submitter:  # only letters, digits, '.', '_', '-', not at the ends
        return
    raise SystemConfigError(
        f"{path}: submitter {submitter!r} is not a safe name: it names the submission's <submitter> folder, so it "
        "may hold only letters, digits, '.', '_' and '-' (no spaces) and may not start or end with '.' or '_'; "
        f"write e.g. 'submitter: {safe_name(submitter)}'"
    )


def _check_described(path: Path, data: dict) -> dict[str, object]:
    """The :data:`DESCRIBED_KEYS` that ``data`` sets, checked: non-empty strings (the card count may be an int)."""
    described: dict[str, object] = {}
    for key in DESCRIBED_KEYS:
        if key not in data:
            continue
        value = data[key]
        counted = key == "host_network_card_count" and isinstance(value, int) and not isinstance(value, bool)
        if counted and value < 0:
            raise SystemConfigError(f"{path}: {key} must not be negative, found {value!r}")
        if not counted and (not isinstance(value, str) or not value.strip()):
            kind = "a non-negative integer or a non-empty string" if key == "host_network_card_count" else "a non-empty string"
            raise SystemConfigError(
                f"{path}: {key} must be {kind} (write 'N/A' when it does not apply), found {value!r}"
            )
        described[key] = value
    return described


def load_system_config(path: Path) -> SystemConfig:
    """Read and check a system YAML file; :class:`SystemConfigError` says what is wrong and where."""
    path = Path(path)
    example = "configs/systems/example.yaml"
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise SystemConfigError(
            f"cannot read the system description {path}: {error.strerror or error}. "
            f"Pass --system with a YAML file such as {example}"
        ) from None
    except yaml.YAMLError as error:
        raise SystemConfigError(f"{path} is not valid YAML: {error}") from None
    if not isinstance(data, dict):
        raise SystemConfigError(
            f"{path} holds a YAML {type(data).__name__}, expected a mapping of keys "
            f"({', '.join(REQUIRED_KEYS)}) as in {example}"
        )
    unknown = sorted(set(map(str, data)) - set(REQUIRED_KEYS) - set(OPTIONAL_KEYS))
    if unknown:
        raise SystemConfigError(
            f"{path}: unknown key(s) {', '.join(unknown)}; allowed are {', '.join(REQUIRED_KEYS + OPTIONAL_KEYS)} "
            "(any other system description key is set under 'overrides:')"
        )
    missing = [key for key in REQUIRED_KEYS if data.get(key) in (None, "")]
    if missing:
        raise SystemConfigError(f"{path}: missing key(s) {', '.join(missing)}; add them as in {example}")
    for key in REQUIRED_KEYS + ("hw_notes", "sw_notes"):
        if key in data and not isinstance(data[key], str):
            raise SystemConfigError(f"{path}: {key} must be a string, found {data[key]!r}")
    for key, allowed in ALLOWED_VALUES.items():
        if data[key] not in allowed:
            raise SystemConfigError(f"{path}: {key} is {data[key]!r}; expected one of {', '.join(allowed)}")
    _check_submitter(path, data["submitter"])
    nodes = data.get("number_of_nodes", 1)
    if isinstance(nodes, bool) or not isinstance(nodes, int) or nodes < 1:
        raise SystemConfigError(f"{path}: number_of_nodes must be a positive integer, found {nodes!r}")
    described = _check_described(path, data)
    overrides = data.get("overrides") or {}
    if not isinstance(overrides, dict):
        raise SystemConfigError(f"{path}: overrides must be a mapping of system description keys to values")
    bad = [key for key, value in overrides.items() if not isinstance(value, (str, int, float)) or isinstance(value, bool)]
    if bad:
        raise SystemConfigError(f"{path}: overrides of {', '.join(map(str, bad))} must be a string or a number")
    return SystemConfig(
        path, data["submitter"], data["system_name"], data["division"], data["status"], data["system_type"],
        nodes, data.get("hw_notes", ""), data.get("sw_notes", ""), {str(k): v for k, v in overrides.items()},
        described,
    )


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def measured_description() -> dict[str, object]:
    """The system description keys this machine can tell about itself."""
    topology = cpu_topology()
    memory = memory_gib()
    versions = package_versions()
    stack = [f"python {versions['python']}"] + [f"{package} {_version(package)}" for package in SOFTWARE_STACK]
    usable = f"; {topology['usable_cpus']} of {topology['logical_cpus']} logical CPUs usable by the benchmark process"
    return {
        "host_processor_model_name": processor_name(),
        "host_processors_per_node": topology["sockets"],
        "host_processor_core_count": topology["cores_per_socket"],
        "host_processor_frequency": processor_frequency(),
        "host_processor_caches": processor_caches(),
        "host_memory_capacity": f"{memory:.1f} GiB" if memory is not None else NOT_EXPOSED,
        "host_memory_configuration": memory_configuration(memory),
        "host_storage_capacity": f"{shutil.disk_usage(REPO).total / GIB:.0f} GiB",
        "host_storage_type": storage_type(REPO),
        **accelerator(),
        "operating_system": operating_system(),
        "framework": f"PyTorch {versions['torch']}, numba {_version('numba')}",
        "other_software_stack": ", ".join(stack),
        "hw_notes": f"{platform.machine()}{usable}",
    }


def system_description(config: SystemConfig, cluster: ClusterInfo | None = None,
                       frameworks: list[str] | None = None) -> dict[str, object]:
    """The full system description, keys in :data:`DESCRIPTION_KEYS` order: the YAML's keys (the
    :data:`DESCRIBED_KEYS` it leaves out are ``N/A``), the measured ones, then the YAML's overrides.
    ``frameworks``, where given, are the runs' own (``run.json``'s ``backend.framework``): the ``framework``
    field then names them rather than the installed PyTorch and numba.

    For runs on a Ray ``cluster``, ``number_of_nodes`` is at least the number of nodes its actors used, and
    ``sw_notes`` says how the actors were spread (the per-node hardware is still this machine's, as measured:
    describe other nodes in the YAML)."""
    measured = measured_description()
    if frameworks:  # what the runs computed with, as their records say
        measured["framework"] = ", ".join(frameworks)
    hw_notes = "; ".join(note for note in (config.hw_notes, measured.pop("hw_notes")) if note)
    nodes, sw_notes = config.number_of_nodes, config.sw_notes
    if cluster is not None:
        used = len({actor.node_id for actor in cluster.actors}) or 1
        if used > nodes:
            logger.warning("the runs used %d Ray nodes and the system YAML says number_of_nodes %d: the description "
                        "says %d", used, nodes, used)
            nodes = used
        sw_notes = "; ".join(note for note in (sw_notes, cluster.summary(with_address=False),
                                               "batches dispatched to the actors by the SUT") if note)
    values = {
        "division": config.division,
        "submitter": config.submitter,
        "status": config.status,
        "system_name": config.system_name,
        "system_type": config.system_type,
        "number_of_nodes": nodes,
        **{key: "N/A" for key in DESCRIBED_KEYS},
        **config.described,
        **measured,
        "hw_notes": hw_notes,
        "sw_notes": sw_notes,
    }
    description = {key: values.pop(key) for key in DESCRIPTION_KEYS}
    return description | values | config.overrides


def main(argv: list[str] | None = None) -> int:
    description = plain(__doc__, {"DESCRIPTION_KEYS": f"{len(DESCRIPTION_KEYS)} keys",
                                  "MEANINGFUL_KEYS": f"{len(MEANINGFUL_KEYS)}", "NOT_EXPOSED": repr(NOT_EXPOSED)})
    parser = argparse.ArgumentParser(prog="python -m tools.system_description", description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("system", type=Path, help="system YAML file, e.g. configs/systems/example.yaml")
    args = parser.parse_args(argv)
    return run_command(lambda: _print_description(args.system), logger)


def _print_description(system: Path) -> int:
    print(json.dumps(system_description(load_system_config(system)), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

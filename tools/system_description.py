"""The MLPerf system description of this machine: ``systems/<system>.json`` of a submission.

    python -m tools.system_description configs/systems/example.yaml     # prints the JSON

The keys are those of MLPerf submissions' system descriptions. What the
machine can tell is measured here: processor model, sockets and physical cores
(``/proc/cpuinfo``), memory (``/proc/meminfo``), storage (the file system of
the repository), operating system (``/etc/os-release``), accelerator
(``torch.cuda``), framework and software versions (installed packages). What
it cannot tell (submitter, system name, division, availability, system type)
comes from a small YAML file, ``configs/systems/<name>.yaml``, read by
:func:`load_system_config`; see ``configs/systems/example.yaml``. That file
may also replace any measured value under ``overrides:``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import sys
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import yaml

from sut.provenance import REPO, package_versions, processor_name

REQUIRED_KEYS = ("submitter", "system_name", "division", "status", "system_type")
ALLOWED_VALUES = {
    "division": ("closed", "open"),
    "status": ("available", "preview", "rdi"),
    "system_type": ("datacenter", "edge"),
}
OPTIONAL_KEYS = ("number_of_nodes", "hw_notes", "sw_notes", "overrides")
#: Keys every system description has (a YAML's overrides may add others); the notes may be empty.
DESCRIPTION_KEYS = REQUIRED_KEYS + (
    "number_of_nodes", "host_processor_model_name", "host_processors_per_node", "host_processor_core_count",
    "host_processor_vcpu_count", "host_memory_capacity", "host_storage_capacity", "accelerators_per_node",
    "accelerator_model_name", "accelerator_memory_capacity", "operating_system", "framework",
    "other_software_stack", "hw_notes", "sw_notes",
)
#: Software listed in ``other_software_stack`` (package names as pip knows them).
SOFTWARE_STACK = ("mlcommons-loadgen", "numba", "numpy", "spacy", "safetensors", "pyyaml")
GIB = 2**30


class SystemConfigError(ValueError):
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

    @property
    def system_id(self) -> str:
        """The system's folder and file name in a submission: ``system_name`` made file-system safe."""
        return safe_name(self.system_name)


def safe_name(name: str) -> str:
    """``name`` with every run of characters other than letters, digits, ``.``, ``_`` and ``-`` replaced by ``_``."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "system"


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
            "(a measured value is replaced under 'overrides:')"
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
    nodes = data.get("number_of_nodes", 1)
    if isinstance(nodes, bool) or not isinstance(nodes, int) or nodes < 1:
        raise SystemConfigError(f"{path}: number_of_nodes must be a positive integer, found {nodes!r}")
    overrides = data.get("overrides") or {}
    if not isinstance(overrides, dict):
        raise SystemConfigError(f"{path}: overrides must be a mapping of system description keys to values")
    bad = [key for key, value in overrides.items() if not isinstance(value, (str, int, float)) or isinstance(value, bool)]
    if bad:
        raise SystemConfigError(f"{path}: overrides of {', '.join(map(str, bad))} must be a string or a number")
    return SystemConfig(
        path, data["submitter"], data["system_name"], data["division"], data["status"], data["system_type"],
        nodes, data.get("hw_notes", ""), data.get("sw_notes", ""), {str(k): v for k, v in overrides.items()},
    )


def cpu_topology(cpuinfo: Path = Path("/proc/cpuinfo")) -> dict[str, int]:
    """Sockets, physical cores per socket, logical CPUs and the CPUs this process may use."""
    cores: set[tuple[str, str]] = set()
    sockets: set[str] = set()
    logical = 0
    try:
        processor: dict[str, str] = {}
        for line in [*cpuinfo.read_text().splitlines(), ""]:
            if line.strip():
                key, _, value = line.partition(":")
                processor[key.strip()] = value.strip()
                continue
            if processor:
                logical += 1
                socket = processor.get("physical id", "0")
                sockets.add(socket)
                cores.add((socket, processor.get("core id", str(logical))))
            processor = {}
    except OSError:
        pass
    logical = logical or os.cpu_count() or 1
    socket_count = len(sockets) or 1
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else logical
    return {
        "sockets": socket_count,
        "cores_per_socket": max(1, (len(cores) or logical) // socket_count),
        "logical_cpus": logical,
        "usable_cpus": usable,
    }


def memory_gib(meminfo: Path = Path("/proc/meminfo")) -> float | None:
    """Total memory in GiB from ``MemTotal`` (kB), or None when it cannot be read."""
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024 / GIB
    except (OSError, ValueError, IndexError):
        pass
    return None


def operating_system(os_release: Path = Path("/etc/os-release")) -> str:
    """Distribution and kernel, e.g. ``Debian GNU/Linux 12 (bookworm), Linux 6.1.0``."""
    try:
        fields = dict(
            line.split("=", 1) for line in os_release.read_text().splitlines() if "=" in line
        )
        distribution = fields.get("PRETTY_NAME", "").strip('"')
    except OSError:
        distribution = ""
    kernel = f"{platform.system()} {platform.release()}"
    return f"{distribution}, {kernel}" if distribution else kernel


def accelerator() -> dict[str, object]:
    """The CUDA devices torch sees: count, model and memory of the first, or ``N/A``."""
    import torch

    if not torch.cuda.is_available():
        return {"accelerators_per_node": 0, "accelerator_model_name": "N/A", "accelerator_memory_capacity": "N/A"}
    properties = torch.cuda.get_device_properties(0)
    return {
        "accelerators_per_node": torch.cuda.device_count(),
        "accelerator_model_name": properties.name,
        "accelerator_memory_capacity": f"{properties.total_memory / GIB:.1f} GiB",
    }


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
        "host_processor_vcpu_count": topology["logical_cpus"],
        "host_memory_capacity": f"{memory:.1f} GiB" if memory is not None else "n/a",
        "host_storage_capacity": f"{shutil.disk_usage(REPO).total / GIB:.0f} GiB",
        **accelerator(),
        "operating_system": operating_system(),
        "framework": f"PyTorch {versions['torch']}, numba {_version('numba')}",
        "other_software_stack": ", ".join(stack),
        "hw_notes": f"{platform.machine()}{usable}",
    }


def system_description(config: SystemConfig) -> dict[str, object]:
    """The full system description: the YAML's keys, the measured ones, then the YAML's overrides."""
    measured = measured_description()
    hw_notes = "; ".join(note for note in (config.hw_notes, measured.pop("hw_notes")) if note)
    description = {
        "division": config.division,
        "submitter": config.submitter,
        "status": config.status,
        "system_name": config.system_name,
        "system_type": config.system_type,
        "number_of_nodes": config.number_of_nodes,
        **measured,
        "hw_notes": hw_notes,
        "sw_notes": config.sw_notes,
    }
    return description | config.overrides


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("system", type=Path, help="system YAML file, e.g. configs/systems/example.yaml")
    args = parser.parse_args(argv)
    try:
        description = system_description(load_system_config(args.system))
    except SystemConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(description, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

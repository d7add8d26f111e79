"""The MLPerf system description of this machine: ``systems/<system>.json`` of a submission.

    python -m tools.system_description configs/systems/example.yaml     # prints the JSON

The keys are those the MLPerf Inference (v6.1) submission checker requires of
a system description (:data:`DESCRIPTION_KEYS`; those of
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
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import re
import shutil
import sys
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import yaml

from common.errors import BadInputError
from readback.cluster import ClusterInfo
from readback.provenance import REPO, package_versions, processor_name

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
#: What a reader says when the OS does not tell.
NOT_EXPOSED = "unknown (not exposed by the OS)"
#: What the accelerator keys say on a CPU-only system.
NO_ACCELERATOR = "N/A"
#: File systems without a local block device behind them.
NETWORK_FILE_SYSTEMS = ("nfs", "nfs4", "cifs", "smb3", "9p", "virtiofs", "ceph", "glusterfs", "lustre", "gpfs")
#: Software listed in ``other_software_stack`` (package names as pip knows them).
SOFTWARE_STACK = ("mlcommons-loadgen", "numba", "numpy", "spacy", "safetensors", "pyyaml")
GIB = 2**30

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


def _read(path: Path) -> str | None:
    """The stripped text of a small sysfs/proc file, or None when it is absent or unreadable."""
    try:
        return path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return None


def _cpuinfo_value(cpuinfo: Path, key: str) -> str | None:
    """The value of the first ``key`` line of ``/proc/cpuinfo`` (the first processor's), or None."""
    for line in (_read(cpuinfo) or "").splitlines():
        name, _, value = line.partition(":")
        if name.strip() == key:
            return value.strip()
    return None


def processor_frequency(cpu_sysfs: Path = Path("/sys/devices/system/cpu"), cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The processor's frequency in MHz: cpu0's maximum (``cpufreq/cpuinfo_max_freq``, kHz) where the OS
    exposes it, else the current ``cpu MHz`` of ``/proc/cpuinfo``, else :data:`NOT_EXPOSED`."""
    maximum = _read(cpu_sysfs / "cpu0" / "cpufreq" / "cpuinfo_max_freq")
    if maximum and maximum.isdigit():
        return f"{int(maximum) / 1000:.0f} MHz (max)"
    current = _cpuinfo_value(cpuinfo, "cpu MHz")
    try:
        return f"{float(current or ''):.0f} MHz (current, from /proc/cpuinfo)"
    except ValueError:
        logger.debug("no processor frequency in %s or %s", cpu_sysfs, cpuinfo)
        return NOT_EXPOSED


def _cpu_list(text: str) -> set[int]:
    """The CPUs of a sysfs CPU list such as ``0-3,8``."""
    cpus: set[int] = set()
    for part in text.split(","):
        first, _, last = part.strip().partition("-")
        if first.isdigit():
            cpus.update(range(int(first), int(last if last.isdigit() else first) + 1))
    return cpus


def _size_kib(text: str) -> int | None:
    """A sysfs cache size (``32K``, ``32768K``, ``1M``) in KiB, or None."""
    match = re.fullmatch(r"(\d+)\s*([KMG]?)", text.strip(), re.IGNORECASE)
    if not match:
        return None
    return int(match[1]) * {"": 1, "K": 1, "M": 1024, "G": 1024**2}[match[2].upper()]


def _format_kib(kib: int) -> str:
    return f"{kib // 1024} MiB" if kib >= 1024 and kib % 1024 == 0 else f"{kib} KiB"


def processor_caches(cpu_sysfs: Path = Path("/sys/devices/system/cpu"), cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """cpu0's caches, e.g. ``L1d 32 KiB + L1i 32 KiB per core, L2 512 KiB per core, L3 32 MiB shared by 2 CPUs``.

    Read from ``cpu0/cache/index*/`` (level, type, size, shared_cpu_list); a cache is per core when the CPUs
    sharing it are cpu0's hardware threads, else shared by that many logical CPUs. Without sysfs, the
    ``cache size`` of ``/proc/cpuinfo``; without either, :data:`NOT_EXPOSED`.
    """
    siblings = _cpu_list(_read(cpu_sysfs / "cpu0" / "topology" / "thread_siblings_list") or "0")
    groups: dict[tuple[int, str], list[str]] = {}
    indexes = (cpu_sysfs / "cpu0" / "cache").glob("index*")
    for index in sorted(indexes, key=lambda p: int(p.name[5:]) if p.name[5:].isdigit() else 0):
        level, kind, size = (_read(index / name) for name in ("level", "type", "size"))
        kib = _size_kib(size or "")
        if not (level and level.isdigit()) or kib is None:
            continue
        shared = _cpu_list(_read(index / "shared_cpu_list") or "0")
        scope = "per core" if shared <= siblings else f"shared by {len(shared)} CPUs"
        suffix = {"Data": "d", "Instruction": "i"}.get(kind or "", "")
        groups.setdefault((int(level), scope), []).append(f"L{level}{suffix} {_format_kib(kib)}")
    if groups:
        return ", ".join(f"{' + '.join(names)} {scope}" for (_, scope), names in groups.items())
    size = _cpuinfo_value(cpuinfo, "cache size")
    if size:
        return f"{size} (cache size of /proc/cpuinfo; levels not exposed)"
    logger.debug("no cache information in %s or %s", cpu_sysfs, cpuinfo)
    return NOT_EXPOSED


def _unescape_mount_point(text: str) -> str:
    """A mountinfo path with its octal escapes (``\\040`` for a space) decoded."""
    return re.sub(r"\\([0-7]{3})", lambda match: chr(int(match[1], 8)), text)


def _mount_of(path: Path, mountinfo: Path) -> tuple[str, str, str, str] | None:
    """(mount point, major:minor, file system type, source) of the mount holding ``path``: the longest
    mount point that is a prefix of it (the last one listed, if mounted over)."""
    best: tuple[str, str, str, str] | None = None
    target = str(path)
    for line in (_read(mountinfo) or "").splitlines():
        fields = line.split()
        if "-" not in fields[6:] or len(fields) < 5:
            continue
        separator = fields.index("-", 6)
        mount_point = _unescape_mount_point(fields[4])
        inside = target == mount_point or target.startswith(mount_point.rstrip("/") + "/")
        if inside and (best is None or len(mount_point) >= len(best[0])):
            fs_type, source = (fields[separator + 1 : separator + 3] + ["", ""])[:2]
            best = (mount_point, fields[2], fs_type, source)
    return best


def storage_type(
    path: Path = REPO, mountinfo: Path = Path("/proc/self/mountinfo"), sysfs: Path = Path("/sys")
) -> str:
    """The kind of storage holding ``path`` (the repository): ``SSD`` or ``HDD`` by the block device's
    ``queue/rotational`` flag, with the disk's name and model, e.g. ``SSD (nvme0n1, Samsung SSD 980)``.

    The device is the one behind the file system holding ``path`` (``/proc/self/mountinfo``), mapped with
    ``/sys/dev/block/<major:minor>`` to its disk (the parent of a partition). File systems without a
    visible block device (overlay, tmpfs, network) are named as such; anything else unknown is
    :data:`NOT_EXPOSED`.
    """
    try:
        path = Path(path).resolve()
    except OSError:
        path = Path(path).absolute()
    mount = _mount_of(path, mountinfo)
    if mount is None:
        logger.debug("no mount of %s in %s", path, mountinfo)
        return NOT_EXPOSED
    mount_point, device, fs_type, source = mount
    if fs_type.split(".")[0] in NETWORK_FILE_SYSTEMS or fs_type.startswith("fuse."):
        return f"{fs_type} network or user-space file system {source} (backing device not visible)"
    block = _block_device(sysfs, device, source)
    if block is None:
        if device.startswith("0:"):
            return f"{fs_type} file system (backing device not visible)"
        logger.debug("device %s of %s has no entry under %s", device, mount_point, sysfs / "dev" / "block")
        return f"unknown ({fs_type} file system on device {device}, which the OS does not describe)"
    disk = block.parent if (block / "partition").exists() else block
    kind = {"0": "SSD", "1": "HDD"}.get(_read(disk / "queue" / "rotational") or "")
    model = _read(disk / "device" / "model")
    named = ", ".join([disk.name] + ([model] if model else []))
    if "/virtual/" in str(disk):
        return f"virtual block device {named} ({fs_type}; physical medium not visible)"
    if "virtio" in str(disk):
        flag = f"{kind} by the kernel's rotational flag" if kind else "no rotational flag"
        return f"virtio virtual disk {named} ({flag}; the host's physical medium is not visible)"
    if kind is None:
        return f"unknown ({fs_type} file system on {named}, which does not say whether it rotates)"
    return f"{kind} ({named})"


def _block_device(sysfs: Path, device: str, source: str) -> Path | None:
    """The sysfs folder of a mount's block device: ``/sys/dev/block/<major:minor>``, else (file systems such
    as btrfs report major 0) the ``/sys/class/block`` entry named like a ``/dev/...`` source; None if neither."""
    candidates = [sysfs / "dev" / "block" / device]
    if source.startswith("/dev/"):
        candidates.append(sysfs / "class" / "block" / Path(source).name)
    for candidate in candidates:
        try:
            return candidate.resolve(strict=True)
        except OSError:
            continue
    return None


def memory_configuration(total_gib: float | None, dmi: Path = Path("/sys/firmware/dmi/tables/DMI")) -> str:
    """Total memory and what is known of its layout; the DIMMs are in the firmware's DMI tables, readable
    only by root (``dmidecode -t memory``), so this says so rather than guess."""
    total = f"{total_gib:.1f} GiB total" if total_gib is not None else "total memory unknown"
    if os.access(dmi, os.R_OK):
        return f"{total}; DIMM layout in the DMI tables (see 'dmidecode -t memory'), not decoded here"
    return f"{total}; DIMM layout not exposed to the OS without root"


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


def accelerator() -> dict[str, str]:
    """The accelerator keys from the CUDA devices torch sees (the first one's model, memory in GiB, on-chip
    memories); every key ``N/A`` and ``accelerators_per_node`` ``"0"`` on a CPU-only system. The checker
    wants strings. What torch does not tell (clock, links, memory type) is ``unknown``."""
    import torch

    if not torch.cuda.is_available():
        return {
            "accelerators_per_node": "0",
            **{key: NO_ACCELERATOR for key in (
                "accelerator_model_name", "accelerator_memory_capacity", "accelerator_frequency",
                "accelerator_host_interconnect", "accelerator_interconnect", "accelerator_interconnect_topology",
                "accelerator_memory_configuration", "accelerator_on-chip_memories",
            )},
        }
    count = torch.cuda.device_count()
    properties = torch.cuda.get_device_properties(0)
    unknown = "unknown (not exposed by torch)"
    on_chip = [f"{properties.multi_processor_count} streaming multiprocessors"]
    l2_bytes = getattr(properties, "L2_cache_size", 0)
    if l2_bytes:
        on_chip.append(f"L2 {l2_bytes / 2**20:.0f} MiB")
    return {
        "accelerators_per_node": str(count),
        "accelerator_model_name": properties.name,
        "accelerator_memory_capacity": f"{properties.total_memory / GIB:.1f} GiB",
        "accelerator_frequency": unknown,
        "accelerator_host_interconnect": unknown,
        "accelerator_interconnect": unknown if count > 1 else "N/A (one accelerator)",
        "accelerator_interconnect_topology": unknown if count > 1 else "N/A (one accelerator)",
        "accelerator_memory_configuration": unknown,
        "accelerator_on-chip_memories": ", ".join(on_chip),
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


def system_description(config: SystemConfig, cluster: ClusterInfo | None = None) -> dict[str, object]:
    """The full system description, keys in :data:`DESCRIPTION_KEYS` order: the YAML's keys (the
    :data:`DESCRIBED_KEYS` it leaves out are ``N/A``), the measured ones, then the YAML's overrides.

    For runs on a Ray ``cluster``, ``number_of_nodes`` is at least the number of nodes its actors used, and
    ``sw_notes`` says how the actors were spread (the per-node hardware is still this machine's, as measured:
    describe other nodes in the YAML)."""
    measured = measured_description()
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

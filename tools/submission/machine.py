"""What this machine tells about itself, from files Linux exposes without root: the facts of a system
description (:mod:`tools.submission.system_description`).

Processor sockets and physical cores (``/proc/cpuinfo``), frequency and caches
(``/sys/devices/system/cpu``), memory (``/proc/meminfo``), storage (the file
system of the repository and the block device behind it, via
``/proc/self/mountinfo`` and ``/sys/dev/block``), operating system
(``/etc/os-release``) and accelerator (``torch.cuda``). A reader that finds
nothing says so (:data:`NOT_EXPOSED`) instead of failing; each takes the files
it reads as arguments, so that tests can point it at a fake tree.
"""

from __future__ import annotations

import logging
import os
import platform
import re
from pathlib import Path

from readback.provenance import REPO

#: What a reader says when the OS does not tell.
NOT_EXPOSED = "unknown (not exposed by the OS)"
#: What the accelerator keys say on a CPU-only system.
NO_ACCELERATOR = "N/A"
#: File systems without a local block device behind them.
NETWORK_FILE_SYSTEMS = ("nfs", "nfs4", "cifs", "smb3", "9p", "virtiofs", "ceph", "glusterfs", "lustre", "gpfs")
GIB = 2**30

logger = logging.getLogger(__name__)


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

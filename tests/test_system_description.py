"""The system description (``systems/<system>.json``): its YAML, the machine's readers, the checker's keys.

Fast: no LoadGen run. The readers of sysfs and proc are pointed at small fake
trees under ``tmp_path`` (or at nothing) to see both what they read and that
they fall back to a clear ``unknown`` instead of failing.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tools.submission import system_description as sd
from tools.submission.machine import (
    NOT_EXPOSED,
    processor_caches,
    processor_frequency,
    storage_type,
)
from tools.submission.system_description import (
    DESCRIBED_KEYS,
    DESCRIPTION_KEYS,
    MEANINGFUL_KEYS,
    SystemConfigError,
    load_system_config,
    measured_description,
    system_description,
)

REPO = Path(__file__).resolve().parent.parent
EXAMPLE_SYSTEM = REPO / "configs" / "systems" / "example.yaml"
MINIMAL = "submitter: me\nsystem_name: box\ndivision: closed\nstatus: rdi\nsystem_type: edge\n"


@pytest.fixture(scope="module")
def example_description() -> dict[str, object]:
    """The description of this machine from the example YAML (measured once for the module)."""
    return system_description(load_system_config(EXAMPLE_SYSTEM))


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_system_description_is_measured_from_this_machine():
    measured = measured_description()
    for key in ("host_processor_model_name", "host_processors_per_node", "host_processor_core_count",
                "host_memory_capacity", "operating_system", "framework", "other_software_stack"):
        assert measured[key] not in ("", None, 0), key
    assert measured["host_processor_core_count"] * measured["host_processors_per_node"] <= os.cpu_count()
    assert "mlcommons-loadgen" in measured["other_software_stack"] and "numba" in measured["framework"]


def test_description_has_every_key_the_checker_requires(example_description):
    assert set(MEANINGFUL_KEYS) <= set(DESCRIPTION_KEYS) and "is_network" not in DESCRIPTION_KEYS
    assert list(example_description)[:len(DESCRIPTION_KEYS)] == list(DESCRIPTION_KEYS)
    empty = [key for key in MEANINGFUL_KEYS
             if not isinstance(example_description[key], (str, int, float)) or example_description[key] in ("", None)]
    assert not empty, f"empty meaningful key(s): {empty}"
    assert "is_network" not in example_description and "logical CPUs" in example_description["hw_notes"]
    assert example_description["submitter"] == "Seq2CNN-SUT"
    json.dumps(example_description)  # what the submission writes


def test_cpu_only_system_has_zero_accelerators_as_a_string(example_description):
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is available: this machine is not CPU-only")
    assert example_description["accelerators_per_node"] == "0"
    for key in ("accelerator_model_name", "accelerator_memory_capacity", "accelerator_frequency",
                "accelerator_host_interconnect", "accelerator_interconnect", "accelerator_interconnect_topology",
                "accelerator_memory_configuration", "accelerator_on-chip_memories"):
        assert example_description[key] == "N/A", key


def test_cuda_devices_are_described_as_strings(monkeypatch):
    import torch

    class Properties:
        name, total_memory, multi_processor_count, L2_cache_size = "Fake GPU", 80 * 2**30, 132, 50 * 2**20

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda index: Properties())
    described = sd.accelerator()
    assert described["accelerators_per_node"] == "2"
    assert described["accelerator_model_name"] == "Fake GPU" and described["accelerator_memory_capacity"] == "80.0 GiB"
    assert described["accelerator_on-chip_memories"] == "132 streaming multiprocessors, L2 50 MiB"
    assert all(isinstance(value, str) and value for value in described.values())


def test_example_yaml_sets_what_the_machine_cannot_tell(example_description):
    assert example_description["cooling"] == "N/A (virtual machine)"
    assert example_description["system_type_detail"] == "virtual machine"
    assert example_description["host_processor_interconnect"] == "N/A (one socket)"


def test_described_keys_flow_into_the_description_and_default_to_na(tmp_path):
    values = {key: f"{key} value" for key in DESCRIBED_KEYS} | {"host_network_card_count": 2}
    path = _write(tmp_path / "system.yaml", MINIMAL + "".join(f"{key}: {value!r}\n" for key, value in values.items()))
    config = load_system_config(path)
    assert config.described == values
    description = system_description(config)
    assert {key: description[key] for key in DESCRIBED_KEYS} == values
    bare = system_description(load_system_config(_write(tmp_path / "bare.yaml", MINIMAL)))
    assert {key: bare[key] for key in DESCRIBED_KEYS} == dict.fromkeys(DESCRIBED_KEYS, "N/A")


def test_the_framework_is_the_runs_own_where_their_records_name_it(tmp_path):
    config = load_system_config(_write(tmp_path / "system.yaml", MINIMAL))
    assert system_description(config)["framework"].startswith("PyTorch ")  # measured: what is installed
    named = system_description(config, frameworks=["ONNX Runtime 1.32.0", "numba 0.68.1"])
    assert named["framework"] == "ONNX Runtime 1.32.0, numba 0.68.1"


def test_overrides_replace_measured_and_described_keys(tmp_path):
    path = _write(tmp_path / "system.yaml", MINIMAL + "cooling: air\noverrides:\n  cooling: liquid\n"
                  "  host_storage_type: NVMe SSD\n  extra_key: 3\n")
    description = system_description(load_system_config(path))
    assert description["cooling"] == "liquid" and description["host_storage_type"] == "NVMe SSD"
    assert description["extra_key"] == 3


@pytest.mark.parametrize("line, message", [
    ("cooling: [air]\n", "cooling must be a non-empty string"),
    ("cooling: ''\n", "cooling must be a non-empty string"),
    ("system_type_detail: 3\n", "system_type_detail must be a non-empty string"),
    ("host_networking: {a: b}\n", "host_networking must be a non-empty string"),
    ("host_network_card_count: true\n", "host_network_card_count must be a non-negative integer or a non-empty string"),
    ("host_network_card_count: 1.5\n", "host_network_card_count must be a non-negative integer or a non-empty string"),
    ("host_network_card_count: -1\n", "host_network_card_count must not be negative"),
])
def test_described_key_of_a_wrong_type_is_refused(tmp_path, line, message):
    path = _write(tmp_path / "system.yaml", MINIMAL + line)
    with pytest.raises(SystemConfigError) as error:
        load_system_config(path)
    assert str(path) in str(error.value) and message in str(error.value)


@pytest.mark.parametrize("submitter, suggested", [
    ("Seq2CNN-SUT project", "Seq2CNN-SUT_project"),
    ("'.hidden'", "hidden"),
    ("'a/b'", "a_b"),
    ("me_", "me"),
])
def test_unsafe_submitter_is_refused_with_the_safe_form(tmp_path, submitter, suggested):
    path = _write(tmp_path / "system.yaml", MINIMAL.replace("submitter: me", f"submitter: {submitter}"))
    with pytest.raises(SystemConfigError) as error:
        load_system_config(path)
    message = str(error.value)
    assert str(path) in message and "is not a safe name" in message and f"submitter: {suggested}'" in message


def test_safe_submitter_is_its_own_safe_name(tmp_path):
    for submitter in ("Seq2CNN-SUT", "ACME.inc", "a_b-1"):
        path = _write(tmp_path / "system.yaml", MINIMAL.replace("submitter: me", f"submitter: {submitter}"))
        assert sd.safe_name(load_system_config(path).submitter) == submitter


@pytest.mark.parametrize("text, message", [
    ("submitter: me\nsystem_name: box\ndivision: closed\nstatus: available\n",
     "missing key(s) system_type; add them as in configs/systems/example.yaml"),
    ("submitter: me\nsystem_name: box\ndivision: closed\nstatus: sold\nsystem_type: edge\n",
     "status is 'sold'; expected one of available, preview, rdi"),
    ("submitter: me\nsystem_name: box\ndivision: closed\nstatus: rdi\nsystem_type: edge\ncpu: fast\n",
     "unknown key(s) cpu"),
    ("- a list\n", "expected a mapping of keys"),
    ("submitter: [unclosed\n", "is not valid YAML"),
])
def test_system_yaml_errors_say_what_and_where(tmp_path, text, message):
    path = tmp_path / "system.yaml"
    path.write_text(text)
    with pytest.raises(SystemConfigError) as error:
        load_system_config(path)
    assert str(path) in str(error.value) and message in str(error.value)


def test_missing_system_yaml_says_what_to_do(tmp_path, capsys):
    missing = tmp_path / "absent.yaml"
    with pytest.raises(SystemConfigError, match=f"cannot read the system description {missing}: .*example.yaml"):
        load_system_config(missing)


def test_readers_fall_back_when_the_os_tells_nothing(tmp_path):
    nothing = tmp_path / "absent"
    assert processor_frequency(nothing, nothing) == NOT_EXPOSED
    assert processor_caches(nothing, nothing) == NOT_EXPOSED
    assert storage_type(tmp_path, nothing, nothing) == NOT_EXPOSED
    assert sd.memory_configuration(None, nothing) == "total memory unknown; DIMM layout not exposed to the OS without root"


def test_frequency_prefers_the_maximum_then_proc_cpuinfo(tmp_path):
    cpuinfo = _write(tmp_path / "cpuinfo", "processor\t: 0\ncpu MHz\t\t: 2445.404\ncache size\t: 512 KB\n")
    assert processor_frequency(tmp_path / "sys", cpuinfo) == "2445 MHz (current, from /proc/cpuinfo)"
    _write(tmp_path / "sys" / "cpu0" / "cpufreq" / "cpuinfo_max_freq", "3700000\n")
    assert processor_frequency(tmp_path / "sys", cpuinfo) == "3700 MHz (max)"


def test_caches_are_per_core_or_shared_by_their_cpus(tmp_path):
    cpuinfo = _write(tmp_path / "cpuinfo", "processor\t: 0\ncache size\t: 512 KB\n")
    assert processor_caches(tmp_path / "sys", cpuinfo) == "512 KB (cache size of /proc/cpuinfo; levels not exposed)"
    caches = [(1, "Data", "48K", "0,64"), (1, "Instruction", "32K", "0,64"), (2, "Unified", "2048K", "0,64"),
              (3, "Unified", "32768K", "0-15,64-79")]
    for number, (level, kind, size, shared) in enumerate(caches):
        index = tmp_path / "sys" / "cpu0" / "cache" / f"index{number}"
        for name, value in (("level", level), ("type", kind), ("size", size), ("shared_cpu_list", shared)):
            _write(index / name, f"{value}\n")
    _write(tmp_path / "sys" / "cpu0" / "topology" / "thread_siblings_list", "0,64\n")
    assert processor_caches(tmp_path / "sys", cpuinfo) == (
        "L1d 48 KiB + L1i 32 KiB per core, L2 2 MiB per core, L3 32 MiB shared by 32 CPUs"
    )


def _mountinfo(tmp_path: Path, *mounts: tuple[str, str, str, str]) -> Path:
    lines = [f"{n} 1 {device} / {point.replace(' ', chr(92) + '040')} rw,relatime shared:1 - {fs} {source} rw"
             for n, (device, point, fs, source) in enumerate(mounts, 20)]
    return _write(tmp_path / "mountinfo", "\n".join(lines) + "\n")


def test_storage_type_follows_the_mount_to_its_disk(tmp_path):
    sysfs = tmp_path / "sys"
    disk = sysfs / "devices" / "pci0000:00" / "0000:00:1d.0" / "nvme" / "nvme0" / "nvme0n1"
    _write(disk / "nvme0n1p2" / "partition", "2\n")
    _write(disk / "queue" / "rotational", "0\n")
    _write(disk / "device" / "model", "Samsung SSD 980 PRO 1TB   \n")
    (sysfs / "dev" / "block").mkdir(parents=True)
    os.symlink(Path("..", "..", *disk.relative_to(sysfs).parts, "nvme0n1p2"), sysfs / "dev" / "block" / "259:2")
    mountinfo = _mountinfo(tmp_path, ("8:1", "/", "ext4", "/dev/sda1"), ("259:2", "/data disk", "ext4", "/dev/nvme0n1p2"),
                           ("0:40", "/data disk/scratch", "tmpfs", "tmpfs"))
    assert storage_type(Path("/data disk/repo"), mountinfo, sysfs) == "SSD (nvme0n1, Samsung SSD 980 PRO 1TB)"
    _write(disk / "queue" / "rotational", "1\n")
    assert storage_type(Path("/data disk"), mountinfo, sysfs) == "HDD (nvme0n1, Samsung SSD 980 PRO 1TB)"
    assert storage_type(Path("/data disk/scratch/x"), mountinfo, sysfs) == "tmpfs file system (backing device not visible)"
    assert storage_type(Path("/data diskette"), mountinfo, sysfs).startswith("unknown (ext4 file system on device 8:1")


def test_storage_type_names_overlay_and_network_file_systems(tmp_path):
    mountinfo = _mountinfo(tmp_path, ("0:52", "/", "overlay", "overlay"), ("0:60", "/mnt/nfs", "nfs4", "server:/export"))
    assert storage_type(Path("/work"), mountinfo, tmp_path / "sys") == "overlay file system (backing device not visible)"
    assert storage_type(Path("/mnt/nfs/a"), mountinfo, tmp_path / "sys") == (
        "nfs4 network or user-space file system server:/export (backing device not visible)"
    )

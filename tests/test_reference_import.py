"""model.reference_import: reference checkpoints (.pth, .npz, np.save'd .npy) into checked safetensors."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from numpy.lib import format as npy_format

import model.reference_import
from model.network import Seq2CNN
from model.reference_import import import_reference
from model.weights import WeightsError, load_model

#: functions that a malicious pickle would call; they must never run
CALLS: list[str] = []


def record_call() -> None:
    CALLS.append("called")


class CallsGetcwd:
    def __reduce__(self):
        return (os.getcwd, ())


class CallsRecorder:
    def __reduce__(self):
        return (record_call, ())


@pytest.fixture(scope="module")
def reference_state() -> dict[str, torch.Tensor]:
    torch.manual_seed(7)
    return {name: tensor.clone() for name, tensor in Seq2CNN().state_dict().items()}


def as_numpy(state: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    return {name: tensor.numpy() for name, tensor in state.items()}


def write_torch(path: Path, state: dict) -> Path:
    torch.save(state, path)
    return path


def write_npz(path: Path, state: dict[str, torch.Tensor]) -> Path:
    np.savez(path, **as_numpy(state))
    return path


def write_npy(path: Path, state: dict[str, torch.Tensor]) -> Path:
    np.save(path, as_numpy(state))
    return path


def write_npy_pickle(path: Path, payload: object) -> Path:
    """An .npy that declares a 0-d object array followed by the pickle of ``payload``."""
    with open(path, "wb") as stream:
        npy_format.write_array_header_1_0(stream, {"descr": "|O", "fortran_order": False, "shape": ()})
        stream.write(pickle.dumps(payload, protocol=3))
    return path


def assert_imported_equals(output: Path, state: dict[str, torch.Tensor]) -> None:
    imported = load_model(output).state_dict()
    assert sorted(imported) == sorted(state)
    for name, tensor in state.items():
        assert imported[name].dtype == torch.float32
        assert torch.equal(imported[name], tensor), name


@pytest.mark.parametrize(
    "filename, write",
    [
        ("reference.pth", lambda path, state: write_torch(path, state)),
        ("wrapped.pt", lambda path, state: write_torch(path, {"state_dict": state, "epoch": 3})),
        ("reference.npz", write_npz),
        ("reference.npy", write_npy),
    ],
)
def test_import_round_trips(filename, write, reference_state, tmp_path):
    source = write(tmp_path / filename, reference_state)
    output = tmp_path / "imported.safetensors"
    digest = import_reference(source, output)
    assert (tmp_path / "imported.safetensors.sha256").read_text().split()[0] == digest
    assert_imported_equals(output, reference_state)


def test_mxnet_prefixes_and_float16_are_accepted(reference_state, tmp_path):
    halved = {name: tensor.half() for name, tensor in reference_state.items()}
    prefixed = {f"arg:{name}": tensor.numpy() for name, tensor in halved.items()}
    source = tmp_path / "mxnet.npz"
    np.savez(source, **prefixed)
    output = tmp_path / "imported.safetensors"
    import_reference(source, output)
    assert_imported_equals(output, {name: tensor.float() for name, tensor in halved.items()})


@pytest.mark.parametrize("payload, global_name", [(CallsGetcwd(), "getcwd"), ({"embedding.weight": CallsRecorder()}, "record_call")])
def test_npy_with_foreign_global_is_refused_without_running_it(payload, global_name, tmp_path):
    source = write_npy_pickle(tmp_path / "evil.npy", payload)
    with pytest.raises(WeightsError, match=f"references .*{global_name}.*refusing"):
        import_reference(source, tmp_path / "imported.safetensors")
    assert CALLS == []
    assert not (tmp_path / "imported.safetensors").exists()


def test_pth_with_foreign_global_is_refused_without_running_it(tmp_path):
    source = write_torch(tmp_path / "evil.pth", {"embedding.weight": CallsRecorder()})
    with pytest.raises(WeightsError, match="record_call"):
        import_reference(source, tmp_path / "imported.safetensors")
    assert CALLS == []


def test_npy_of_a_plain_array_is_refused(tmp_path):
    source = tmp_path / "plain.npy"
    np.save(source, np.zeros((2, 2), dtype=np.float32))
    with pytest.raises(WeightsError, match="not a dict of named arrays"):
        import_reference(source, tmp_path / "imported.safetensors")


def test_wrong_names_are_refused_listing_found_and_expected(tmp_path):
    source = write_torch(tmp_path / "renamed.pth", {"embed.weight": torch.zeros(2, 2), "classifier.bias": torch.zeros(2)})
    with pytest.raises(WeightsError) as raised:
        import_reference(source, tmp_path / "imported.safetensors")
    message = str(raised.value)
    assert "embed.weight" in message and "clm0.0.weight" in message and "expected" in message


def test_wrong_shape_is_refused_naming_the_tensor(reference_state, tmp_path):
    state = dict(reference_state, **{"classifier.weight": torch.zeros(3, 2048)})
    source = write_npz(tmp_path / "wide.npz", state)
    with pytest.raises(WeightsError, match=r"'classifier\.weight'.*\(3, 2048\)"):
        import_reference(source, tmp_path / "imported.safetensors")
    assert not (tmp_path / "imported.safetensors").exists()


def test_existing_output_is_not_overwritten(reference_state, tmp_path):
    source = write_torch(tmp_path / "reference.pth", reference_state)
    output = tmp_path / "imported.safetensors"
    output.write_bytes(b"keep me")
    with pytest.raises(WeightsError, match="already exists"):
        import_reference(source, output)
    assert output.read_bytes() == b"keep me"


def test_main_prints_one_line_error_and_exits_2(tmp_path, capsys):
    assert model.reference_import.main([str(tmp_path / "missing.pth"), "--output",
                                        str(tmp_path / "out.safetensors")]) == 2
    stderr = capsys.readouterr().err
    assert "Traceback" not in stderr
    assert stderr.strip().count("\n") == 0 and "missing.pth" in stderr

"""The network's shape, weight files and their errors, and exactness of length batching."""

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

import common.files
from common.files import sha256_of_file
from model.backends import ReferenceBackend
from model.batching import pad_to_width, padded_batch
from model.network import Seq2CNN, parameter_count
from model.paths import DEFAULT_WEIGHTS
from model.weights import (
    WeightsError,
    file_sha256,
    load_model,
    load_state_dict,
    verified_sha256,
)


def test_parameter_count_and_reference_names():
    model = Seq2CNN()
    assert parameter_count(model) == 12_670_978
    assert list(model.state_dict()) == [
        "embedding.weight", "clm0.0.weight", "clm0.0.bias", "clm1.0.weight", "clm1.0.bias",
        "classifier.weight", "classifier.bias",
    ]


def test_forward_is_embedding_two_convolutions_elu_quarter_max_and_linear():
    """Seq2CNN.forward against the model written out by hand from its weights (no nn.Module call)."""
    torch.manual_seed(0)
    model = Seq2CNN().eval()
    state = model.state_dict()
    # Five ids: 3 and 2 windows per branch, so that many channels' maxima are negative and ELU's
    # negative side (not only its identity above 0) decides the logits.
    ids = torch.randint(1, 5200, (2, 5))
    with torch.inference_mode():
        logits = model(ids)
    embedded = state["embedding.weight"][ids].double()  # (B, L, 1024)
    features = []
    for branch, kernel in ((0, 3), (1, 4)):
        weight, bias = state[f"clm{branch}.0.weight"].double(), state[f"clm{branch}.0.bias"].double()  # (out, in, k)
        windows = embedded.unfold(1, kernel, 1)  # (B, L - k + 1, in, k)
        pre = torch.einsum("btik,oik->bto", windows, weight) + bias
        activated = torch.where(pre > 0, pre, 0.25 * torch.expm1(pre))  # ELU with alpha 0.25
        features.append(activated.amax(dim=1))
    expected = torch.cat(features, dim=1) @ state["classifier.weight"].double().T + state["classifier.bias"].double()
    assert logits.shape == (2, 2)
    assert torch.allclose(logits.double(), expected, atol=1e-4)
    # the activation matters: the same computation with a plain ReLU gives other logits
    relu = torch.cat([torch.einsum("btik,oik->bto", embedded.unfold(1, k, 1), state[f"clm{b}.0.weight"].double())
                      .add(state[f"clm{b}.0.bias"].double()).clamp(min=0).amax(dim=1) for b, k in ((0, 3), (1, 4))], dim=1)
    relu_logits = relu @ state["classifier.weight"].double().T + state["classifier.bias"].double()
    assert not torch.allclose(relu_logits, expected, atol=1e-4)


def test_saved_weights_load_back_with_their_checksum(random_weights):
    assert random_weights.with_name("random.safetensors.sha256").read_text().split()[0] == sha256_of_file(random_weights)
    model = load_model(random_weights)
    assert not model.training


def test_missing_weights_file_is_named(tmp_path):
    with pytest.raises(WeightsError, match="not found.*nothing.safetensors"):
        load_model(tmp_path / "nothing.safetensors")


def test_checksum_mismatch_is_reported(random_weights, tmp_path):
    with pytest.raises(WeightsError, match="checksum mismatch"):
        load_model(random_weights, expected_sha256="0" * 64)


def test_missing_checksum_record_is_refused(tmp_path):
    path = tmp_path / "w.safetensors"
    save_file({"x": torch.zeros(1)}, str(path))
    with pytest.raises(WeightsError, match="no sha256 recorded"):
        load_model(path)


def test_wrong_tensor_name_and_shape_are_named(tmp_path):
    state = {k: v.clone() for k, v in Seq2CNN().state_dict().items()}
    renamed = dict(state)
    renamed["clm0.weight"] = renamed.pop("clm0.0.weight")
    path = tmp_path / "renamed.safetensors"
    save_file(renamed, str(path))
    with pytest.raises(WeightsError, match=r"missing tensors \['clm0.0.weight'\].*unexpected tensors \['clm0.weight'\]"):
        load_state_dict(path, expected_sha256=sha256_of_file(path))
    reshaped = dict(state)
    reshaped["classifier.weight"] = torch.zeros(3, 2048)
    path = tmp_path / "reshaped.safetensors"
    save_file(reshaped, str(path))
    with pytest.raises(WeightsError, match=r"'classifier.weight' has shape \(3, 2048\), expected \(2, 2048\)"):
        load_state_dict(path, expected_sha256=sha256_of_file(path))


def test_not_a_safetensors_file_is_reported(tmp_path):
    path = tmp_path / "junk.safetensors"
    path.write_bytes(b"definitely not safetensors")
    with pytest.raises(WeightsError, match="not a readable safetensors"):
        load_state_dict(path, expected_sha256=sha256_of_file(path))


def test_length_batching_gives_the_reference_logits(random_weights):
    """Padding to longest+4 (or truncating at 1000) equals padding every review to 1000."""
    model = load_model(random_weights)
    rng = np.random.default_rng(0)
    reviews = [rng.integers(1, 5200, n).astype(np.int16) for n in (0, 1, 3, 57, 996, 997, 999, 1000, 1400)]
    with torch.inference_mode():
        reference = model(pad_to_width(reviews, 1000))
        batched = model(padded_batch(reviews))
        one_by_one = torch.cat([model(padded_batch([r])) for r in reviews])
    assert torch.allclose(batched, reference, atol=1e-4)
    assert torch.allclose(one_by_one, reference, atol=1e-4)


def test_reference_backend_labels_are_argmax_of_logits(random_weights):
    backend = ReferenceBackend(random_weights)
    reviews = [np.arange(1, 30, dtype=np.int16), np.zeros(0, np.int16)]
    logits = backend.logits(reviews)
    assert logits.shape == (2, 2) and logits.dtype == np.float32
    assert backend.labels(reviews).tolist() == logits.argmax(1).tolist()


def test_shipped_weights_match_their_recorded_checksum():
    assert DEFAULT_WEIGHTS.is_file(), "model/seq2cnn.safetensors is not in the checkout"
    load_state_dict(DEFAULT_WEIGHTS)


def test_checking_weights_leaves_torch_random_state_and_compiler_alone():
    """Checking shapes once imported torch's compiler stack and Triton (most of a second at every start, and
    Triton's bindings printed "nanobind: leaked ..." at exit); nor may it move the random state training uses."""
    script = ("import sys, torch\n"
              "from model.weights import expected_shapes, load_model\n"
              "torch.manual_seed(0); before = torch.rand(3); torch.manual_seed(0)\n"
              "expected_shapes()\n"
              "assert torch.equal(torch.rand(3), before), 'the random state moved'\n"
              "load_model()\n"
              "print(sorted(m for m in ('triton', 'torch._dynamo') if m in sys.modules))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.fixture
def counted_hashes(monkeypatch):
    """The paths :func:`common.files.sha256_of_file` reads, one entry per read."""
    reads = []
    real = common.files.sha256_of_file

    def counting(path):
        reads.append(str(path))
        return real(path)

    monkeypatch.setattr(common.files, "sha256_of_file", counting)
    return reads


def settled(path, seconds_ago: float = 60.0):
    """``path`` with its modification time ``seconds_ago`` in the past, as a file at rest is."""
    when = time.time_ns() - int(seconds_ago * 1e9)
    os.utime(path, ns=(when, when))
    return path


def test_a_file_is_hashed_once_while_unchanged_and_again_once_rewritten(tmp_path, counted_hashes, monkeypatch):
    monkeypatch.setattr(common.files, "RECENT_CHANGE_NS", 0)  # utime cannot set the change time back
    path = tmp_path / "weights.bin"
    path.write_bytes(b"first content")
    settled(path)
    first = hashlib.sha256(b"first content").hexdigest()
    assert file_sha256(path) == first and file_sha256(path) == first
    assert file_sha256(tmp_path / "." / "weights.bin") == first  # the same file by another name
    assert len(counted_hashes) == 1

    path.write_bytes(b"other content")  # rewritten in place: same size and inode, another modification time
    settled(path, 30.0)
    assert file_sha256(path) == hashlib.sha256(b"other content").hexdigest()
    assert len(counted_hashes) == 2

    replacement = tmp_path / "new.bin"
    replacement.write_bytes(b"third content")
    settled(replacement, 30.0)
    os.replace(replacement, path)  # replaced by another file of the same size and times: another inode
    assert file_sha256(path) == hashlib.sha256(b"third content").hexdigest()
    assert file_sha256(path) == hashlib.sha256(b"third content").hexdigest()
    assert len(counted_hashes) == 3


def test_a_file_changed_just_now_is_hashed_at_every_call(tmp_path, counted_hashes):
    """A file system's clock may be coarse: a rewrite within its tick could keep the times, so a fresh file's
    digest is not remembered."""
    path = tmp_path / "fresh.bin"
    path.write_bytes(b"just written")
    assert file_sha256(path) == file_sha256(path) == sha256_of_file(path)
    assert len(counted_hashes) == 2


def test_verifying_weights_twice_hashes_them_once(random_weights, tmp_path, counted_hashes, monkeypatch):
    """verified_sha256, then load_model's own check, then the caller's record: one read of the file."""
    monkeypatch.setattr(common.files, "RECENT_CHANGE_NS", 0)  # remember the file written just below
    weights = tmp_path / "settled.safetensors"
    weights.write_bytes(random_weights.read_bytes())
    weights.with_name("settled.safetensors.sha256").write_text(f"{sha256_of_file(random_weights)}  {weights.name}\n")
    counted_hashes.clear()
    digest = verified_sha256(weights)
    load_model(weights, digest)
    assert file_sha256(weights) == digest and counted_hashes == [str(weights.resolve())]

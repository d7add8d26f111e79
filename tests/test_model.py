"""The network's shape, weight files and their errors, and exactness of length batching."""

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from model.backends import ReferenceBackend
from model.batching import pad_to_width, padded_batch
from model.network import Seq2CNN, parameter_count
from model.weights import DEFAULT_WEIGHTS, WeightsError, load_model, load_state_dict, save_weights, sha256_of


def test_parameter_count_and_reference_names():
    model = Seq2CNN()
    assert parameter_count(model) == 12_670_978
    assert list(model.state_dict()) == [
        "embedding.weight", "clm0.0.weight", "clm0.0.bias", "clm1.0.weight", "clm1.0.bias",
        "classifier.weight", "classifier.bias",
    ]


def test_activation_is_elu_with_alpha_quarter():
    torch.manual_seed(0)
    model = Seq2CNN().eval()
    ids = torch.randint(1, 5200, (1, 20))
    conv = model.branches()[0]
    pre = conv(model.embedding(ids).transpose(1, 2))
    expected = torch.where(pre > 0, pre, 0.25 * (torch.exp(pre) - 1)).amax(dim=2)
    assert torch.allclose(torch.nn.functional.elu(pre, alpha=0.25).amax(dim=2), expected)


def test_saved_weights_load_back_with_their_checksum(random_weights):
    assert random_weights.with_name("random.safetensors.sha256").read_text().split()[0] == sha256_of(random_weights)
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
        load_state_dict(path, expected_sha256=sha256_of(path))
    reshaped = dict(state)
    reshaped["classifier.weight"] = torch.zeros(3, 2048)
    path = tmp_path / "reshaped.safetensors"
    save_file(reshaped, str(path))
    with pytest.raises(WeightsError, match=r"'classifier.weight' has shape \(3, 2048\), expected \(2, 2048\)"):
        load_state_dict(path, expected_sha256=sha256_of(path))


def test_not_a_safetensors_file_is_reported(tmp_path):
    path = tmp_path / "junk.safetensors"
    path.write_bytes(b"definitely not safetensors")
    with pytest.raises(WeightsError, match="not a readable safetensors"):
        load_state_dict(path, expected_sha256=sha256_of(path))


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

"""Training: the table forward and sparse gradient equal the reference module's, and the learning-rate schedule."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from model.batching import padded_batch
from model.sparse_training import table_logits
from model.paths import DEFAULT_WEIGHTS
from model.train import RETRAINED_WEIGHTS, learning_rate_factor, parse_args
from model.weights import load_model


def _loss_and_gradients(model, logits_of, ids, labels):
    model.zero_grad(set_to_none=True)
    loss = torch.nn.functional.cross_entropy(logits_of(ids), labels)
    loss.backward()
    return loss.item(), {name: parameter.grad.clone() for name, parameter in model.named_parameters()}


@pytest.mark.parametrize("pick", ["shortest", "typical", "longest"])
def test_table_gradients_equal_autograd_of_the_module(test_split, pick):
    """Shipped weights, real reviews: logits, loss and every parameter's gradient match autograd through the
    reference module (up to float32 summation order), for short batches (mostly padding, where windows tie), typical
    ones and reviews truncated at 1,000 ids."""
    lengths = np.array([len(ids) for ids in test_split.token_ids])
    order = np.argsort(lengths, kind="stable")
    middle = len(order) // 2
    chosen = {"shortest": order[:8], "typical": order[middle : middle + 8], "longest": order[-4:]}[pick]
    ids = padded_batch([test_split.token_ids[i] for i in chosen])
    labels = torch.from_numpy(test_split.labels[chosen])
    model = load_model()
    model.train()
    model.dropout.p = 0.0  # dropout's mask would differ between the two calls
    reference_loss, reference = _loss_and_gradients(model, model, ids, labels)
    table_loss, table = _loss_and_gradients(model, lambda batch: table_logits(model, batch), ids, labels)
    assert table_loss == pytest.approx(reference_loss, rel=1e-5)
    for name, gradient in reference.items():
        scale = gradient.abs().max().item()
        assert scale > 0, name
        assert torch.allclose(table[name], gradient, rtol=0, atol=1e-4 * scale), (
            f"{name}: max difference {(table[name] - gradient).abs().max().item():.3e} against a largest gradient of "
            f"{scale:.3e}")
    with torch.no_grad():
        model.eval()
        assert torch.allclose(table_logits(model, ids), model(ids), rtol=0, atol=1e-4)


def test_table_gradient_of_a_repeated_window_goes_to_its_rows():
    """A review whose best window appears twice (a tie) gets the same gradient as autograd, which splits it."""
    torch.manual_seed(0)
    model = load_model()
    model.train()
    model.dropout.p = 0.0
    ids = torch.tensor([[7, 8, 9, 10, 7, 8, 9, 10, 0, 0, 0, 0]])
    labels = torch.tensor([1])
    _, reference = _loss_and_gradients(model, model, ids, labels)
    _, table = _loss_and_gradients(model, lambda batch: table_logits(model, batch), ids, labels)
    for name, gradient in reference.items():
        assert torch.allclose(table[name], gradient, rtol=0, atol=1e-4 * gradient.abs().max().item()), name


def test_learning_rate_warms_up_then_decays_to_zero():
    total, warmup = 1000, 100
    assert learning_rate_factor(0, total, warmup, "cosine") == pytest.approx(1 / warmup)
    assert learning_rate_factor(warmup - 1, total, warmup, "cosine") == pytest.approx(1.0)
    assert learning_rate_factor(warmup, total, warmup, "cosine") == pytest.approx(1.0)
    middle = warmup + (total - warmup) // 2
    assert learning_rate_factor(middle, total, warmup, "cosine") == pytest.approx(0.5, abs=1e-2)
    assert learning_rate_factor(middle, total, warmup, "linear") == pytest.approx(0.5, abs=1e-2)
    assert learning_rate_factor(total, total, warmup, "cosine") == pytest.approx(0.0, abs=1e-12)
    assert learning_rate_factor(total, total, 0, "linear") == 0.0
    # no warm-up: the linear schedule of the original recipe, 1 - step / total
    assert learning_rate_factor(250, total, 0, "linear") == pytest.approx(0.75)
    assert all(0 <= learning_rate_factor(step, total, warmup, "cosine") <= 1 for step in range(0, total + 1, 7))
    assert not math.isnan(learning_rate_factor(0, 0, 0, "cosine"))


def test_retraining_never_replaces_the_shipped_weights(capsys, tmp_path):
    """``python -m model.train`` as the README prints it writes beside the shipped weights, not over them, and
    an existing output file (the shipped weights included) is refused before training starts, exit 2."""
    assert RETRAINED_WEIGHTS.parent == DEFAULT_WEIGHTS.parent and RETRAINED_WEIGHTS != DEFAULT_WEIGHTS
    assert parse_args(["--output", str(tmp_path / "new.safetensors")]).output == tmp_path / "new.safetensors"
    with pytest.raises(SystemExit) as refused:
        parse_args(["--output", str(DEFAULT_WEIGHTS)])
    assert refused.value.code == 2
    assert "exists; an existing weights file is never replaced" in capsys.readouterr().err

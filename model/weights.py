"""Seq2CNN weights on disk: safetensors, checked against a recorded sha256.

The shipped weights are ``model/seq2cnn.safetensors``; their sha256 is
recorded beside them in ``model/seq2cnn.safetensors.sha256`` (``sha256sum``
format) and checked at every load. Every problem (missing file, checksum
mismatch, missing/unexpected tensor, wrong shape) raises :class:`WeightsError`
naming the file and the tensor.

Their sha256 is computed once per process (:func:`common.files.file_sha256`,
re-exported here): verifying them again, keying the folded-table cache with it
or recording it in ``run.json`` costs a ``stat``, unless the file changed.
"""

from __future__ import annotations

import functools
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from common.errors import BadInputError
from common.files import atomic_write, file_sha256, write_text_atomically
from model.network import Seq2CNN, Seq2CNNConfig
from model.paths import DEFAULT_WEIGHTS, checksum_file, recorded_sha256


class WeightsError(BadInputError):
    """Weights are missing, corrupt, or do not fit the Seq2CNN network."""


@functools.lru_cache(maxsize=4)
def expected_shapes(config: Seq2CNNConfig = Seq2CNNConfig()) -> dict[str, tuple[int, ...]]:
    """The shape of each tensor of the network ``config`` describes, by name.

    Built on the CPU (tens of ms), leaving torch's random state as it was. Not on the ``meta`` device: there
    the initialisers import torch's compiler stack, which costs most of a second and imports Triton, whose
    bindings then print "nanobind: leaked ..." when the process exits."""
    with torch.random.fork_rng(devices=[]):
        return {name: tuple(tensor.shape) for name, tensor in Seq2CNN(config).state_dict().items()}


def check_state_dict(state: dict[str, torch.Tensor], source: str, config: Seq2CNNConfig = Seq2CNNConfig()) -> None:
    """Raise :class:`WeightsError` unless ``state`` has exactly the network's tensors and shapes."""
    shapes = expected_shapes(config)
    missing = sorted(set(shapes) - set(state))
    unexpected = sorted(set(state) - set(shapes))
    if missing or unexpected:
        raise WeightsError(
            f"{source} does not hold Seq2CNN weights: missing tensors {missing or 'none'}, "
            f"unexpected tensors {unexpected or 'none'}"
        )
    for name, shape in shapes.items():
        if tuple(state[name].shape) != shape:
            raise WeightsError(f"{source}: tensor {name!r} has shape {tuple(state[name].shape)}, expected {shape}")


def save_weights(model: Seq2CNN, path: Path, metadata: dict[str, str] | None = None) -> str:
    """Write fp32 weights atomically with their ``.sha256`` file; returns the sha256."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {name: tensor.detach().float().contiguous().cpu() for name, tensor in model.state_dict().items()}
    with atomic_write(path) as stream:
        stream.write(save(state, metadata=metadata or {}))
    digest = file_sha256(path)
    write_text_atomically(checksum_file(path), f"{digest}  {path.name}\n")
    return digest


def verified_sha256(path: Path, expected_sha256: str | None = None) -> str:
    """The sha256 of the weights file ``path`` once it matches ``expected_sha256``, else the one recorded in
    ``<path>.sha256``; :class:`WeightsError` for a missing file, no recorded sum, or a mismatch."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file not found: {path}; pass --model-path or restore model/seq2cnn.safetensors")
    expected = expected_sha256 or recorded_sha256(path)
    if expected is None:
        raise WeightsError(f"no sha256 recorded for {path}: expected {checksum_file(path)} beside it")
    actual = file_sha256(path)
    if actual != expected.lower():
        raise WeightsError(f"checksum mismatch for {path}: sha256 is {actual}, expected {expected}; the file is corrupt or not the recorded one")
    return actual


def load_state_dict(path: Path = DEFAULT_WEIGHTS, expected_sha256: str | None = None) -> dict[str, torch.Tensor]:
    """Tensors of a weights file, after checking its sha256 and its tensor names and shapes.

    The expected sha256 is ``expected_sha256`` if given, else the one recorded
    in ``<path>.sha256``; a file with neither is refused.
    """
    path = Path(path)
    verified_sha256(path, expected_sha256)
    try:
        state = load_file(path)
    except (SafetensorError, OSError) as error:
        raise WeightsError(f"{path} is not a readable safetensors file: {error}") from error
    check_state_dict(state, str(path))
    return state


def load_model(path: Path = DEFAULT_WEIGHTS, expected_sha256: str | None = None) -> Seq2CNN:
    """A Seq2CNN in eval mode with the checked weights of ``path``, fp32 on the CPU."""
    model = Seq2CNN()
    model.load_state_dict(load_state_dict(path, expected_sha256))
    return model.eval()

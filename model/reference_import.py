"""Import the original reference Seq2CNN checkpoints as this project's safetensors weights.

    python -m model.reference_import SOURCE --output model/imported.safetensors

SOURCE is one of:

- a PyTorch state dict (``.pt`` / ``.pth``) with the reference's parameter
  names, possibly wrapped under ``"state_dict"`` or ``"model"``; it is read
  with ``torch.load(weights_only=True)``, so no pickled code runs;
- the reference's numpy dump of the same parameters: an ``.npz`` archive, or
  an ``.npy`` written by ``np.save(path, dict_of_arrays)``. Such an ``.npy``
  is a pickle; it is read by an unpickler that rebuilds only numpy arrays and
  dicts and refuses every other global, so no pickled code runs either.

Names may carry MXNet's ``arg:`` / ``aux:`` prefixes (or ``module.`` from
``DataParallel``). The tensors are converted to fp32, checked against the
network's names and shapes, and written with their ``.sha256``; use the
result with ``--model-path``. An existing output file is never replaced.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import pickle
import sys
import zipfile
from collections import OrderedDict
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch
from numpy.lib import format as npy_format

from common.errors import run_command
from common.files import sha256_of_file
from common.text import plain
from model.network import Seq2CNN
from model.weights import WeightsError, check_state_dict, expected_shapes, save_weights

log = logging.getLogger(__name__)

TORCH_SUFFIXES = (".pt", ".pth")
NUMPY_SUFFIXES = (".npz", ".npy")
#: prefixes that MXNet (``arg:``, ``aux:``) or ``DataParallel`` (``module.``) put before the names
KEY_PREFIXES = ("arg:", "aux:", "module.")
#: keys under which a checkpoint may wrap its state dict
WRAPPER_KEYS = ("state_dict", "model")


def _numpy_core(submodule: str) -> Any:
    """``numpy._core.<submodule>`` (numpy 2) or ``numpy.core.<submodule>`` (numpy 1)."""
    try:
        return importlib.import_module(f"numpy._core.{submodule}")
    except ImportError:
        return importlib.import_module(f"numpy.core.{submodule}")


def _reconstruct() -> Callable[..., np.ndarray]:
    return _numpy_core("multiarray")._reconstruct


#: the only globals a pickled dict of numpy arrays needs, whichever numpy wrote it;
#: each resolves to the running numpy's object
ALLOWED_GLOBALS: dict[tuple[str, str], Callable[[], Any]] = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): lambda: np.ndarray,
    ("numpy", "dtype"): lambda: np.dtype,
    ("collections", "OrderedDict"): lambda: OrderedDict,
    ("builtins", "dict"): lambda: dict,
    # Protocol 2 pickles (older numpy) store raw bytes through _codecs.encode.
    ("_codecs", "encode"): lambda: importlib.import_module("_codecs").encode,
}


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that rebuilds numpy arrays and dicts and refuses any other global."""

    def __init__(self, stream: BinaryIO, source: Path):
        # latin1 lets Python 2 pickles of array data load as bytes.
        super().__init__(stream, encoding="latin1")
        self.source = source

    def find_class(self, module: str, name: str) -> Any:
        resolve = ALLOWED_GLOBALS.get((module, name))
        if resolve is None:
            raise WeightsError(
                f"{self.source}: the pickled data references {module}.{name}, which a dict of numpy arrays "
                "never needs; refusing to load it. Re-save the parameters with np.savez, or convert them "
                "where you trust the file"
            )
        return resolve()


def load_npy_dict(path: Path) -> Mapping[str, Any]:
    """The dict that ``np.save(path, dict_of_arrays)`` wrote, read without running pickled code."""
    with open(path, "rb") as stream:
        try:
            version = npy_format.read_magic(stream)
            if version == (1, 0):
                shape, _, dtype = npy_format.read_array_header_1_0(stream)
            elif version == (2, 0):
                shape, _, dtype = npy_format.read_array_header_2_0(stream)
            else:
                raise WeightsError(f"{path}: .npy format version {version} is not supported; re-save it with np.save or np.savez")
        except ValueError as error:
            raise WeightsError(f"{path} is not a readable .npy file: {error}") from error
        if dtype != np.dtype(object) or shape != ():
            raise WeightsError(
                f"{path} holds one {dtype} array of shape {shape}, not a dict of named arrays; "
                "expected the output of np.save(path, dict_of_arrays) or an .npz"
            )
        try:
            loaded = RestrictedUnpickler(stream, path).load()
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, KeyError, IndexError) as error:
            raise WeightsError(f"{path}: cannot read the pickled dict: {error}") from error
    content = loaded.item() if isinstance(loaded, np.ndarray) and loaded.shape == () else loaded
    if not isinstance(content, Mapping):
        raise WeightsError(f"{path} holds a {type(content).__name__}, not a dict of named arrays")
    return content


def load_npz_dict(path: Path) -> Mapping[str, Any]:
    if not zipfile.is_zipfile(path):
        raise WeightsError(f"{path} is not an .npz archive (not a zip file); expected the output of np.savez")
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    except (ValueError, OSError, zipfile.BadZipFile) as error:
        # numpy's message goes on to suggest allow_pickle=True; keep only its first sentence.
        reason = str(error).split(". ")[0]
        raise WeightsError(f"{path} is not a readable .npz of plain arrays: {reason}") from error


def load_torch_dict(path: Path) -> Mapping[str, Any]:
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        # torch's message starts with advice to retry with weights_only=False; keep only the cause.
        causes = [line.strip() for line in str(error).splitlines() if "global" in line.lower()]
        reason = causes[0] if causes else "torch.load(weights_only=True) refused it"
        raise WeightsError(f"{path} is not a plain PyTorch state dict ({reason}); only tensors and dicts are accepted") from error
    except (RuntimeError, EOFError, OSError, ValueError) as error:
        raise WeightsError(f"{path} is not a readable PyTorch file: {error}") from error
    if not isinstance(loaded, Mapping):
        raise WeightsError(f"{path} holds a {type(loaded).__name__}, not a state dict")
    for key in WRAPPER_KEYS:
        if isinstance(loaded.get(key), Mapping):
            return loaded[key]
    return loaded


def load_source(path: Path) -> Mapping[str, Any]:
    """The name -> array/tensor mapping stored in ``path``, chosen by its suffix."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"reference checkpoint not found: {path}")
    suffix = path.suffix.lower()
    if suffix in TORCH_SUFFIXES:
        return load_torch_dict(path)
    if suffix == ".npz":
        return load_npz_dict(path)
    if suffix == ".npy":
        return load_npy_dict(path)
    raise WeightsError(f"{path}: unknown checkpoint type {suffix!r}; expected one of {TORCH_SUFFIXES + NUMPY_SUFFIXES}")


def reference_name(key: str) -> str:
    """``key`` without the MXNet / DataParallel prefixes."""
    stripped = True
    while stripped:
        stripped = False
        for prefix in KEY_PREFIXES:
            if key.startswith(prefix):
                key, stripped = key[len(prefix):], True
    return key


def to_state_dict(raw: Mapping[str, Any], source: str) -> dict[str, torch.Tensor]:
    """fp32 tensors under the network's names; raises :class:`WeightsError` naming any mismatch."""
    expected = sorted(expected_shapes())
    renamed: dict[str, str] = {}
    for key in raw:
        name = reference_name(str(key))
        if name in renamed:
            raise WeightsError(f"{source}: keys {renamed[name]!r} and {key!r} both map to the tensor {name!r}")
        renamed[name] = str(key)
    if sorted(renamed) != expected:
        raise WeightsError(
            f"{source}: tensor names do not match the reference Seq2CNN: found {sorted(map(str, raw))}, "
            f"expected {expected} (optionally prefixed by {' or '.join(KEY_PREFIXES)})"
        )
    state: dict[str, torch.Tensor] = {}
    for name, key in renamed.items():
        value = raw[key]
        if isinstance(value, torch.Tensor) and value.is_floating_point():
            tensor = value.detach()
        elif isinstance(value, np.ndarray) and np.issubdtype(value.dtype, np.floating):
            tensor = torch.from_numpy(np.ascontiguousarray(value))
        else:
            kind = f"{type(value).__name__} of {value.dtype}" if hasattr(value, "dtype") else type(value).__name__
            raise WeightsError(f"{source}: tensor {name!r} is a {kind}, expected floating-point values")
        state[name] = tensor.to(torch.float32).contiguous().clone()
    check_state_dict(state, source)
    return state


def import_reference(source: Path, output: Path) -> str:
    """Convert the checkpoint ``source`` into safetensors at ``output``; returns the output's sha256."""
    source, output = Path(source), Path(output)
    if output.exists() or output.is_symlink():
        raise WeightsError(f"{output} already exists; remove it or pass another --output")
    state = to_state_dict(load_source(source), str(source))
    model = Seq2CNN()
    model.load_state_dict(state)
    metadata = {"imported_from": source.name, "source_sha256": sha256_of_file(source)}
    digest = save_weights(model, output, metadata)
    log.info("imported %s into %s (sha256 %s)", source, output, digest)
    return digest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=plain(__doc__), formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", type=Path, metavar="SOURCE", help="reference checkpoint: .pt, .pth, .npz or .npy")
    parser.add_argument("--output", type=Path, required=True, help="safetensors file to write (must not exist)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return run_command(lambda: _import(args), log)


def _import(args: argparse.Namespace) -> int:
    digest = import_reference(args.source, args.output)
    print(f"wrote {args.output} (sha256 {digest}); use it with --model-path {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

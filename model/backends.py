"""Inference backends: one small interface, several ways to compute Seq2CNN.

Every backend turns a batch of unpadded token-id arrays into logits and
labels; scheduling, batching policy and LoadGen live in ``sut/``.

- ``reference``: the yardstick. Each review padded (or truncated) to 1000 ids,
  fp32 PyTorch, exactly as the reference implementation.
- ``trimmed``: the same convolutions over only the review's real tokens plus
  4 padding ids (rewrite 1 of :mod:`model.folded`, via :mod:`model.batching`).
- ``onnxruntime-trimmed``, ``onnxruntime-folded``, ``openvino-trimmed``,
  ``openvino-folded``: the exported ONNX graphs (:mod:`model.export_onnx`) in
  ONNX Runtime or OpenVINO, fp32 (:mod:`model.onnx_backends`).
- ``folded``: the embedding folded into per-tap tables and the padding into
  one constant vector (:mod:`model.folded`): a fused numba kernel on the CPU,
  a fused Triton kernel on a CUDA GPU (:mod:`model.triton_folded`; torch
  gathers in fp32 where Triton is not installed); fp32, or bf16 or int8
  tables with ``precision=``. numba, Triton and the kernels are imported only
  when this backend is created.

``--precision`` is checked by :func:`model.precision.check_precision` (fp32
everywhere, bf16 and int8 too for the folded backend); :data:`PRECISIONS` is
re-exported here. An unknown backend is a :class:`BackendChoiceError`, a device
torch does not know or see a :class:`DeviceError`: input errors (exit 2), and
:class:`ValueError` as they have always been.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path
from typing import Protocol, Sequence

import numpy as np
import torch

from common.errors import BadInputError
from model.batching import pad_to_width, padded_batch
from model.errors import DeviceError
from model.network import Seq2CNN
from model.onnx_backends import ONNX_BACKENDS, OnnxGraphBackend
from model.paths import DEFAULT_WEIGHTS
from model.precision import BACKEND_NAMES, PRECISIONS, PrecisionError, check_precision
from model.weights import load_model

__all__ = ["BACKENDS", "PRECISIONS", "Backend", "BackendChoiceError", "DeviceError", "FoldedBackend",
           "ReferenceBackend", "TrimmedBackend", "check_precision", "create_backend", "torch_device"]


class BackendChoiceError(BadInputError, ValueError):
    """A backend name that is not one of :data:`BACKENDS`."""


class Backend(Protocol):
    """What the SUT needs from a way of computing Seq2CNN."""

    name: str
    #: the software that computes, and its release (``run.json``, the system description's ``framework``)
    framework: str

    def logits(self, token_ids: Sequence[np.ndarray]) -> np.ndarray:
        """fp32 logits, shape (len(token_ids), 2), for unpadded int token-id arrays."""

    def labels(self, token_ids: Sequence[np.ndarray]) -> np.ndarray:
        """Predicted classes, int64 shape (len(token_ids),): 1 positive, 0 negative."""


def torch_device(requested: str) -> torch.device:
    """``requested`` as a torch device; :class:`DeviceError` (a :class:`ValueError`) for a name torch does not
    know, a CUDA device torch does not see, or a device type other than cpu and cuda."""
    try:
        device = torch.device(requested)
    except (RuntimeError, TypeError, ValueError):
        raise DeviceError(f"--device {requested!r} is not a torch device: use cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DeviceError(f"--device {requested} was asked for, but torch sees no CUDA device; use --device cpu")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise DeviceError(f"--device {requested}: torch sees {torch.cuda.device_count()} CUDA device(s), "
                          f"numbered from 0; pick one of them")
    if device.type not in ("cpu", "cuda"):
        raise DeviceError(f"--device {requested}: the backends run on cpu or cuda, not {device.type}")
    return device


class _TorchModelBackend:
    """Shared part of the backends that run the PyTorch module."""

    name = "torch"

    def __init__(self, weights_path: Path = DEFAULT_WEIGHTS, device: str = "cpu", threads: int | None = None):
        if threads:
            torch.set_num_threads(threads)
        self.device = torch_device(device)
        self.model: Seq2CNN = load_model(weights_path).to(self.device)
        self.max_length = self.model.config.max_length
        self.framework = f"PyTorch {torch.__version__}"

    def batch(self, token_ids: Sequence[np.ndarray]) -> torch.Tensor:
        raise NotImplementedError

    @torch.inference_mode()
    def logits(self, token_ids: Sequence[np.ndarray]) -> np.ndarray:
        return self.model(self.batch(token_ids).to(self.device)).float().cpu().numpy()

    def labels(self, token_ids: Sequence[np.ndarray]) -> np.ndarray:
        return self.logits(token_ids).argmax(axis=1).astype(np.int64)


class ReferenceBackend(_TorchModelBackend):
    """Reference-faithful PyTorch: every review padded to 1000 ids, fp32."""

    name = "reference"

    def batch(self, token_ids: Sequence[np.ndarray]) -> torch.Tensor:
        return pad_to_width(token_ids, self.max_length)


class TrimmedBackend(_TorchModelBackend):
    """PyTorch fp32 over the real tokens only: the batch padded to its longest review + 4 ids."""

    name = "trimmed"

    def batch(self, token_ids: Sequence[np.ndarray]) -> torch.Tensor:
        return padded_batch(token_ids, self.max_length)


class FoldedBackend:
    """Folded tables with a running max: a fused numba kernel on the CPU, a fused Triton kernel on a CUDA GPU
    (torch gathers, fp32 only, where Triton is not installed).

    ``precision`` is the tables' (:data:`PRECISIONS`): fp32
    (exact), bf16 or int8. The folded tables come from :mod:`model.table_cache`
    (built and cached on first use, under ``table_cache`` if given, else the
    user's cache folder); ``load_report`` says where from and how long.
    ``kernel`` names what computes: ``numba``, ``triton`` or ``torch``.
    """

    name = "folded"

    def __init__(self, weights_path: Path = DEFAULT_WEIGHTS, device: str = "cpu", threads: int | None = None,
                 precision: str = "fp32", table_cache: Path | None = None):
        import numba  # only this backend needs numba and its compiled kernel

        from model.table_cache import load_folded_tables, load_int8_tiles

        self.device = torch_device(device)
        check_precision(self.name, str(self.device), precision)
        if threads:
            numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
            torch.set_num_threads(threads)
        self.precision = precision
        self.kernel = "numba" if self.device.type == "cpu" else "triton" if triton_installed() else "torch"
        if self.kernel == "torch" and precision != "fp32":
            raise PrecisionError(f"--precision {precision} on {self.device} runs the folded backend's Triton kernel, "
                                 "and Triton is not installed: pip install triton (or drop --precision)")
        if precision == "int8" and self.kernel == "numba":  # its own cache: the int8 tiles, ready to serve
            self.compute, self.load_report = load_int8_tiles(weights_path, table_cache)
        else:
            tables, self.load_report = load_folded_tables(weights_path, table_cache)
            if self.kernel == "numba":
                self.compute = tables.tiled(precision)
            elif self.kernel == "triton":
                from model.triton_folded import TritonFoldedTables

                self.compute = TritonFoldedTables.from_folded(tables, self.device, precision)
            else:
                self.compute = tables.to_torch(self.device)
            del tables
        if self.device.type == "cpu":
            self.compute.one_thread = threads == 1  # the kernel without numba's thread pool
        self.framework = (f"numba {numba.__version__}" if self.kernel == "numba"
                          else f"Triton {triton_version()}, PyTorch {torch.__version__}" if self.kernel == "triton"
                          else f"PyTorch {torch.__version__}")
        if self.kernel != "torch":  # compile the kernel before anything is timed
            self.compute.logits([np.array([1, 2, 3, 4, 5], dtype=np.int32)])

    def logits(self, token_ids: Sequence[np.ndarray]) -> np.ndarray:
        return self.compute.logits(token_ids)

    def labels(self, token_ids: Sequence[np.ndarray]) -> np.ndarray:
        return self.logits(token_ids).argmax(axis=1).astype(np.int64)


def triton_installed() -> bool:
    """Whether Triton can be imported (the folded backend's CUDA kernel), without importing it."""
    return importlib.util.find_spec("triton") is not None


def triton_version() -> str:
    """The installed Triton's release (the folded backend's CUDA kernel)."""
    import triton

    return triton.__version__


BACKENDS = {**{backend.name: backend for backend in (ReferenceBackend, TrimmedBackend, FoldedBackend)},
            **{name: functools.partial(OnnxGraphBackend, name) for name in ONNX_BACKENDS}}
assert tuple(BACKENDS) == BACKEND_NAMES, "model.precision.BACKEND_NAMES names the backends of BACKENDS, in order"


def create_backend(name: str, weights_path: Path = DEFAULT_WEIGHTS, device: str = "cpu", threads: int | None = None,
                   precision: str = "fp32") -> Backend:
    """The backend called ``name`` (see :data:`BACKENDS`) with the checked weights of ``weights_path``.

    ``precision`` other than fp32 exists for the ``folded`` backend only
    (:func:`model.precision.check_precision`, :class:`model.precision.PrecisionError`).
    """
    if name not in BACKENDS:
        raise BackendChoiceError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
    if name == FoldedBackend.name:
        return FoldedBackend(weights_path, device, threads, precision)
    check_precision(name, device, precision)  # fp32 only: these backends run the PyTorch module
    return BACKENDS[name](weights_path, device, threads)

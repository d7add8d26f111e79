"""Backends that run the exported ONNX graphs (:mod:`model.export_onnx`) in another runtime: ONNX Runtime or
OpenVINO, each with the ``trimmed`` or the ``folded`` graph, in fp32.

Four backend names, ``<runtime>-<graph>``: ``onnxruntime-trimmed``, ``onnxruntime-folded``,
``openvino-trimmed``, ``openvino-folded``. A batch is padded to its longest review + 4 ids (at most 1000,
:func:`model.batching.padded_batch`), the graphs' input, which gives the reference's function exactly.

Devices (``--device``):

- ONNX Runtime: ``cpu`` (CPUExecutionProvider), ``cuda`` (CUDAExecutionProvider), ``tensorrt``
  (TensorrtExecutionProvider, CUDA behind it); the GPU providers come with ``onnxruntime-gpu``, which replaces
  the CPU package (``pip install -e '.[onnx-gpu]'``).
- OpenVINO: ``cpu`` or ``gpu`` (its CPU and GPU plugins; ``gpu.1`` for a second GPU), computing in f32 (its CPU
  plugin otherwise computes in bf16 where the processor has it).

A device the runtime does not offer is a :class:`model.errors.DeviceError` naming those it does; a runtime
that is not installed a :class:`RuntimeMissingError` naming the extra to install (both exit 2).
"""

from __future__ import annotations

import importlib
import importlib.util
import threading
from pathlib import Path
from typing import Sequence

import numpy as np

from common.errors import BadInputError
from model.batching import padded_batch
from model.errors import DeviceError
from model.export_onnx import INPUT_NAME, exported_graph
from model.paths import DEFAULT_WEIGHTS
from model.precision import ONNX_BACKEND_NAMES
from qsl.vocabulary import MAX_LENGTH

#: backend name -> (runtime, graph)
ONNX_BACKENDS = {name: tuple(name.split("-")) for name in ONNX_BACKEND_NAMES}
#: the package extra that installs each runtime
RUNTIME_EXTRAS = {"onnxruntime": "onnx", "openvino": "openvino"}
#: ONNX Runtime's execution provider for each --device type
ORT_PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider",
                 "tensorrt": "TensorrtExecutionProvider"}


class RuntimeMissingError(BadInputError):
    """The runtime a backend needs is not installed (exit 2): the message names the extra that installs it."""


def runtime_installed(runtime: str) -> bool:
    """Whether ``runtime`` (``onnxruntime`` or ``openvino``) can be imported, without importing it."""
    return importlib.util.find_spec(runtime) is not None


def installed_backend_names() -> list[str]:
    """The ONNX backends whose runtime is installed, in :data:`ONNX_BACKENDS` order."""
    return [name for name, (runtime, _) in ONNX_BACKENDS.items() if runtime_installed(runtime)]


def _import_runtime(runtime: str):
    """The runtime's module, or :class:`RuntimeMissingError` naming the extra that installs it."""
    try:
        return importlib.import_module(runtime)
    except ImportError as error:
        raise RuntimeMissingError(f"the {runtime} backends need {runtime} ({error}): "
                                  f"pip install -e '.[{RUNTIME_EXTRAS[runtime]}]'") from error


class OnnxGraphBackend:
    """One exported graph in one runtime (see the module docstring); ``framework`` names the runtime and its
    release, for ``run.json`` and the system description."""

    def __init__(self, name: str, weights_path: Path = DEFAULT_WEIGHTS, device: str = "cpu",
                 threads: int | None = None):
        self.name = name
        self.runtime, self.graph = ONNX_BACKENDS[name]
        self.device = device
        self.precision = "fp32"
        _import_runtime(self.runtime)  # first: a missing runtime names its extra, which brings onnx too
        self.graph_path = exported_graph(self.graph, weights_path)
        run = self._onnxruntime if self.runtime == "onnxruntime" else self._openvino
        self._run, self.framework = run(self.graph_path, device, threads)
        self.labels([np.array([1, 2, 3, 4, 5], dtype=np.int32)])  # compile before anything is timed

    @staticmethod
    def _onnxruntime(path: Path, device: str, threads: int | None):
        onnxruntime = _import_runtime("onnxruntime")
        device_type, _, index = device.partition(":")
        provider = ORT_PROVIDERS.get(device_type)
        available = onnxruntime.get_available_providers()
        if provider is None or provider not in available:
            offered = [kind for kind, name in ORT_PROVIDERS.items() if name in available]
            gpu_hint = (" (the GPU providers come with onnxruntime-gpu: pip install -e '.[onnx-gpu]')"
                        if device_type in ("cuda", "tensorrt") else "")
            raise DeviceError(f"--device {device}: this ONNX Runtime {onnxruntime.__version__} offers "
                                f"{', '.join(offered)}{gpu_hint}")
        options = onnxruntime.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        provider_options = [{"device_id": int(index)}] if index and device_type != "cpu" else None
        session = onnxruntime.InferenceSession(str(path), options, providers=[provider],
                                               provider_options=provider_options)
        return (lambda batch: session.run(None, {INPUT_NAME: batch})[0]), f"ONNX Runtime {onnxruntime.__version__}"

    @staticmethod
    def _openvino(path: Path, device: str, threads: int | None):
        openvino = _import_runtime("openvino")
        core = openvino.Core()
        target = device.upper().replace(":", ".")
        if target not in core.available_devices and target.split(".")[0] not in core.available_devices:
            raise DeviceError(f"--device {device}: this OpenVINO {openvino.get_version().split('-')[0]} offers "
                                f"{', '.join(name.lower() for name in core.available_devices)}")
        config = {"INFERENCE_PRECISION_HINT": "f32"}
        if threads and target == "CPU":
            config["INFERENCE_NUM_THREADS"] = threads
        compiled = core.compile_model(str(path), target, config)
        version = openvino.get_version().split("-")[0]
        per_thread = threading.local()  # an infer request serves one call at a time: one per --workers thread

        def run(batch: np.ndarray) -> np.ndarray:
            request = getattr(per_thread, "request", None)
            if request is None:
                request = per_thread.request = compiled.create_infer_request()
            return request.infer({0: batch})[0]

        return run, f"OpenVINO {version}"

    def logits(self, token_ids: Sequence[np.ndarray]) -> np.ndarray:
        batch = padded_batch(token_ids, MAX_LENGTH).numpy()
        return np.asarray(self._run(batch), dtype=np.float32)

    def labels(self, token_ids: Sequence[np.ndarray]) -> np.ndarray:
        return self.logits(token_ids).argmax(axis=1).astype(np.int64)

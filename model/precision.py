"""The table precisions of the folded backend's kernels, and the one rule of where ``--precision`` applies.

fp32 (the default) is exact; bf16 halves the bytes the kernel reads, int8 quarters them. Only the
folded backend has a choice, on the CPU (its numba kernel) and on a CUDA GPU (its Triton kernel,
:mod:`model.triton_folded`): every other backend runs in fp32. :func:`check_precision` is that rule,
checked wherever a backend is asked for (``run.py``'s options, :func:`model.backends.create_backend`,
the folded backend, the Ray actors). No torch or numba is imported here.
"""

from __future__ import annotations

from common.errors import BadInputError

#: table precisions of the folded backend's kernels: fp32 is exact (the default), bf16 halves the bytes read,
#: int8 quarters them (integer sums; :mod:`model.quantization`)
PRECISIONS = ("fp32", "bf16", "int8")
#: the project's own backends (:mod:`model.backends`)
NATIVE_BACKEND_NAMES = ("reference", "trimmed", "folded")
#: the exported ONNX graphs in another runtime, ``<runtime>-<graph>`` (:mod:`model.onnx_backends`)
ONNX_BACKEND_NAMES = tuple(f"{runtime}-{graph}" for runtime in ("onnxruntime", "openvino")
                           for graph in ("trimmed", "folded"))
#: the backends ``--backend`` offers (:data:`model.backends.BACKENDS` holds their classes), named here so that a
#: command line can list them without importing torch
BACKEND_NAMES = NATIVE_BACKEND_NAMES + ONNX_BACKEND_NAMES
#: the one backend, and the device types, where a precision other than fp32 exists
FOLDED_BACKEND = "folded"
KERNEL_DEVICE_TYPES = ("cpu", "cuda")


class PrecisionError(BadInputError, ValueError):
    """A ``--precision`` that is not one of :data:`PRECISIONS`, or one other than fp32 where only fp32 runs.

    A :class:`ValueError` too, as the backends' errors of a bad option have always been.
    """


def check_precision(backend: str, device_type: str, precision: str) -> None:
    """:class:`PrecisionError` unless ``precision`` can run on the ``backend`` backend on ``device_type``.

    ``precision`` must be one of :data:`PRECISIONS`, and other than fp32 only
    for the folded backend (on the CPU or a CUDA GPU). ``device_type`` is a
    device type (``cpu``, ``cuda``) or a device name (``cuda:1``): the rule
    looks at the type, the message names it as given.
    """
    if precision not in PRECISIONS:
        raise PrecisionError(f"--precision {precision!r} is not one of {', '.join(PRECISIONS)}")
    device = str(device_type)
    if precision != "fp32" and (backend != FOLDED_BACKEND or device.split(":")[0] not in KERNEL_DEVICE_TYPES):
        raise PrecisionError(f"--precision {precision} is an option of the folded backend (on cpu or cuda); the "
                             f"{backend} backend on {device} runs in fp32: drop --precision")

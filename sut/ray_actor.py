"""The backend actor: what lives in a Ray worker process and answers the driver's batches.

:class:`BackendActor` holds one backend (``--backend``, ``--device``, ``--precision``, as its
:class:`ActorSpec` says). It receives the weights' bytes through Ray's object store, checks their sha256 before
it serves, and keeps them in the node's cache folder (:func:`stage_weights`, so the folded backend's table
cache works per node). Each batch comes and goes as one message of :mod:`sut.ray_wire`.

Ray ships the actor class to its workers by reference: a worker imports this module, so it imports only what
the actor needs (the backend itself when the actor starts), nothing of the driver's pool (:mod:`sut.ray_pool`).
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common.errors import InferenceFailedError
from common.files import sha256_of_file, write_bytes_atomically, write_text_atomically
from model.paths import checksum_file
from model.weights import WeightsError
from qsl.locations import cache_dir
from sut.ray_wire import decode_batch, encode_result


@dataclass(frozen=True)
class ActorSpec:
    """How each actor makes its backend, and what it reserves of the cluster."""

    backend: str
    device: str
    precision: str
    threads: int | None
    weights_name: str
    weights_sha256: str
    cpus: float
    gpus: float


def stage_weights(weights: bytes, expected_sha256: str, name: str) -> Path:
    """Check ``weights`` against ``expected_sha256`` and keep them (with their ``.sha256``) in this node's cache
    folder; the path. :class:`WeightsError` when the bytes are not the expected ones."""
    digest = hashlib.sha256(weights).hexdigest()
    if digest != expected_sha256:
        raise WeightsError(f"the weights a Ray actor received have sha256 {digest}, not the {expected_sha256} of "
                           f"{name}: they were damaged on the way; run again")
    folder = cache_dir() / "ray-weights"
    path = folder / f"{digest[:24]}-{name}"
    if not (path.is_file() and sha256_of_file(path) == digest):
        folder.mkdir(parents=True, exist_ok=True)
        write_bytes_atomically(path, weights)
    write_text_atomically(checksum_file(path), f"{digest}  {path.name}\n")
    return path


class BackendActor:
    """One backend in a Ray worker process (made a Ray actor class by :func:`sut.ray_pool.actor_class`)."""

    def __init__(self, spec: ActorSpec, weights: bytes):
        from model.backends import create_backend

        self.spec = spec
        path = stage_weights(weights, spec.weights_sha256, spec.weights_name)
        self.backend = create_backend(spec.backend, path, spec.device, spec.threads, spec.precision)

    def describe(self) -> dict:
        """Where this actor runs and on what (the fields of :class:`readback.cluster.ActorInfo` but the index)."""
        import ray

        context = ray.get_runtime_context()
        node_id = context.get_node_id()
        address = next((node["NodeManagerAddress"] for node in ray.nodes() if node["NodeID"] == node_id), "")
        report = getattr(self.backend, "load_report", None)
        return dict(node_id=node_id, node_address=address, pid=os.getpid(), device=self.spec.device,
                    gpu_ids=[str(gpu) for gpu in context.get_accelerator_ids().get("GPU", [])], cpus=self.spec.cpus,
                    threads=self.spec.threads, tables_source=report.source if report is not None else None,
                    tables_load_seconds=report.seconds if report is not None else None,
                    framework=getattr(self.backend, "framework", None))

    def labels(self, batch: bytes) -> bytes:
        """The :func:`~sut.ray_wire.encode_result` answer (the batch's own sample ids, their labels, the compute
        ns inside this actor) to an :func:`~sut.ray_wire.encode_batch` batch."""
        started = time.perf_counter_ns()
        sample_ids, reviews = decode_batch(batch)
        labels = np.asarray(self.backend.labels(reviews))
        if labels.shape != sample_ids.shape or not np.issubdtype(labels.dtype, np.integer):
            raise InferenceFailedError(f"the {self.spec.backend} backend answered a batch of {len(sample_ids)} reviews "
                                       f"with {labels.dtype} labels of shape {labels.shape}: one integer label per "
                                       "review expected")
        return encode_result(sample_ids, labels, time.perf_counter_ns() - started)

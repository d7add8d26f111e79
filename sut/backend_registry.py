"""Backends by the name given to ``--backend``."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from model.backends import Backend, ReferenceBackend

BackendFactory = Callable[[Path, str, "int | None"], Backend]

BACKENDS: dict[str, BackendFactory] = {
    "reference": lambda weights, device, threads: ReferenceBackend(weights, device=device, threads=threads),
}


def create_backend(name: str, weights: Path, device: str = "cpu", threads: int | None = None) -> Backend:
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
    return BACKENDS[name](weights, device, threads)

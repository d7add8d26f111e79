"""Where numba keeps the machine code of the folded kernels: a folder keyed by every source file they compile from.

numba's own cache (``cache=True``) checks only the modification time and size of the file that defines a
compiled function. A function it inlines from another file (the intrinsics of
:mod:`model.numba_intrinsics`) can change while the machine code compiled from the old one is still served:
a run after an update that changed only that file would compute with the code it replaced. So the kernels'
cache lives in ``<base>/<sha256 of their source files, 16 hex>``: a change in any of them compiles anew.
``<base>`` is ``$NUMBA_CACHE_DIR`` when set (the Docker image's ``/cache/numba``), else
``<cache dir>/numba`` (:func:`common.caches.cache_dir`, outside the repository).

Call :func:`use_cache_keyed_by` before the ``cache=True`` functions are defined: numba picks a function's
cache folder when it is decorated. The folded CPU kernel (:mod:`model.folded_cpu`) calls it with its
``KERNEL_SOURCES``: its own file and the intrinsics'.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numba

from common.caches import cache_dir

log = logging.getLogger(__name__)

#: numba's own setting of its cache folder, read here as the base of the keyed folders
NUMBA_CACHE_VARIABLE = "NUMBA_CACHE_DIR"
#: hex digits of the sources' sha256 in the folder's name
KEY_LENGTH = 16


def sources_key(sources: Sequence[Path]) -> str:
    """The sha256 (:data:`KEY_LENGTH` hex digits) of the ``sources``' names and bytes, in the order given."""
    digest = hashlib.sha256()
    for source in sources:
        digest.update(Path(source).name.encode() + b"\0" + Path(source).read_bytes() + b"\0")
    return digest.hexdigest()[:KEY_LENGTH]


def use_cache_keyed_by(sources: Sequence[Path]) -> Path:
    """Point numba's cache at the folder keyed by ``sources`` (the files the kernels compile from) and return it."""
    configured = os.environ.get(NUMBA_CACHE_VARIABLE)
    base = Path(configured).expanduser() if configured else cache_dir() / "numba"
    folder = base / f"kernels-{sources_key(sources)}"
    numba.config.CACHE_DIR = str(folder)
    log.debug("numba's cache of the folded kernels: %s", folder)
    return folder

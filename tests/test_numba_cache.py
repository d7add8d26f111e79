"""numba's cache of the folded kernels is keyed by every file they compile from, not by the time stamp of the
file that defines them alone (numba's own check): a change in the intrinsics they inline compiles anew."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import model.folded_cpu as folded_cpu
from model import numba_intrinsics
from model.numba_cache import sources_key

REPO = Path(__file__).resolve().parent.parent

#: a module whose cached kernel inlines a function of another file, as model/folded_cpu.py inlines the intrinsics
KERNEL = """
import sys
from pathlib import Path
import numba
sys.path.insert(0, sys.argv[1])
from model.numba_cache import use_cache_keyed_by
import helper
use_cache_keyed_by([Path(__file__), Path(helper.__file__)])

@numba.njit(cache=True)
def kernel(x):
    return helper.step(x)

print(kernel(1))
"""
HELPER = """
import numba

@numba.njit(inline="always")
def step(x):
    return x + {increment}
"""


def test_a_change_in_an_inlined_file_alone_compiles_the_kernel_anew(tmp_path):
    code = tmp_path / "code"
    code.mkdir()
    (code / "kernel.py").write_text(KERNEL)
    env = os.environ | {"NUMBA_CACHE_DIR": str(tmp_path / "numba"), "PYTHONPATH": str(REPO)}
    answers = []
    for increment in (1, 100):
        (code / "helper.py").write_text(HELPER.format(increment=increment))
        result = subprocess.run([sys.executable, str(code / "kernel.py"), str(code)], capture_output=True, text=True,
                                env=env, timeout=300, check=True)
        answers.append(int(result.stdout.split()[-1]))
    assert answers == [2, 101]  # numba's own cache alone answers 2 twice: kernel.py did not change
    assert len(list((tmp_path / "numba").glob("kernels-*"))) == 2


def test_the_folded_kernels_cache_is_keyed_by_the_kernel_and_its_intrinsics(folded_backend, test_split):
    folded_backend.labels([ids[:1000] for ids in test_split.token_ids[:4]])
    expected = sources_key([Path(folded_cpu.__file__), Path(numba_intrinsics.__file__)])
    assert folded_cpu.KERNEL_CACHE.name == f"kernels-{expected}"
    assert any(folded_cpu.KERNEL_CACHE.rglob("*.nbi")), "the kernels were not cached in their keyed folder"


def test_every_file_with_numba_code_is_in_the_kernels_cache_key():
    """A model/ file whose functions numba compiles (njit, overload, intrinsic) changes the kernels' machine code:
    it must be one of the files their cache folder is keyed by."""
    numba_code = re.compile(r"@(numba\.)?(njit|jit|overload|intrinsic)\b")
    compiled = {path.name for path in (REPO / "model").glob("*.py") if numba_code.search(path.read_text())}
    assert compiled and compiled <= {path.name for path in folded_cpu.KERNEL_SOURCES}

"""The folded backend's Triton kernel against its CPU kernel, with the shipped weights and real reviews.

On a machine with a CUDA GPU the kernel runs there; elsewhere it runs in Triton's CPU interpreter
(``TRITON_INTERPRET=1``, set here before Triton is imported), so every machine checks its logic: the
window bounds at every edge length, the all-padding window, the rolled window sums, each precision's
arithmetic and the epilogue. The interpreter takes about a second per long review and precision.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

ON_GPU = torch.cuda.is_available()
if not ON_GPU:
    os.environ.setdefault("TRITON_INTERPRET", "1")  # before triton is first imported
try:
    import triton  # noqa: F401 - only whether it imports
except ImportError:
    if os.environ.get("CI"):
        raise
    pytest.skip("Triton is not installed: pip install -e '.[test]'", allow_module_level=True)

from model.paths import DEFAULT_WEIGHTS  # noqa: E402
from model.precision import PRECISIONS  # noqa: E402
from model.table_cache import load_folded_tables  # noqa: E402
from model.triton_folded import TritonFoldedTables  # noqa: E402

DEVICE = "cuda" if ON_GPU else "cpu"
#: the issue's bound on the logits' difference from the CPU kernel
LOGIT_TOLERANCE = 1e-4
#: lengths where the window bounds change: none, fewer ids than a window, one window, 996-1000 (where the
#: all-padding window of kernel 4, then of kernel 3, stops existing), and more than 1000 (truncated)
EDGE_LENGTHS = (0, 1, 2, 3, 4, 5, 8, 996, 997, 998, 999, 1000, 1001)


@pytest.fixture(scope="module")
def folded_tables():
    tables, _ = load_folded_tables(DEFAULT_WEIGHTS, None)
    return tables


@pytest.fixture(scope="module")
def edge_reviews(test_split):
    """Real reviews cut to each edge length (the longest real reviews, so that none is padded by hand), a few
    whole reviews of ordinary length, and one word repeated at the lengths where an all-padding window comes
    and goes (in a real review of 997 words some real window beats it in every channel; in these it is the
    maximum of some channels, so that a window bound off by one shows)."""
    by_length = sorted(range(len(test_split)), key=lambda index: -len(test_split.token_ids[index]))
    longest = [test_split.token_ids[index] for index in by_length[:len(EDGE_LENGTHS)]]
    assert all(len(ids) > max(EDGE_LENGTHS) for ids in longest)
    cut = [ids[:length].astype(np.int32) for ids, length in zip(longest, EDGE_LENGTHS)]
    word = int(longest[0][0])
    repeated = [np.full(length, word, dtype=np.int32) for length in (995, 996, 997, 998, 999, 1000)]
    return cut + [test_split.token_ids[index].astype(np.int32) for index in (0, 1, 2)] + repeated


@pytest.mark.parametrize("precision", [
    "fp32", pytest.param("bf16", marks=pytest.mark.slow), pytest.param("int8", marks=pytest.mark.slow)])
def test_the_triton_kernel_computes_what_the_cpu_kernel_does_at_every_edge_length(precision, folded_tables,
                                                                                   edge_reviews):
    """The running maxima bit for bit (every window, the all-padding one where it exists, each precision's
    arithmetic), then the logits of the epilogue."""
    tiled = folded_tables.tiled(precision)
    kernel = TritonFoldedTables.from_folded(folded_tables, DEVICE, precision)
    logits, maxima = kernel.logits_and_maxima(edge_reviews)
    np.testing.assert_array_equal(maxima, tiled.maxima(edge_reviews))
    cpu = tiled.logits(edge_reviews)
    assert logits.shape == (len(edge_reviews), 2) and logits.dtype == np.float32
    np.testing.assert_allclose(logits, cpu, atol=LOGIT_TOLERANCE, rtol=0)
    assert (logits.argmax(1) == cpu.argmax(1)).all()


def test_an_empty_batch_has_no_logits(folded_tables):
    kernel = TritonFoldedTables.from_folded(folded_tables, DEVICE)
    assert kernel.logits([]).shape == (0, 2)
    assert kernel.logits([np.array([7, 8, 9], dtype=np.int32)]).shape == (1, 2)  # one review: its own array


@pytest.mark.skipif(not ON_GPU, reason="needs a CUDA device (the interpreter would take hours for 25,000 reviews)")
def test_on_the_gpu_every_test_review_gets_the_cpu_kernels_labels(folded_tables, folded_backend, test_split):
    """fp32: the CPU kernel's labels on all 25,000 test reviews, logits within 1e-4; bf16 and int8 agree with
    fp32 on at least 99.9 %."""
    reviews = [ids[:1000].astype(np.int32) for ids in test_split.token_ids]
    batches = [reviews[start:start + 4096] for start in range(0, len(reviews), 4096)]
    cpu = np.concatenate([folded_backend.logits(batch) for batch in batches])
    on_gpu = {}
    for precision in PRECISIONS:
        kernel = TritonFoldedTables.from_folded(folded_tables, DEVICE, precision)
        on_gpu[precision] = np.concatenate([kernel.logits(batch) for batch in batches])
    np.testing.assert_allclose(on_gpu["fp32"], cpu, atol=LOGIT_TOLERANCE, rtol=0)
    assert (on_gpu["fp32"].argmax(1) == cpu.argmax(1)).all()
    for precision in ("bf16", "int8"):
        assert (on_gpu[precision].argmax(1) == on_gpu["fp32"].argmax(1)).mean() >= 0.999, precision

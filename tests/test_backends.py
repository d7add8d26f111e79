"""The fast backends compute the reference function: random weights on edge lengths, shipped weights on real reviews."""

import ast
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from common.errors import BadInputError
from model.backends import (
    BACKENDS,
    BackendChoiceError,
    DeviceError,
    FoldedBackend,
    ReferenceBackend,
    TrimmedBackend,
    create_backend,
    torch_device,
)
from model.batching import pad_to_width
from model.folded import FoldedTables
from model.precision import PRECISIONS, PrecisionError, check_precision
from model.weights import load_model

REPO = Path(__file__).resolve().parent.parent

#: largest |logit difference| accepted between a fast backend and the reference (fp32 sums in another order)
LOGIT_TOLERANCE = 1e-3

EDGE_LENGTHS = (0, 1, 2, 3, 4, 5, 57, 232, 995, 996, 997, 998, 999, 1000, 1001, 1400)

#: the integer the kernel starts each running max of an int8 run at
INT16_LOWEST = -32768


@pytest.fixture(scope="module")
def edge_reviews():
    rng = np.random.default_rng(5)
    reviews = [rng.integers(1, 5200, n).astype(np.int16) for n in EDGE_LENGTHS]
    reviews.append(np.full(10, 5199, dtype=np.int16))  # the clip id
    return reviews


@pytest.fixture(scope="module")
def table_cache(tmp_path_factory):
    """A folded-table cache for the random weights, away from the user's cache."""
    return tmp_path_factory.mktemp("tables")


def folded_by_numpy(tables: FoldedTables, ids: np.ndarray, round_tables=lambda table: table) -> np.ndarray:
    """Branch maxima (2 * channels,) of one review by plain numpy, in the kernel's order of fp32 additions:
    bias + tap 0 (rounded by ``round_tables`` with the bias in it), then taps 1, 2 (, 3)."""
    ids = np.asarray(ids[:tables.max_length], dtype=np.int64)
    padded = np.concatenate([ids, np.zeros(4, np.int64)])
    maxima = []
    for table, bias, pad in zip(tables.tables, tables.biases, tables.padding_vectors):
        taps = table.shape[0]
        windows = min(len(ids), tables.max_length - taps + 1)
        rows = [round_tables(bias + table[0])] + [round_tables(table[j]) for j in range(1, taps)]
        best = np.full(bias.shape, -np.inf, np.float32)
        for t in range(windows):
            total = rows[0][padded[t]]
            for j in range(1, taps):
                total = total + rows[j][padded[t + j]]
            best = np.maximum(best, total)
        if tables.max_length - len(ids) >= taps:
            best = np.maximum(best, pad)
        maxima.append(best)
    return np.concatenate(maxima)


def to_bf16(values: np.ndarray) -> np.ndarray:
    """fp32 values rounded to bf16 (nearest even) and widened back to fp32."""
    return torch.from_numpy(np.ascontiguousarray(values)).to(torch.bfloat16).float().numpy()


def int8_maxima_by_numpy(tables: FoldedTables, ids: np.ndarray) -> np.ndarray:
    """Integer branch maxima (2 * channels,) int64 of one review by plain numpy, from the int8 scheme's own
    definition: per channel and branch scale max |T| / 127, q = round(T / scale), window sums of q (no bias),
    their max, the all-padding window's sum of row 0 where the padded review has one."""
    ids = np.asarray(ids[:tables.max_length], dtype=np.int64)
    padded = np.concatenate([ids, np.zeros(4, np.int64)])
    maxima = []
    for table in tables.tables:
        largest = np.abs(table).max(axis=(0, 1)).astype(np.float64)
        scale = np.where(largest > 0, largest / 127, 1.0).astype(np.float32)
        q = np.clip(np.rint(table.astype(np.float64) / scale.astype(np.float64)), -127, 127).astype(np.int64)
        taps = table.shape[0]
        windows = min(len(ids), tables.max_length - taps + 1)
        best = np.full(table.shape[2], INT16_LOWEST, np.int64)
        for t in range(windows):
            best = np.maximum(best, sum(q[j][padded[t + j]] for j in range(taps)))
        if tables.max_length - len(ids) >= taps:
            best = np.maximum(best, q[:, 0, :].sum(axis=0))
        maxima.append(best)
    return np.concatenate(maxima)


def test_int8_kernel_computes_the_integer_maxima_exactly(random_weights, edge_reviews):
    """The int8 kernel's int16 sums and maxima are bit for bit those of plain integer arithmetic at every length
    (0, 1, 3, 4, 996-1000, over 1000); its features are those integers times the scale, plus the bias, in fp32."""
    tables = FoldedTables.from_model(load_model(random_weights))
    tiled = tables.tiled("int8")
    maxima = tiled.maxima(edge_reviews)
    assert maxima.dtype == np.int16 and tiled.tiles.dtype == np.int8
    expected = np.stack([int8_maxima_by_numpy(tables, review) for review in edge_reviews])
    np.testing.assert_array_equal(maxima.astype(np.int64), expected)
    features = tiled.features(edge_reviews)
    np.testing.assert_array_equal(features, expected.astype(np.float32) * tiled.scale + tiled.bias)
    assert tiled.tiles.ctypes.data % 64 == 0  # every word's rows start on a cache line


@pytest.mark.parametrize("precision", PRECISIONS)
def test_the_compiled_epilogue_gives_the_logits_of_numpy(precision, random_weights, edge_reviews):
    """ELU and the classifier in the kernel's epilogue (one review at a time, or in parallel for large batches)
    give numpy's logits within fp32 rounding, and the same for a review alone or in a batch."""
    from model.folded_cpu import PARALLEL_EPILOGUE_REVIEWS

    tiled = FoldedTables.from_model(load_model(random_weights)).tiled(precision)
    reviews = (edge_reviews * (PARALLEL_EPILOGUE_REVIEWS // len(edge_reviews) + 1))[:PARALLEL_EPILOGUE_REVIEWS]
    features = tiled.features(reviews)
    activated = np.where(features > 0, features, tiled.elu_alpha * np.expm1(np.minimum(features, 0)))
    expected = activated @ tiled.classifier_weight.T + tiled.classifier_bias
    batched = tiled.logits(reviews)
    alone = np.concatenate([tiled.logits([review]) for review in edge_reviews])
    assert batched.dtype == np.float32 and batched.shape == (len(reviews), 2)
    np.testing.assert_allclose(batched, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(alone, batched[:len(edge_reviews)])


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_cpu_kernel_computes_the_folded_sums_exactly(precision, random_weights, edge_reviews):
    """The tiled, vectorised kernel gives bit for bit what plain numpy adds in the same order, at every length:
    tiling, prefetching and two windows per pass change nothing but speed."""
    tables = FoldedTables.from_model(load_model(random_weights))
    rounding = to_bf16 if precision == "bf16" else (lambda table: table)
    kernel = tables.tiled(precision).features(edge_reviews)
    expected = np.stack([folded_by_numpy(tables, review, rounding) for review in edge_reviews])
    assert kernel.dtype == np.float32
    np.testing.assert_array_equal(kernel, expected)


def test_cpu_kernel_uses_packed_simd_instructions(folded_backend):
    """The running max and the sums compile to packed instructions (several floats at once) on x86-64 CPUs
    with AVX, not one float at a time; the masked stores of a conditional max are gone too."""
    import platform
    import re

    import numba

    from model.folded_cpu import folded_features
    from model.folded_tiles import pack_reviews

    if platform.machine() not in ("x86_64", "AMD64"):
        pytest.skip("the assembly check is written for x86-64")
    fresh = numba.njit(parallel=True, nogil=True)(folded_features.py_func)  # compiled here: no cache, assembly kept
    tables = folded_backend.compute
    flat, offsets = pack_reviews([np.array([1, 2, 3, 4, 5], dtype=np.int32)])
    fresh(flat, offsets, tables.tiles, tables.pad3, tables.pad4, tables.max_length, np.empty((1, 2048), np.float32))
    assembly = "\n".join(fresh.inspect_asm().values())
    if not re.search(r"%ymm|%zmm", assembly):
        pytest.skip("this CPU has no 256/512-bit vector registers")
    packed_max = re.findall(r"\bvmaxps\s[^\n]*%[yz]mm", assembly)
    packed_add = re.findall(r"\bvaddps\s[^\n]*%[yz]mm", assembly)
    assert len(packed_max) >= 8 and len(packed_add) >= 16, (len(packed_max), len(packed_add))


def test_int8_kernel_uses_packed_integer_instructions(random_weights):
    """The int8 kernel widens table values to int16 and adds and maxes them 16 (AVX2) or 32 (AVX-512) at a
    time: packed vpmovsxbw, vpaddw and vpmaxsw on ymm or zmm registers, and no 64-bit integer sums."""
    import platform
    import re

    import numba

    from model.folded_cpu import folded_features
    from model.folded_tiles import pack_reviews

    if platform.machine() not in ("x86_64", "AMD64"):
        pytest.skip("the assembly check is written for x86-64")
    tiled = FoldedTables.from_model(load_model(random_weights)).tiled("int8")
    fresh = numba.njit(parallel=True, nogil=True)(folded_features.py_func)  # compiled here: no cache, assembly kept
    flat, offsets = pack_reviews([np.array([1, 2, 3, 4, 5], dtype=np.int32)])
    fresh(flat, offsets, tiled.tiles, tiled.pad3, tiled.pad4, tiled.max_length, np.empty((1, 2048), np.int16))
    assembly = "\n".join(fresh.inspect_asm().values())
    if not re.search(r"%ymm|%zmm", assembly):
        pytest.skip("this CPU has no 256/512-bit vector registers")
    counts = {name: len(re.findall(rf"\b{name}\s[^\n]*%[yz]mm", assembly))
              for name in ("vpmovsxbw", "vpaddw", "vpmaxsw", "vpaddq")}
    assert counts["vpmovsxbw"] >= 14 and counts["vpaddw"] >= 10 and counts["vpmaxsw"] >= 4, counts
    assert counts["vpaddq"] == 0, counts


def test_bf16_is_refused_where_it_does_not_exist(random_weights, table_cache):
    with pytest.raises(ValueError, match=r"is an option of the folded backend \(on cpu or cuda\)"):
        create_backend("reference", random_weights, precision="bf16")
    with pytest.raises(ValueError, match="not one of fp32, bf16, int8"):
        FoldedBackend(random_weights, precision="fp16", table_cache=table_cache)


def test_all_backends_are_registered():
    assert list(BACKENDS) == ["reference", "trimmed", "folded", "onnxruntime-trimmed", "onnxruntime-folded",
                              "openvino-trimmed", "openvino-folded"]
    with pytest.raises(ValueError, match="unknown backend 'fastest'"):
        create_backend("fastest")


def test_the_precision_rule_is_one_check_with_one_message():
    """fp32 runs everywhere, bf16 and int8 on the folded backend only (its CPU and CUDA kernels); the message
    names the request."""
    assert PRECISIONS == ("fp32", "bf16", "int8")
    check_precision("folded", "cpu", "int8")
    for backend in BACKENDS:
        for device in ("cpu", "cuda", "cuda:1"):
            check_precision(backend, device, "fp32")
    check_precision("folded", "cpu", "bf16")
    check_precision("folded", "cuda:1", "int8")
    with pytest.raises(PrecisionError) as refused:
        check_precision("trimmed", "cuda:1", "bf16")
    assert str(refused.value) == ("--precision bf16 is an option of the folded backend (on cpu or cuda); the "
                                  "trimmed backend on cuda:1 runs in fp32: drop --precision")
    with pytest.raises(PrecisionError, match="the folded backend on mps runs in fp32: drop --precision"):
        check_precision("folded", "mps", "bf16")
    with pytest.raises(PrecisionError, match="--precision 'fp16' is not one of fp32, bf16, int8"):
        check_precision("folded", "cpu", "fp16")
    assert issubclass(PrecisionError, BadInputError) and issubclass(PrecisionError, ValueError)


def test_a_bad_backend_or_device_is_an_input_error_and_still_a_value_error():
    with pytest.raises(BackendChoiceError, match="unknown backend 'fastest'"):
        create_backend("fastest")
    with pytest.raises(DeviceError, match="is not a torch device"):
        torch_device("bogus")
    with pytest.raises(DeviceError, match="run on cpu or cuda"):
        torch_device("meta")
    for error in (BackendChoiceError, DeviceError):
        assert issubclass(error, BadInputError) and issubclass(error, ValueError)


def test_model_and_qsl_import_no_circle():
    """No module of model/, qsl/ or common/ imports (at the top or in a function) one that imports it back."""
    modules = {f"{package}.{path.stem}": path for package in ("model", "qsl", "common")
               for path in (REPO / package).glob("*.py") if path.stem != "__init__"}
    graph = {}
    for name, path in modules.items():
        imported = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module)
                imported.update(f"{node.module}.{alias.name}" for alias in node.names)
        graph[name] = {other for other in imported if other in modules and other != name}

    def reaches(start, target, seen):
        for other in graph[start] - seen:
            seen.add(other)
            if other == target or reaches(other, target, seen):
                return True
        return False

    assert [name for name in sorted(graph) if reaches(name, name, set())] == []


@pytest.mark.parametrize("first", ["model.table_cache", "model.folded", "model.folded_tiles", "model.folded_cpu",
                                   "model.precision", "model.backends"])
def test_any_model_module_imports_first_in_a_fresh_process(first):
    """The old circle backends -> table_cache -> folded -> backends is gone: any of them imports first, and
    model.precision imports neither torch nor numba."""
    code = f"import sys, {first}\n"
    if first == "model.precision":
        code += "assert not {'torch', 'numba'} & set(sys.modules), 'model.precision imported torch or numba'\n"
    code += ("import model.backends, model.folded, model.folded_cpu, model.folded_tiles, model.precision, "
             "model.table_cache\n"
             "assert model.backends.PRECISIONS is model.precision.PRECISIONS\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.mark.parametrize("backend_class", [TrimmedBackend, FoldedBackend])
def test_fast_backend_matches_reference_at_every_length(backend_class, random_weights, edge_reviews, table_cache):
    reference = ReferenceBackend(random_weights).logits(edge_reviews)
    options = {"table_cache": table_cache} if backend_class is FoldedBackend else {}
    fast = backend_class(random_weights, **options).logits(edge_reviews)
    assert fast.shape == reference.shape == (len(edge_reviews), 2)
    np.testing.assert_allclose(fast, reference, atol=LOGIT_TOLERANCE, rtol=0)


def test_folded_reviews_are_independent_of_their_batch(random_weights, edge_reviews, table_cache):
    backend = FoldedBackend(random_weights, table_cache=table_cache)
    together = backend.logits(edge_reviews)
    alone = np.concatenate([backend.logits([review]) for review in edge_reviews])
    np.testing.assert_allclose(together, alone, atol=1e-5, rtol=0)  # only the classifier's BLAS blocking differs


def test_torch_folded_path_matches_reference(random_weights, edge_reviews):
    """The path used on GPUs, run here on the CPU."""
    model = load_model(random_weights)
    with torch.inference_mode():
        reference = model(pad_to_width(edge_reviews, 1000)).numpy()
    gathered = FoldedTables.from_model(model).to_torch(torch.device("cpu")).logits(edge_reviews)
    np.testing.assert_allclose(gathered, reference, atol=LOGIT_TOLERANCE, rtol=0)


def test_cuda_without_a_gpu_is_a_clear_error(random_weights, table_cache):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(ValueError, match="no CUDA device"):
        FoldedBackend(random_weights, device="cuda", table_cache=table_cache)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_folded_backend_on_cuda_matches_reference(random_weights, edge_reviews, table_cache):
    reference = ReferenceBackend(random_weights).logits(edge_reviews)
    gathered = FoldedBackend(random_weights, device="cuda", table_cache=table_cache).logits(edge_reviews)
    np.testing.assert_allclose(gathered, reference, atol=LOGIT_TOLERANCE, rtol=0)


@pytest.mark.slow
def test_fast_backends_agree_with_reference_on_real_reviews(test_split):
    """A slice of real reviews (every 50th, all lengths) with the shipped weights: same labels, close logits."""
    reviews = [test_split.token_ids[i] for i in range(0, len(test_split), 50)]
    reference = ReferenceBackend().logits(reviews)
    for name in ("trimmed", "folded"):
        fast = create_backend(name).logits(reviews)
        assert (fast.argmax(1) == reference.argmax(1)).all(), name
        np.testing.assert_allclose(fast, reference, atol=LOGIT_TOLERANCE, rtol=0, err_msg=name)


@pytest.mark.slow
def test_bf16_tables_keep_the_labels_of_fp32_on_real_reviews(test_split, folded_backend):
    """bf16 tables on a slice of real reviews: logits within a few hundredths of fp32, labels nearly all equal
    (the README gives its accuracy on all 25,000)."""
    reviews = [test_split.token_ids[i] for i in range(0, len(test_split), 25)]
    exact = folded_backend.logits(reviews)
    bf16 = create_backend("folded", precision="bf16").logits(reviews)
    assert (bf16.argmax(1) == exact.argmax(1)).mean() >= 0.995
    assert np.abs(bf16 - exact).max() < 0.1


@pytest.mark.slow
def test_int8_tables_keep_the_labels_of_fp32_on_real_reviews(test_split, folded_backend, tmp_path):
    """int8 tables on a slice of real reviews: labels agree with fp32 on at least 99.5 % (99.9 % and more on all
    25,000: the README), logits within a few hundredths; a second backend reads the int8 cache it wrote."""
    reviews = [test_split.token_ids[i] for i in range(0, len(test_split), 25)]
    exact = folded_backend.logits(reviews)
    first = FoldedBackend(precision="int8", table_cache=tmp_path)
    second = FoldedBackend(precision="int8", table_cache=tmp_path)
    assert (first.load_report.source, second.load_report.source) == ("built", "cache")
    int8 = second.logits(reviews)
    np.testing.assert_array_equal(int8, first.logits(reviews))
    assert (int8.argmax(1) == exact.argmax(1)).mean() >= 0.995
    assert np.abs(int8 - exact).max() < 0.1


@pytest.mark.parametrize("threads", [1, None])
def test_a_read_only_review_runs_the_kernel_compiled_at_load_time(threads):
    """A Ray actor decodes its reviews from a message's bytes (read-only arrays). The kernel compiled (or read
    from numba's cache) when the backend loaded must answer them: numba types read-only arrays apart, and a
    second compilation took seconds in the first query of a Server run on Ray (INVALID, 65 queries outstanding)."""
    from model.backends import create_backend
    from model.folded_cpu import folded_logits, folded_logits_one_thread

    backend = create_backend("folded", threads=threads)
    kernel = folded_logits_one_thread if threads == 1 else folded_logits
    compiled = list(kernel.signatures)
    review = np.frombuffer(np.array([12, 7, 305, 9, 44, 1, 18], dtype="<i4").tobytes(), "<i4")
    assert not review.flags.writeable
    writable = backend.logits([review.copy()])
    np.testing.assert_array_equal(backend.logits([review]), writable)
    assert list(kernel.signatures) == compiled

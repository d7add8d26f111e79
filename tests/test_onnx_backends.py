"""The exported ONNX graphs as backends: ONNX Runtime and OpenVINO give the project's labels on real reviews, run
under LoadGen like any backend, and refuse what they cannot do (exit 2, saying what to do)."""

from __future__ import annotations

import re
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from conftest import require_installed

import run
from model.backends import create_backend
from model.onnx_backends import ONNX_BACKENDS, RuntimeMissingError
from model.precision import ONNX_BACKEND_NAMES
from readback.run_record import read_run_record
from sut.config import ONNX_BATCHING, RunConfig

@pytest.fixture(scope="module")
def onnx_cache(tmp_path_factory):
    """One cache folder for the module's exports (a few seconds per graph), apart from the user's."""
    folder = tmp_path_factory.mktemp("onnx-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SEQ2CNN_CACHE_DIR", str(folder))
        yield folder


@pytest.fixture(scope="module")
def some_reviews(test_split):
    """160 real test reviews: the 32 longest (1000 ids and more) and 128 others, in batches of mixed lengths."""
    lengths = np.array([len(ids) for ids in test_split.token_ids])
    longest = np.argsort(-lengths, kind="stable")[:32]
    others = np.random.default_rng(7).choice(len(lengths), 128, replace=False)
    return [test_split.token_ids[i] for i in [*longest, *others]]


@pytest.fixture(scope="module")
def folded_logits(some_reviews):
    backend = create_backend("folded")
    return np.concatenate([backend.logits(some_reviews[start:start + 16]) for start in range(0, 160, 16)])


def test_the_onnx_backends_are_the_four_runtime_and_graph_pairs():
    assert ONNX_BACKEND_NAMES == ("onnxruntime-trimmed", "onnxruntime-folded", "openvino-trimmed", "openvino-folded")
    assert ONNX_BACKENDS["openvino-folded"] == ("openvino", "folded")


@pytest.mark.slow
@pytest.mark.parametrize("name", ONNX_BACKEND_NAMES)
def test_each_runtime_and_graph_gives_the_projects_labels_on_real_reviews(name, onnx_cache, some_reviews,
                                                                           folded_logits):
    require_installed(ONNX_BACKENDS[name][0])
    backend = create_backend(name, threads=2)
    logits = np.concatenate([backend.logits(some_reviews[start:start + 16]) for start in range(0, 160, 16)])
    assert logits.dtype == np.float32 and logits.shape == (160, 2)
    assert np.abs(logits - folded_logits).max() < 1e-4
    assert (logits.argmax(1) == folded_logits.argmax(1)).all()
    assert backend.framework.split()[0] in ("ONNX", "OpenVINO")


@pytest.mark.parametrize("name", ["onnxruntime-folded", "openvino-folded"])
def test_one_backend_serves_several_worker_threads_at_once(name, onnx_cache, some_reviews, folded_logits):
    """--workers N shares one backend between N threads: each call must get its own batch's logits."""
    require_installed(ONNX_BACKENDS[name][0])
    backend = create_backend(name, threads=1)
    batches = [some_reviews[start:start + 4] for start in range(0, 160, 4)]
    with ThreadPoolExecutor(4) as pool:
        logits = np.concatenate(list(pool.map(backend.logits, batches)))
    assert np.abs(logits - folded_logits).max() < 1e-4


def test_each_onnx_backend_batches_as_measured_unless_told_otherwise():
    assert set(ONNX_BATCHING) == set(ONNX_BACKEND_NAMES)
    for name in ONNX_BACKEND_NAMES:
        for scenario in ("Offline", "Server"):
            assert RunConfig(scenario=scenario, backend=name).batching() == ONNX_BATCHING[name]
            assert RunConfig(scenario=scenario, backend=name, max_batch_size=3).batching()[0] == 3


def test_precisions_other_than_fp32_are_refused_with_exit_2(capsys):
    code = run.main(["--scenario", "Offline", "--backend", "onnxruntime-folded", "--precision", "int8", "--time", "1"])
    assert code == 2
    assert "runs in fp32: drop --precision" in capsys.readouterr().err


@pytest.mark.parametrize("backend, device, advice", [("onnxruntime-folded", "cuda", "onnxruntime-gpu"),
                                                     ("onnxruntime-folded", "npu", "offers cpu"),
                                                     ("openvino-folded", "npu", "offers cpu")])
def test_a_device_the_runtime_does_not_offer_is_exit_2_and_no_run_folder(backend, device, advice, onnx_cache,
                                                                          tmp_path, capsys):
    require_installed(ONNX_BACKENDS[backend][0])
    output = tmp_path / "run"
    code = run.main(["--scenario", "SingleStream", "--backend", backend, "--device", device, "--count", "8",
                     "--time", "1", "--output-dir", str(output)])
    error = capsys.readouterr().err
    assert code == 2 and f"--device {device}" in error and advice in error
    assert not output.exists()


@pytest.mark.parametrize("runtime, extra", [("onnxruntime", ".[onnx]"), ("openvino", ".[openvino]")])
def test_a_missing_runtime_names_the_extra_that_installs_it(runtime, extra, onnx_cache, monkeypatch):
    monkeypatch.setitem(sys.modules, runtime, None)  # import fails as if not installed
    with pytest.raises(RuntimeMissingError, match=re.escape(f"pip install -e '{extra}'")):
        create_backend(f"{runtime}-folded")


@pytest.mark.slow
@pytest.mark.parametrize("name", ["onnxruntime-folded", "openvino-folded"])
def test_a_quick_loadgen_run_with_a_runtime_is_valid_and_recorded(name, onnx_cache, tmp_path, capsys):
    require_installed(ONNX_BACKENDS[name][0])
    output = tmp_path / "run"
    code = run.main(["--scenario", "SingleStream", "--backend", name, "--count", "200", "--time", "3",
                     "--output-dir", str(output)])
    summary = capsys.readouterr().out
    assert code == 0 and "Validity   : VALID" in summary
    assert f"Backend: {name}" in summary
    framework = read_run_record(output).backend.framework
    assert re.fullmatch(r"(ONNX Runtime|OpenVINO) \d+\.\d+.*", framework), framework


@pytest.mark.slow
def test_test01_passes_with_a_runtime(onnx_cache, dataset_path, tmp_path, capsys):
    """The runtime's labels in accuracy mode, then at a fixed pace (its labels, the test's speed: the
    performance check does not depend on the machine) in a performance run and in TEST01."""
    require_installed("openvino")
    from conftest import PacedBackend

    backend = create_backend("openvino-folded", threads=2)
    common = ["--scenario", "Offline", "--count", "200", "--dataset-path", str(dataset_path)]
    quick = [*common, "--time", "2", "--max-batchsize", "8"]
    accuracy, performance, test01 = tmp_path / "accuracy", tmp_path / "performance", tmp_path / "test01"
    assert run.main([*common, "--backend", "openvino-folded", "--accuracy", "--output-dir", str(accuracy)]) == 0
    assert run.main([*quick, "--output-dir", str(performance)], backend=PacedBackend(backend, 0.02)) == 0
    code = run.main([*quick, "--compliance", "TEST01", "--accuracy-run", str(accuracy), "--performance-run",
                     str(performance), "--output-dir", str(test01)], backend=PacedBackend(backend, 0.02))
    assert code == 0, (test01 / "verify_performance.txt").read_text() + (test01 / "verify_accuracy.txt").read_text()
    assert "Compliance : TEST01 PASS" in capsys.readouterr().out
    assert read_run_record(test01).backend.framework.startswith("OpenVINO ")

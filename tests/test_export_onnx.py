"""The ONNX export (``python -m model.export_onnx``): both graphs of the shipped weights, checked by ``onnx``,
run by ONNX Runtime and OpenVINO in a fresh process without torch or the project, against the folded backend on
real reviews; the cache of graph folders (read back, damaged, keyed by the weights) and bad input.

The export of the shipped weights takes a few seconds per graph: each graph is exported once for the module
(:func:`shipped_export`) into a cache folder of its own; a test that changes a cache folder uses its own.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import require_installed

from model.batching import length_sorted_batches, padded_batch
from model.export_onnx import (
    CHECKSUM_FILE,
    DATA_FILE,
    GRAPH_FILE,
    GRAPHS,
    INPUT_NAME,
    OPSET,
    OUTPUT_NAME,
    OnnxExportError,
    exported_graph,
    folder_is_whole,
    main,
    require_onnx,
)
from model.weights import verified_sha256

REPO = Path(__file__).resolve().parent.parent
#: the files of a graph folder
FOLDER_FILES = (GRAPH_FILE, DATA_FILE, CHECKSUM_FILE)
#: the operators of each graph, as the module docstring lists them
GRAPH_OPERATORS = {"trimmed": {"Gather", "Transpose", "Conv", "Elu", "ReduceMax", "Concat", "Gemm"},
                   "folded": {"Slice", "Gather", "Sum", "ReduceMax", "Elu", "Concat", "Gemm"}}
#: the project's top-level packages: none of them may be imported by the runtime-only process
PROJECT_PACKAGES = sorted(init.parent.name for init in REPO.glob("*/__init__.py"))
#: real reviews run through each runtime: the longest (1000 ids and more), the shortest, and a spread between
LONGEST, SHORTEST, SPREAD, BATCH_SIZE = 24, 24, 152, 32
#: how far a runtime's logits may be from the folded backend's (fp32 both)
LOGITS_ATOL = 1e-4
#: how long a fresh runtime process may take (s): generous, for slow machines
RUNTIME_TIMEOUT_S = 300

#: the fresh process's code, before and after its runtime's lines: argv = graph, project packages, ids files;
#: each ``ids-NN.npy`` gives ``logits-NN.npy`` in the working folder
RUNTIME_HEAD = """
import sys
import numpy as np
graph, project_packages, ids_files = sys.argv[1], sys.argv[2].split(","), sys.argv[3:]
"""
RUNTIME_TAIL = """
for name in ids_files:
    ids = np.load(name)
    assert ids.dtype == np.int64 and ids.ndim == 2, (ids.dtype, ids.shape)
    np.save(name.replace("ids-", "logits-"), np.asarray(run(ids), dtype=np.float32))
assert "torch" not in sys.modules, "the runtime process imported torch"
imported = sorted(name for name in sys.modules if name.split(".")[0] in project_packages)
assert not imported, f"the runtime process imported the project: {imported}"
"""
RUNTIMES = {
    "onnxruntime": """
import onnxruntime
session = onnxruntime.InferenceSession(graph, providers=["CPUExecutionProvider"])
def run(ids):
    return session.run(["logits"], {"token_ids": ids})[0]
""",
    # the CPU plugin computes in bf16 where the CPU has it, unless told otherwise
    "openvino": """
import openvino
compiled = openvino.Core().compile_model(graph, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
def run(ids):
    return compiled({"token_ids": ids})[compiled.output("logits")]
""",
}


@pytest.fixture(scope="module")
def onnx():
    return require_installed("onnx")


@pytest.fixture(scope="module")
def shipped_export(onnx, tmp_path_factory):
    """``shipped_export(graph)``: the ``model.onnx`` of ``graph`` for the shipped weights, exported on first
    use into this module's own cache folder (shared by its tests, which must leave it as it is)."""
    root = tmp_path_factory.mktemp("onnx-cache")
    exported: dict[str, Path] = {}

    def export(graph: str) -> Path:
        if graph not in exported:
            exported[graph] = exported_graph(graph, cache_root=root)
        return exported[graph]

    return export


def file_times(folder: Path) -> dict[str, int]:
    return {name: (folder / name).stat().st_mtime_ns for name in FOLDER_FILES}


def graph_entries(onnx_folder: Path) -> list[str]:
    """What a cache's ``onnx`` folder holds of graph folders, whole or being written."""
    if not onnx_folder.exists():
        return []
    return sorted(entry.name for entry in onnx_folder.iterdir()
                  if entry.name.startswith(tuple(f"{graph}-" for graph in GRAPHS)) or ".tmp-" in entry.name)


@pytest.mark.slow
@pytest.mark.parametrize("graph", GRAPHS)
def test_each_graph_is_a_checked_model_of_the_documented_signature(graph, onnx, shipped_export):
    path = shipped_export(graph)
    assert path.name == GRAPH_FILE and path.parent.name.startswith(f"{graph}-")
    assert sorted(entry.name for entry in path.parent.iterdir()) == sorted(FOLDER_FILES)
    onnx.checker.check_model(str(path))  # the path: the external data is checked too
    model = onnx.load(str(path), load_external_data=False)
    assert [(opset.domain, opset.version) for opset in model.opset_import] == [("", OPSET)]
    assert {node.op_type for node in model.graph.node} == GRAPH_OPERATORS[graph]
    assert path.stat().st_size < 64 * 1024 < (path.parent / DATA_FILE).stat().st_size  # the tensors beside it

    (source,), (result,) = model.graph.input, model.graph.output
    assert source.name == INPUT_NAME == "token_ids"
    assert source.type.tensor_type.elem_type == onnx.TensorProto.INT64
    batch, length = source.type.tensor_type.shape.dim
    assert batch.dim_param and length.dim_param and batch.dim_param != length.dim_param  # both dynamic
    assert not batch.HasField("dim_value") and not length.HasField("dim_value")
    assert result.name == OUTPUT_NAME == "logits"
    assert result.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    out_batch, classes = result.type.tensor_type.shape.dim
    assert out_batch.dim_param == batch.dim_param and classes.dim_value == 2


@pytest.fixture(scope="module")
def review_batches(test_split, folded_backend):
    """Real reviews in batches of similar length, as the SUT forms them: (the reviews, their padded batches
    (``padded_batch``), the folded backend's logits of the reviews), in batch order."""
    lengths = np.array([len(ids) for ids in test_split.token_ids])
    by_length = np.argsort(lengths, kind="stable")
    middle = by_length[SHORTEST:-LONGEST]
    chosen = np.concatenate([by_length[:SHORTEST], middle[np.linspace(0, len(middle) - 1, SPREAD).astype(int)],
                             by_length[-LONGEST:]])
    assert len(set(chosen.tolist())) == len(chosen)
    reviews = [test_split.token_ids[index] for index in chosen]
    batches = [[reviews[position] for position in batch]
               for batch in length_sorted_batches([len(ids) for ids in reviews], BATCH_SIZE)]
    in_order = [ids for batch in batches for ids in batch]
    padded = [padded_batch(batch).numpy() for batch in batches]
    assert max(batch.shape[1] for batch in padded) == 1000 and min(batch.shape[1] for batch in padded) < 100
    return in_order, padded, folded_backend.logits(in_order)


@pytest.mark.slow
@pytest.mark.parametrize("graph", GRAPHS)
@pytest.mark.parametrize("runtime", sorted(RUNTIMES))
def test_graph_runs_in_a_fresh_process_with_the_runtime_alone_and_agrees_with_the_folded_backend(
        runtime, graph, shipped_export, review_batches, tmp_path):
    require_installed(runtime)
    reviews, padded, expected = review_batches
    ids_files = []
    for number, batch in enumerate(padded):
        ids_files.append(f"ids-{number:02d}.npy")
        np.save(tmp_path / ids_files[-1], batch)
    # the repository is neither on the path nor the working folder
    environment = {name: value for name, value in os.environ.items() if name != "PYTHONPATH"}
    completed = subprocess.run(
        [sys.executable, "-c", RUNTIME_HEAD + RUNTIMES[runtime] + RUNTIME_TAIL, str(shipped_export(graph)),
         ",".join(PROJECT_PACKAGES), *ids_files],
        cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=RUNTIME_TIMEOUT_S)
    assert completed.returncode == 0, completed.stderr
    logits = np.concatenate([np.load(tmp_path / name.replace("ids-", "logits-")) for name in ids_files])
    assert logits.shape == (len(reviews), 2) and logits.dtype == np.float32
    np.testing.assert_allclose(logits, expected, rtol=0, atol=LOGITS_ATOL)
    assert np.array_equal(logits.argmax(axis=1), expected.argmax(axis=1))


@pytest.mark.slow
@pytest.mark.parametrize("graph", GRAPHS)
def test_a_second_export_reads_the_cache(graph, shipped_export, caplog):
    path = shipped_export(graph)
    before = file_times(path.parent)
    with caplog.at_level(logging.INFO, logger="model.export_onnx"):
        again = exported_graph(graph, cache_root=path.parent.parent.parent)
    assert again == path
    assert f"ONNX {graph} graph of" in caplog.text and f"{path} (cached)" in caplog.text
    assert "exported to" not in caplog.text
    assert file_times(path.parent) == before


@pytest.mark.slow
def test_a_damaged_folder_is_named_deleted_and_exported_again(shipped_export, tmp_path, caplog):
    shipped = shipped_export("trimmed").parent
    folder = tmp_path / "onnx" / shipped.name  # a copy in a cache of this test's own
    shutil.copytree(shipped, folder)
    data = bytearray((folder / DATA_FILE).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (folder / DATA_FILE).write_bytes(bytes(data))
    assert not folder_is_whole(folder)
    with caplog.at_level(logging.INFO, logger="model.export_onnx"):
        path = exported_graph("trimmed", cache_root=tmp_path)
    assert path == folder / GRAPH_FILE
    assert f"ONNX graph folder {folder} is damaged" in caplog.text and f"exported to {path}" in caplog.text
    assert folder_is_whole(folder)
    assert (folder / DATA_FILE).read_bytes() == (shipped / DATA_FILE).read_bytes()
    assert graph_entries(tmp_path / "onnx") == [folder.name]


@pytest.mark.slow
def test_different_weights_give_a_different_folder(shipped_export, random_weights, onnx, tmp_path):
    shipped = shipped_export("trimmed")
    path = exported_graph("trimmed", random_weights, cache_root=tmp_path)
    assert path.parent.name != shipped.parent.name and path.parent.name.startswith("trimmed-")
    assert folder_is_whole(path.parent)
    properties = {prop.key: prop.value for prop in onnx.load(str(path), load_external_data=False).metadata_props}
    assert properties["graph"] == "trimmed"
    assert properties["weights_sha256"] == verified_sha256(random_weights)
    assert (path.parent / DATA_FILE).read_bytes() != (shipped.parent / DATA_FILE).read_bytes()


def test_a_missing_weights_file_exits_2_and_writes_nothing(tmp_path, monkeypatch, capsys):
    cache = tmp_path / "cache"
    monkeypatch.setenv("SEQ2CNN_CACHE_DIR", str(cache))
    missing = tmp_path / "missing.safetensors"
    assert main(["--model-path", str(missing)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert [line for line in captured.err.splitlines() if line.startswith("error:")] == \
        [f"error: weights file not found: {missing}; pass --model-path or restore model/seq2cnn.safetensors"]
    assert not cache.exists() or not any(cache.rglob("*"))


def test_a_missing_onnx_package_names_the_extra_that_installs_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx raises ImportError
    with pytest.raises(OnnxExportError, match=r"pip install -e '\.\[onnx\]'"):
        require_onnx()


def test_a_write_that_fails_midway_leaves_no_folder(onnx, random_weights, tmp_path, monkeypatch):
    def save_half_and_fail(proto, path, **options):
        Path(path).write_bytes(b"half a graph")
        (Path(path).parent / DATA_FILE).write_bytes(bytes(4096))
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(onnx, "save_model", save_half_and_fail)
    with pytest.raises(OnnxExportError, match="cannot write the ONNX graph to .*No space left on device"):
        exported_graph("trimmed", random_weights, cache_root=tmp_path)
    assert (tmp_path / "onnx").is_dir()  # the write had begun
    assert graph_entries(tmp_path / "onnx") == []

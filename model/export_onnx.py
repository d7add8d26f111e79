"""Seq2CNN weights as ONNX graphs, for the runtimes people benchmark (ONNX Runtime, OpenVINO, TensorRT, ...).

    python -m model.export_onnx                      # both graphs of the shipped weights, into the cache
    python -m model.export_onnx --graph folded --model-path model/retrained.safetensors

Two graphs, named as the project's backends are (:mod:`model.backends`), both of
opset :data:`OPSET`, one input and one output:

- input ``token_ids``: int64 (batch, length), both dynamic: each review's ids
  right-padded with 0 to the batch's longest review + 4, at most 1000 ids
  (:func:`model.batching.padded_batch`), which gives the reference's function
  exactly (every review keeps a window wholly in the padding);
- output ``logits``: float32 (batch, 2), negative then positive.

``trimmed``: the reference network as written: Gather (the embedding), Transpose,
a Conv of kernel 3 and one of kernel 4, each followed by Elu (alpha 0.25) and a
ReduceMax over time, Concat, Gemm. ``folded``: the embedding folded into one
table per convolution tap (:class:`model.folded.FoldedTables`, 7 tables of
5200 x 1024): per branch a Gather of each tap's table at its shifted ids, their
Sum with the bias, ReduceMax over time, Elu; Concat, Gemm. Both compute in fp32.

The tensors (weights or tables) are stored as ONNX external data beside the
graph (``model.onnx.data``), so the graph itself stays small. Graphs are
written to ``<cache dir>/onnx/<graph>-<key>/`` (never into the repository),
keyed by the weights' sha256 and this module's source, with the sha256 of both
files in ``sha256.json``: a damaged folder is named, deleted and written again.
A folder is written under a temporary name and renamed, so that a crash leaves
nothing half-written. Each graph is checked with ``onnx.checker`` before it is
kept. ``onnx`` is an optional dependency (``pip install -e '.[onnx]'``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import shutil
import sys
from pathlib import Path

import numpy as np

from common.caches import cache_dir
from common.errors import BadInputError, run_command
from common.files import sha256_of_file
from common.text import plain
from model.paths import DEFAULT_WEIGHTS
from model.weights import load_model, verified_sha256

log = logging.getLogger(__name__)

#: the ONNX opset of both graphs (Gemm, Conv, Elu, ReduceMax with ``axes`` as an input: opset 18)
OPSET = 18
GRAPHS = ("trimmed", "folded")
INPUT_NAME = "token_ids"
OUTPUT_NAME = "logits"
GRAPH_FILE = "model.onnx"
DATA_FILE = "model.onnx.data"
CHECKSUM_FILE = "sha256.json"
#: hex digits of the key in a graph folder's name
KEY_HEX_CHARS = 24


class OnnxExportError(BadInputError):
    """The graphs cannot be written or read as asked: a missing ``onnx`` package, a damaged graph folder."""


def require_onnx():
    """The ``onnx`` module, or :class:`OnnxExportError` saying which extra installs it."""
    try:
        import onnx
    except ImportError as error:
        raise OnnxExportError(f"the ONNX export needs the onnx package ({error}): pip install -e '.[onnx]'") from error
    return onnx


def graph_folder(graph: str, weights_sha256: str, cache_root: Path | None = None) -> Path:
    """``<cache dir>/onnx/<graph>-<key>``: the key hashes the weights' sha256 and this module's source."""
    source = Path(__file__).read_bytes()
    key = hashlib.sha256(weights_sha256.encode() + b"\0" + source).hexdigest()
    return (cache_root or cache_dir()) / "onnx" / f"{graph}-{key[:KEY_HEX_CHARS]}"


def _checksums(folder: Path) -> dict[str, str]:
    return {name: sha256_of_file(folder / name) for name in (GRAPH_FILE, DATA_FILE)}


def folder_is_whole(folder: Path) -> bool:
    """Whether ``folder`` holds a graph and its data whose sha256 are those recorded when it was written."""
    try:
        recorded = json.loads((folder / CHECKSUM_FILE).read_text())
        return recorded == _checksums(folder)
    except (OSError, ValueError):
        return False


def _tensor(onnx, name: str, array: np.ndarray):
    return onnx.numpy_helper.from_array(np.ascontiguousarray(array), name)


def _classifier_nodes(onnx, features: list[str], weight: np.ndarray, bias: np.ndarray):
    """Concat of the branches' features (B, 2048), then Gemm with the classifier: ``logits`` (B, 2)."""
    helper = onnx.helper
    nodes = [helper.make_node("Concat", features, ["features"], axis=1),
             helper.make_node("Gemm", ["features", "classifier_weight", "classifier_bias"], [OUTPUT_NAME], transB=1)]
    return nodes, [_tensor(onnx, "classifier_weight", weight), _tensor(onnx, "classifier_bias", bias)]


def trimmed_graph(onnx, model):
    """The reference network as ONNX operators (see the module docstring)."""
    helper = onnx.helper
    state = {name: tensor.detach().float().numpy() for name, tensor in model.state_dict().items()}
    alpha = float(model.config.elu_alpha)
    nodes = [helper.make_node("Gather", ["embedding", INPUT_NAME], ["embedded"]),
             helper.make_node("Transpose", ["embedded"], ["channels_first"], perm=[0, 2, 1])]
    initializers = [_tensor(onnx, "embedding", state["embedding.weight"]),
                    _tensor(onnx, "time_axis", np.array([2], dtype=np.int64))]
    features = []
    for branch in range(len(model.config.kernel_sizes)):
        prefix = f"clm{branch}.0"
        nodes += [helper.make_node("Conv", ["channels_first", f"{prefix}.weight", f"{prefix}.bias"], [f"conv{branch}"]),
                  helper.make_node("Elu", [f"conv{branch}"], [f"elu{branch}"], alpha=alpha),
                  helper.make_node("ReduceMax", [f"elu{branch}", "time_axis"], [f"max{branch}"], keepdims=0)]
        initializers += [_tensor(onnx, f"{prefix}.weight", state[f"{prefix}.weight"]),
                         _tensor(onnx, f"{prefix}.bias", state[f"{prefix}.bias"])]
        features.append(f"max{branch}")
    head, head_tensors = _classifier_nodes(onnx, features, state["classifier.weight"], state["classifier.bias"])
    return nodes + head, initializers + head_tensors


def folded_graph(onnx, model):
    """The folded computation as ONNX operators (see the module docstring)."""
    from model.folded import FoldedTables

    helper = onnx.helper
    tables = FoldedTables.from_model(model)
    nodes, initializers, features = [], [_tensor(onnx, "time_axis", np.array([1], dtype=np.int64)),
                                         _tensor(onnx, "slice_axis", np.array([1], dtype=np.int64))], []
    for branch, (taps, bias) in enumerate(zip(tables.tables, tables.biases)):
        kernel = taps.shape[0]
        rows = []
        for tap in range(kernel):
            # the ids of window w's tap j are ids[:, w + j]: windows = length - kernel + 1
            start, end = tap, tap - (kernel - 1) if tap < kernel - 1 else np.iinfo(np.int64).max
            name = f"b{branch}_tap{tap}"
            initializers += [_tensor(onnx, f"{name}_table", taps[tap]),
                             _tensor(onnx, f"{name}_start", np.array([start], dtype=np.int64)),
                             _tensor(onnx, f"{name}_end", np.array([end], dtype=np.int64))]
            nodes += [helper.make_node("Slice", [INPUT_NAME, f"{name}_start", f"{name}_end", "slice_axis"],
                                       [f"{name}_ids"]),
                      helper.make_node("Gather", [f"{name}_table", f"{name}_ids"], [f"{name}_rows"])]
            rows.append(f"{name}_rows")
        initializers.append(_tensor(onnx, f"b{branch}_bias", bias))
        nodes += [helper.make_node("Sum", [*rows, f"b{branch}_bias"], [f"b{branch}_sums"]),
                  helper.make_node("ReduceMax", [f"b{branch}_sums", "time_axis"], [f"b{branch}_max"], keepdims=0),
                  helper.make_node("Elu", [f"b{branch}_max"], [f"b{branch}_features"], alpha=float(tables.elu_alpha))]
        features.append(f"b{branch}_features")
    head, head_tensors = _classifier_nodes(onnx, features, tables.classifier_weight, tables.classifier_bias)
    return nodes + head, initializers + head_tensors


def build_graph(graph: str, model, weights_sha256: str):
    """The ONNX model of ``graph`` (``trimmed`` or ``folded``) for ``model``, checked with ``onnx.checker``."""
    onnx = require_onnx()
    helper = onnx.helper
    nodes, initializers = (trimmed_graph if graph == "trimmed" else folded_graph)(onnx, model)
    batch_and_length = ["batch", "length"]
    proto = helper.make_model(
        helper.make_graph(nodes, f"seq2cnn_{graph}", [helper.make_tensor_value_info(INPUT_NAME, onnx.TensorProto.INT64,
                                                                                   batch_and_length)],
                          [helper.make_tensor_value_info(OUTPUT_NAME, onnx.TensorProto.FLOAT, ["batch", 2])],
                          initializer=initializers),
        opset_imports=[helper.make_opsetid("", OPSET)], producer_name="seq2cnn-mlperf",
        doc_string=f"Seq2CNN {graph} graph of the weights with sha256 {weights_sha256}")
    proto.ir_version = 8  # the IR of opset 18: runtimes of 2023 on read it
    helper.set_model_props(proto, {"weights_sha256": weights_sha256, "graph": graph})
    onnx.checker.check_model(proto)
    return proto


def write_graph_folder(proto, folder: Path) -> None:
    """``proto`` into ``folder`` (which must not exist) as ``model.onnx`` + ``model.onnx.data`` +
    ``sha256.json``, written under a temporary name and renamed."""
    onnx = require_onnx()
    staging = folder.with_name(f".{folder.name}.tmp-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        onnx.save_model(proto, staging / GRAPH_FILE, save_as_external_data=True, all_tensors_to_one_file=True,
                        location=DATA_FILE, size_threshold=1024)
        onnx.checker.check_model(str(staging / GRAPH_FILE))  # the files as written, external data included
        (staging / CHECKSUM_FILE).write_text(json.dumps(_checksums(staging), indent=2) + "\n")
        os.rename(staging, folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def exported_graph(graph: str, weights_path: Path = DEFAULT_WEIGHTS, cache_root: Path | None = None) -> Path:
    """The ``model.onnx`` of ``graph`` for the weights at ``weights_path``: from the cache when whole, else
    exported now (a damaged folder is named in a warning and replaced)."""
    if graph not in GRAPHS:
        raise OnnxExportError(f"unknown graph {graph!r}: choose one of {', '.join(GRAPHS)}")
    weights_sha256 = verified_sha256(weights_path)
    folder = graph_folder(graph, weights_sha256, cache_root)
    if folder.exists():
        if folder_is_whole(folder):
            log.info("ONNX %s graph of %s: %s (cached)", graph, weights_path, folder / GRAPH_FILE)
            return folder / GRAPH_FILE
        log.warning("ONNX graph folder %s is damaged (its files differ from their recorded sha256): deleting it and "
                    "exporting again", folder)
        shutil.rmtree(folder)
    proto = build_graph(graph, load_model(weights_path, weights_sha256), weights_sha256)
    try:
        write_graph_folder(proto, folder)
    except OSError as error:
        if folder_is_whole(folder):  # written meanwhile by another process
            return folder / GRAPH_FILE
        raise OnnxExportError(f"cannot write the ONNX graph to {folder}: {error.strerror or error}; make the folder "
                              "writable or set SEQ2CNN_CACHE_DIR to a writable folder") from error
    log.info("ONNX %s graph of %s exported to %s", graph, weights_path, folder / GRAPH_FILE)
    return folder / GRAPH_FILE


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m model.export_onnx", description=plain(__doc__, {"OPSET": str(OPSET)}),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-path", type=Path, default=DEFAULT_WEIGHTS,
                        help="safetensors weights (default: the shipped %(default)s)")
    parser.add_argument("--graph", choices=[*GRAPHS, "all"], default="all", help="which graph (default: %(default)s)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    def export() -> int:
        for graph in GRAPHS if args.graph == "all" else (args.graph,):
            print(f"{graph}: {exported_graph(graph, args.model_path)}")
        return 0

    return run_command(export, log)


if __name__ == "__main__":
    sys.exit(main())

"""The documents of a submission tree: each scenario's ``README.md`` and ``measurements.json``, the
``documentation/calibration.md``, the ``accuracy.txt`` beside TEST01's log and the tree's ``README.md``.

Each is written from the runs' records (:mod:`tools.submission.runs`); where
they go is :mod:`tools.submission.layout`'s.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from model.paths import DEFAULT_WEIGHTS, recorded_sha256
from model.precision import ONNX_BACKEND_NAMES
from model.quantization import INT8_SCHEME
from readback.benchmark import MODEL_NAME
from readback.cluster import ClusterInfo
from readback.run_files import RUN_RECORD_FILE, VERIFY_ACCURACY_FILE
from readback.run_record import BackendInfo, RunRecord
from tools.submission import layout
from tools.submission.runs import RunFolder, config_files
from tools.submission.system_description import SystemConfig

#: What each backend does to the weights before inference (backends not listed use them as they are).
WEIGHT_TRANSFORMATIONS = {
    "folded": "embedding folded into the convolutions at load: 7 per-tap fp32 tables T_j = E W_j^T (5200 x 1024)",
    **{f"{runtime}-trimmed": "exported to ONNX (opset 18) as they are: embedding, convolutions, classifier"
       for runtime in ("onnxruntime", "openvino")},
    **{f"{runtime}-folded": ("embedding folded into the convolutions at export to ONNX (opset 18): 7 per-tap fp32 "
                             "tables T_j = E W_j^T (5200 x 1024) as the graph's initializers")
       for runtime in ("onnxruntime", "openvino")},
}
#: What the folded backend's bf16 precision adds to its transformation.
BF16_TABLES = ("the 7 tables (bias folded into tap 0) then rounded to bf16, round to nearest even, at load; sums, "
               "maxima and the classifier in fp32")
#: What the folded backend's int8 precision adds to its transformation (the scheme of :mod:`model.quantization`).
INT8_TABLES = ("the 7 tables then quantized to int8 at load: " + INT8_SCHEME)
#: The weights' data types a run of each table precision computes with.
WEIGHT_DATA_TYPES_BY_PRECISION = {"bf16": "bf16 (folded tables), fp32 (classifier)",
                                  "int8": "int8 (folded tables, one fp32 scale per channel), fp32 (biases, classifier)"}
INPUT_DATA_TYPES = "int32 token ids (at most 1000 per review)"
#: The exported ONNX graphs' input (:mod:`model.export_onnx`).
ONNX_INPUT_DATA_TYPES = "int64 token ids (at most 1000 per review)"
WEIGHT_DATA_TYPES = "fp32"


def weight_transformation(name: str, precision: str, nothing: str = "none") -> str:
    """What the backend ``name`` in ``precision`` did to the weights before inference; ``nothing`` if nothing."""
    done = WEIGHT_TRANSFORMATIONS.get(name, nothing)
    reduced = {"bf16": BF16_TABLES, "int8": INT8_TABLES}.get(precision)
    return f"{done}; {reduced}" if reduced else done


def weight_data_types(backend: BackendInfo) -> str:
    return WEIGHT_DATA_TYPES_BY_PRECISION.get(backend.precision, WEIGHT_DATA_TYPES)


def command_line(record: RunRecord) -> str:
    """The command a run's record holds, as one shell line (``python`` before a script)."""
    command = list(record.command) or ["(not recorded)"]
    if command[0].endswith(".py"):
        command.insert(0, "python")
    return shlex.join(command)


def readme_text(scenario: str, runs: dict[str, RunFolder], system_name: str, system: str) -> str:
    """The scenario's README: how each of its runs was made, and where the project's records of it are."""
    intro = ("Each result came from one command, run from the repository root "
             f"(the code is in ../../../../{layout.SOURCE_DIR}/):")
    lines = [f"# {MODEL_NAME} {scenario} on {system_name}", "", intro, ""]
    for kind in layout.KINDS:
        run = runs.get(kind)
        if run is None:
            continue
        record = run.record
        configs = ", ".join(f"{f.path} (sha256 {f.sha256[:12]}...)" for f in config_files(run))
        lines += [
            f"## {kind}", "", "    " + command_line(record), "",
            f"Started {record.started_utc} (UTC), {record.wall_seconds} s; "
            f"backend {record.backend.name}; LoadGen {record.settings.loadgen_version}; "
            f"git commit {record.git.get('commit', '?')}"
            + (" with uncommitted changes" if record.git.get("dirty") else "") + f"; run folder {run.path}; "
            f"configs {configs}. The project's record of the run: "
            f"../../../../{layout.records_dir(system, scenario, kind)}/{RUN_RECORD_FILE}.", "",
        ]
    return "\n".join(lines)


def implementation_description(run: RunFolder) -> dict[str, object]:
    """The scenario's ``measurements.json`` (weights and data types), from its performance run's record."""
    backend = run.record.backend
    retraining = "no" if backend.weights_sha256 == recorded_sha256(DEFAULT_WEIGHTS) else (
        f"yes: not the project's shipped weights {DEFAULT_WEIGHTS.name} (sha256 {backend.weights_sha256})"
    )
    return {
        "input_data_types": ONNX_INPUT_DATA_TYPES if backend.name in ONNX_BACKEND_NAMES else INPUT_DATA_TYPES,
        "retraining": retraining,
        "starting_weights_filename": Path(backend.weights).name,
        "starting_weights_sha256": backend.weights_sha256,
        "weight_transformations": weight_transformation(backend.name, backend.precision),
        "weight_data_types": weight_data_types(backend),
        "backend": backend.name,
        "precision": backend.precision,
        "device": backend.device,
        **({"framework": backend.framework} if backend.framework else {}),
        "threads": backend.threads,
        "loadgen_version": run.record.settings.loadgen_version,
        **({"ray": ray_description(run.record.cluster)} if run.record.cluster is not None else {}),
    }


def ray_description(cluster: ClusterInfo) -> dict[str, object]:
    """How a run on Ray was spread: Ray's version, the nodes, and each actor's node, device and resources."""
    return {
        "ray_version": cluster.ray_version,
        "nodes": len(cluster.nodes),
        "nodes_with_actors": len({actor.node_id for actor in cluster.actors}),
        "actors": [{"node": actor.node_address, "device": actor.device, "gpus": actor.gpu_ids, "cpus": actor.cpus,
                    "threads": actor.threads} for actor in cluster.actors],
        "batches_in_flight_per_actor": cluster.in_flight_per_actor,
    }


def calibration_text(runs: list[RunFolder]) -> str:
    """``documentation/calibration.md``: what calibration or quantization was done (none, bf16 tables by
    rounding, or int8 tables with scales from the weights alone: no calibration data either way), and what each
    backend did."""
    backends = sorted({(run.record.backend.name, run.record.backend.precision) for run in runs})
    weights = sorted({(Path(run.record.backend.weights).name, run.record.backend.weights_sha256) for run in runs})
    reduced = sorted({precision for _, precision in backends} - {"fp32"})
    if reduced:
        how = {"bf16": "with bf16 precision rounded the folded tables to bf16 (round to nearest even)",
               "int8": ("with int8 precision quantized the folded tables to int8 with one scale per output channel "
                        "and branch, the largest magnitude of that channel's table values / 127, derived from the "
                        "weights alone")}
        summary = (f"No calibration. Runs of this submission ({MODEL_NAME}) "
                   f"{'; runs '.join(how[precision] for precision in reduced)}, with no data set involved; every "
                   "other value, and every other run, is fp32. The trained fp32 weights:")
    else:
        summary = (f"No calibration and no quantization. Every run of this submission ({MODEL_NAME}) computed in "
                   f"{WEIGHT_DATA_TYPES} with the trained {WEIGHT_DATA_TYPES} weights as they are:")
    folding = ("Folding the embedding into the convolutions re-associates the same fp32 products; in fp32 it gives "
               "the reference backend's label on every one of the 25,000 test reviews. It is not calibration: no "
               "data set is used.")
    lines = [
        "# Calibration and quantization", "", summary, "",
        *(f"- {name} (sha256 {sha256})" for name, sha256 in weights), "",
        "Backends used, and what they do to the weights at load:", "",
        *(f"- {name} ({precision}): {weight_transformation(name, precision, 'nothing (the weights are used as loaded)')}"
          for name, precision in backends),
        "", folding, "",
    ]
    return "\n".join(lines)


def test01_accuracy_text(run: RunFolder) -> str:
    """The ``accuracy.txt`` beside TEST01's accuracy log: what the log holds and where its verdict is."""
    verdict = (run.path / VERIFY_ACCURACY_FILE).read_text(encoding="utf-8", errors="replace").splitlines()
    last = next((line for line in reversed(verdict) if line.startswith(("TEST PASS", "TEST FAIL"))), "no verdict")
    return (
        f"TEST01 audit log of the {run.scenario} TEST01 run: the responses LoadGen logged during that performance-mode "
        f"run.\nTheir comparison with the accuracy run's is ../{VERIFY_ACCURACY_FILE}: {last}\n"
    )


def tree_readme(config: SystemConfig, record: dict[str, object]) -> str:
    """The tree root's ``README.md``: what it holds, which rules, and how to check it."""
    base = f"{config.division}/{config.submitter}"
    built = (f"Built {record['built_utc']} (UTC) by `python -m tools.submission` from {len(record['runs'])} run "
             f"folders, with LoadGen {record['loadgen_version']} (the {layout.RULES_VERSION} seeds). The layout is "
             f"that of the MLPerf Inference {layout.RULES_VERSION} submission rules; the runs' own records are in "
             f"`{base}/documentation/runs/`, the code in `{base}/{layout.SOURCE_DIR}/`.")
    official = (f"    python3 -m submission_checker.main --input . --version {layout.RULES_VERSION}"
                "   # MLPerf's, from mlcommons/inference tools/submission/")
    logs = ("Accuracy logs are truncated as the rules ask (first and last 4 KiB); each `accuracy.txt` ends with "
            f"the sha256 of the full log, which stays in the run folder named in `{base}/{layout.SUBMISSION_RECORD}`.")
    return "\n".join([
        f"# MLPerf Inference {layout.RULES_VERSION} submission: {MODEL_NAME} on {config.system_name}", "",
        built, "", "Check it:", "",
        "    python -m tools.check_submission .            # this project's checker",
        official, "", logs, "",
    ])

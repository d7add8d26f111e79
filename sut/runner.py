"""One LoadGen run from start to finish: settings, data, backend, SUT, logs, record.

Each run writes into its own new folder (never an existing one): LoadGen's
logs, ``run.json`` (settings, backend, versions, git commit, machine, result),
``sut_timings.npz`` (each sample's issue and completion time as the SUT saw
them), in accuracy mode ``accuracy.txt`` from :mod:`tools.accuracy_imdb`, and
for a compliance test the ``audit.config`` that LoadGen read
(:mod:`sut.compliance`).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import mlperf_loadgen as lg

from model.backends import Backend, create_backend
from model.evaluate import load_test_split
from model.weights import DEFAULT_VOCABULARY, DEFAULT_WEIGHTS, sha256_of
from qsl.library import ImdbQSL
from qsl.locations import default_dataset_path
from sut.compliance import compliance_test, stage_audit_config
from sut.loadgen_log import LoadGenResult, read_peak_search, read_result
from sut.run_files import RUN_RECORD_FILE, SUT_TIMINGS_FILE
from sut.provenance import git_commit, machine, package_versions
from sut.settings import DEFAULT_MLPERF_CONF, DEFAULT_USER_CONF, RunSettings, load_run_settings
from sut.system import Seq2CNNSystem
from tools.accuracy_imdb import AccuracyReport, check_accuracy_log

log = logging.getLogger(__name__)

DEFAULT_RESULTS_DIR = Path("results")
#: exit code when inference failed inside the SUT (LoadGen cannot be stopped, so the process ends)
EXIT_INFERENCE_FAILED = 3


class RunError(RuntimeError):
    """A run cannot start: bad option, missing file, or an output folder that exists."""


@dataclass
class RunConfig:
    scenario: str = "SingleStream"
    accuracy: bool = False
    dataset_path: Path = field(default_factory=default_dataset_path)
    model_path: Path = DEFAULT_WEIGHTS
    vocabulary_path: Path = DEFAULT_VOCABULARY
    mlperf_conf: Path = DEFAULT_MLPERF_CONF
    user_conf: Path = DEFAULT_USER_CONF
    output_dir: Path | None = None
    count: int | None = None
    backend: str = "folded"
    device: str = "cpu"
    max_batch_size: int = 64
    max_batch_tokens: int = 16384
    batch_wait_ms: float = 0.5
    threads: int | None = None
    workers: int = 1
    duration_s: float | None = None
    target_qps: float | None = None
    target_latency_ms: float | None = None
    trace: bool = False
    compliance: str | None = None
    find_peak: bool = False

    @property
    def mode(self) -> str:
        """LoadGen's mode: ``accuracy``, ``performance`` (compliance runs too) or ``find_peak``."""
        if self.accuracy:
            return "accuracy"
        return "find_peak" if self.find_peak else "performance"

    @property
    def kind(self) -> str:
        """What the run is, for its folder name: the mode, or the compliance test."""
        return self.compliance or self.mode.replace("_", "-")


@dataclass
class RunOutcome:
    run_dir: Path
    record: dict
    result: LoadGenResult
    accuracy: AccuracyReport | None


def new_run_dir(config: RunConfig) -> Path:
    """The run's folder: ``--output-dir``, or ``results/<UTC timestamp>-<scenario>-<mode>``; it must not exist."""
    if config.output_dir is not None:
        run_dir = Path(config.output_dir)
    else:
        stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
        run_dir = DEFAULT_RESULTS_DIR / f"{stamp}-{config.scenario}-{config.kind}"
    if run_dir.exists():
        raise RunError(f"output folder {run_dir} already exists; runs never overwrite earlier results: choose another --output-dir")
    return run_dir


def fit_to_sample_count(run_settings: RunSettings, sample_count: int) -> dict[str, int]:
    """Lower ``performance_sample_count_override`` to a reduced ``--count``; returns what changed."""
    settings = run_settings.test_settings
    if settings.performance_sample_count_override > sample_count:
        settings.performance_sample_count_override = sample_count
        return {"performance_sample_count_override": sample_count}
    return {}


#: The Server batch wait never exceeds this fraction of the latency target.
MAX_WAIT_FRACTION_OF_TARGET = 0.1


def server_batch_wait_s(requested_ms: float, run_settings: RunSettings) -> float:
    """The Server batch wait in seconds: as requested, capped at a tenth of the latency target."""
    target_s = run_settings.test_settings.server_target_latency_ns / 1e9
    wait_s = min(requested_ms / 1e3, MAX_WAIT_FRACTION_OF_TARGET * target_s)
    if wait_s < requested_ms / 1e3:
        log.warning("--batch-wait-ms %.3g capped at %.3g ms, a tenth of the %.3g ms latency target",
                    requested_ms, wait_s * 1e3, target_s * 1e3)
    return wait_s


def _write_json(path: Path, payload: dict) -> None:
    temporary = path.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    os.replace(temporary, path)


def _start_test(sut: Seq2CNNSystem, qsl: ImdbQSL, run_settings: RunSettings, run_dir: Path, trace: bool,
                audit_config: Path) -> None:
    """Run LoadGen on its own thread; if inference fails, end the process instead of hanging."""
    log_settings = lg.LogSettings()
    log_settings.log_output.outdir = str(run_dir)
    log_settings.log_output.copy_summary_to_stdout = False
    log_settings.enable_trace = trace
    errors: list[BaseException] = []

    def test() -> None:
        try:
            lg.StartTestWithLogSettings(sut.handle, qsl.handle, run_settings.test_settings, log_settings, str(audit_config))
        except BaseException as error:  # noqa: BLE001 - reported on the main thread
            errors.append(error)

    thread = threading.Thread(target=test, name="loadgen", daemon=True)
    thread.start()
    while thread.is_alive():
        if sut.failed.wait(timeout=0.2):
            raise sut.error  # type: ignore[misc]
    if errors:
        raise errors[0]


def run_benchmark(config: RunConfig, backend: Backend | None = None, command: list[str] | None = None) -> RunOutcome:
    """Run LoadGen once as ``config`` says and return where and what it wrote.

    ``command`` is the command line recorded in ``run.json`` (default: this process's).
    """
    run_dir = new_run_dir(config)
    test = compliance_test(config.compliance) if config.compliance else None
    if test is not None and config.mode != "performance":
        raise RunError(f"{test.name} is a performance-mode run: drop --accuracy and --find-peak-performance")
    if config.find_peak and config.scenario != "Server":
        raise RunError("--find-peak-performance searches the highest Server rate: use it with --scenario Server")
    if not Path(config.model_path).is_file():
        raise RunError(f"weights file not found: {config.model_path}; pass --model-path or restore model/seq2cnn.safetensors")
    run_settings = load_run_settings(
        config.scenario, config.mode, config.mlperf_conf, config.user_conf,
        duration_s=config.duration_s, target_qps=config.target_qps, target_latency_ms=config.target_latency_ms,
    )
    split = load_test_split(config.dataset_path, config.vocabulary_path, config.count)
    adjustments = fit_to_sample_count(run_settings, len(split))
    if backend is None:  # loading checks the weights' checksum, names and shapes
        backend = create_backend(config.backend, config.model_path, config.device, config.threads)

    qsl = ImdbQSL(split, run_settings.test_settings.performance_sample_count_override or len(split))
    sut = Seq2CNNSystem(
        backend, qsl, config.scenario, max_batch_size=config.max_batch_size, max_batch_tokens=config.max_batch_tokens,
        batch_wait_s=server_batch_wait_s(config.batch_wait_ms, run_settings), workers=config.workers,
    )
    run_dir.mkdir(parents=True)
    record = {
        "status": "running",
        "started_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": command if command is not None else sys.argv,
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(config).items()},
        "backend": {"name": backend.name, "device": config.device, "threads": config.threads,
                    "weights": str(config.model_path), "weights_sha256": sha256_of(Path(config.model_path))},
        "dataset": {"path": str(config.dataset_path), "samples": len(split)},
        "settings": run_settings.as_dict() | {"adjustments": adjustments},
        "versions": package_versions(),
        "git": git_commit(),
        "machine": machine(),
    }
    if test is not None:
        record["compliance"] = {"test": test.name, "audit_config": test.settings}
    _write_json(run_dir / RUN_RECORD_FILE, record)
    audit_config = stage_audit_config(run_dir, test)
    log.info("%s %s run of %d samples with the %s backend -> %s", config.scenario, config.mode, len(split), backend.name, run_dir)
    started = time.perf_counter()
    try:
        _start_test(sut, qsl, run_settings, run_dir, config.trace, audit_config)
    except BaseException as error:
        record |= {"status": "failed", "error": f"{type(error).__name__}: {error}"}
        _write_json(run_dir / RUN_RECORD_FILE, record)
        raise
    finally:
        wall_seconds = time.perf_counter() - started
    sut.shutdown()
    qsl.destroy()
    sut.ledger.save_timings(run_dir / SUT_TIMINGS_FILE)

    result = read_result(run_dir)
    accuracy = check_accuracy_log(run_dir, split.labels) if config.accuracy else None
    record |= {
        "status": "finished",
        "wall_seconds": round(wall_seconds, 2),
        "samples": sut.ledger.summary(),
        "result": {"validity": result.validity, "metric": result.metric, "value": result.value,
                   "failed_checks": result.failed_checks, "loadgen_errors": result.errors},
    }
    if accuracy is not None:
        record["accuracy"] = accuracy.as_dict()
    if config.find_peak:
        search = read_peak_search(run_dir)
        record["result"] |= {"peak_qps": search.peak_qps, "probed_qps": search.probed_qps}
    _write_json(run_dir / RUN_RECORD_FILE, record)
    return RunOutcome(run_dir, record, result, accuracy)

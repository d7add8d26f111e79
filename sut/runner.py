"""One LoadGen run from start to finish: settings, data, backend, SUT, logs, record.

Each run writes into its own new folder (never an existing one): LoadGen's
logs, ``run.json`` (:mod:`readback.run_record`), ``sut_timings.npz`` (each sample's
issue and completion time as the SUT saw them), in accuracy mode
``accuracy.txt`` (:mod:`readback.accuracy`), for a compliance test the
``audit.config`` that LoadGen read (:mod:`sut.compliance`) and the TEST01
verdicts (:mod:`readback.test01`), and for a Server peak search one folder per
probe under ``probes/`` (:mod:`sut.peak_search`).

While LoadGen runs, a line of progress (samples completed, rate) is logged
every :data:`PROGRESS_SECONDS`.
"""

from __future__ import annotations

import gc
import logging
import os
import resource
import sys
import threading
import time
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

import mlperf_loadgen as lg
import torch

from common.errors import BadInputError
from common.files import sha256_of_file
from model.backends import Backend, create_backend, torch_device
from model.paths import DEFAULT_WEIGHTS
from qsl.library import ImdbQSL
from qsl.locations import resolve_dataset_path
from qsl.token_cache import load_test_split
from qsl.vocabulary import DEFAULT_VOCABULARY
from readback.accuracy import check_accuracy_log
from readback.loadgen_log import TRACE_FILE, read_result
from readback.provenance import git_commit, machine, package_versions
from readback.run_files import PROBES_DIR, RUN_RECORD_FILE, SUT_TIMINGS_FILE
from readback.run_record import (
    RECORD_VERSION,
    BackendInfo,
    ComplianceInfo,
    DatasetInfo,
    RunKind,
    RunRecord,
    SutInfo,
)
from readback.test01 import Baselines, Verification, check_baselines, verify_test01
from sut.calibration import MARGIN, measure_offline_rate
from sut.compliance import compliance_test, stage_audit_config
from sut.interrupts import RunInterrupted
from sut.load_plan import bound_server_backlog, check_run_settings, plan_load
from sut.peak_search import DEFAULT_TOLERANCE, PeakSearch, Probe, search_peak
from sut.ray_cluster import RayCluster, check_reachable, import_ray
from sut.ray_pool import DEFAULT_IN_FLIGHT, ActorPool, actor_spec, default_actor_count
from sut.ray_system import RaySystem
from sut.settings import (
    DEFAULT_MLPERF_CONF,
    DEFAULT_USER_CONF,
    Override,
    RunSettings,
    load_run_settings,
)
from sut.system import InferenceError, Seq2CNNSystem

log = logging.getLogger(__name__)

DEFAULT_RESULTS_DIR = Path("results")
#: exit code when inference failed inside the SUT (LoadGen cannot be stopped, so the process ends)
EXIT_INFERENCE_FAILED = 3
#: seconds between two progress lines while LoadGen runs
PROGRESS_SECONDS = 10.0
#: how often the main thread looks whether LoadGen finished or inference failed (s)
POLL_SECONDS = 0.2
#: reviews in the IMDB test split (the sample count assumed before the data is loaded)
TEST_SPLIT_REVIEWS = 25_000
#: a hidden file that holds disk space in a run folder while the run lasts, freed to write the final run.json
RESERVE_FILE = ".space-reserve"
RESERVE_BYTES = 256 * 1024
#: The folded backend's Offline batches (reviews, token ids): large, because its kernel streams a whole batch
#: through each 4.7 MB tile of its tables while the tile stays in cache; 4,096 reviews ran 1.9 times as fast
#: as 64 here. (The torch backends would hold (ids x 1024) activations: 4 GB at 1M ids.)
OFFLINE_BATCHING = (4096, 1 << 20)
#: Batches (reviews, token ids) otherwise: small, so that a Server batch's time stays well inside the latency
#: bound, and the torch backends' activations small
OTHER_BATCHING = (64, 16384)
#: The Server batch wait never exceeds this fraction of the latency target.
MAX_WAIT_FRACTION_OF_TARGET = 0.1


class RunError(BadInputError):
    """A run cannot start: bad option, missing file, or an output folder that exists."""


@dataclass
class RunConfig:
    """Everything a run is asked to do (``run.py``'s options); ``None`` leaves a value to its default source."""

    scenario: str = "SingleStream"
    accuracy: bool = False
    dataset_path: Path | None = None
    model_path: Path = DEFAULT_WEIGHTS
    vocabulary_path: Path = DEFAULT_VOCABULARY
    mlperf_conf: Path = DEFAULT_MLPERF_CONF
    user_conf: Path = DEFAULT_USER_CONF
    output_dir: Path | None = None
    count: int | None = None
    backend: str = "folded"
    device: str = "cpu"
    precision: str = "fp32"
    max_batch_size: int | None = None
    max_batch_tokens: int | None = None
    batch_wait_ms: float = 0.5
    threads: int | None = None
    workers: int = 1
    duration_s: float | None = None
    target_qps: float | None = None
    target_latency_ms: float | None = None
    trace: bool = False
    compliance: str | None = None
    accuracy_run: Path | None = None
    performance_run: Path | None = None
    find_peak: bool = False
    peak_tolerance: float = DEFAULT_TOLERANCE
    ray: bool = False
    ray_address: str | None = None
    ray_actors: int | None = None
    ray_actor_cpus: float | None = None
    ray_in_flight: int = DEFAULT_IN_FLIGHT

    def batching(self) -> tuple[int, int]:
        """The most reviews and token ids per batch: as given, else the default (:data:`OFFLINE_BATCHING` for
        the folded backend's Offline runs, :data:`OTHER_BATCHING` for the rest)."""
        folded_offline = self.scenario == "Offline" and self.backend == "folded"
        size, tokens = OFFLINE_BATCHING if folded_offline else OTHER_BATCHING
        return self.max_batch_size or size, self.max_batch_tokens or tokens

    @property
    def kind(self) -> RunKind:
        """What the run is (recorded in ``run.json``; the one place this is decided)."""
        if self.compliance:
            return self.compliance  # type: ignore[return-value]
        if self.find_peak:
            return "find-peak"
        return "accuracy" if self.accuracy else "performance"

    @property
    def mode(self) -> str:
        """LoadGen's mode: ``accuracy``, else ``performance`` (compliance runs and find-peak probes too)."""
        return "accuracy" if self.accuracy else "performance"

    def baselines(self) -> Baselines | None:
        """The runs a compliance run is verified against."""
        if not self.compliance:
            return None
        if self.accuracy_run is None or self.performance_run is None:
            raise RunError(
                f"{self.compliance} compares with an accuracy run and a performance run of the same scenario: pass "
                f"--accuracy-run and --performance-run (make them with 'python run.py --scenario {self.scenario} --accuracy' "
                f"and 'python run.py --scenario {self.scenario}')")
        return Baselines(Path(self.accuracy_run), Path(self.performance_run))


@dataclass
class RunOutcome:
    """Where a run wrote its logs, its record, and for a compliance run the verification."""

    run_dir: Path
    record: RunRecord
    verification: Verification | None = None


def _output_exists(path: Path) -> RunError:
    if path.is_symlink() and not path.exists():
        return RunError(f"output folder {path} is a link to {os.readlink(path)}, which does not exist; a run's folder "
                        "must be new: choose another --output-dir, or remove the link")
    return RunError(f"output folder {path} already exists; runs never overwrite earlier results: choose another --output-dir")


def _cannot_create(path: Path, error: OSError) -> RunError:
    return RunError(f"cannot create the run folder {path}: {error.strerror or error}. Pass an --output-dir in a folder "
                    "you can write to (or run from one, for the default results/)")


def new_run_dir(config: RunConfig) -> Path:
    """The run's folder, created empty: ``--output-dir`` (which must not exist), else a new
    ``results/<UTC time>-<scenario>-<kind>`` (``-2``, ``-3``, ... for runs started in the same second).
    :class:`RunError` when it exists or cannot be created."""
    if config.output_dir is not None:
        run_dir = Path(config.output_dir)
        if os.path.lexists(run_dir):  # a dangling link too
            raise _output_exists(run_dir)
        try:
            run_dir.parent.mkdir(parents=True, exist_ok=True)
            run_dir.mkdir()
        except FileExistsError:
            raise _output_exists(run_dir) from None
        except OSError as error:
            raise _cannot_create(run_dir, error) from None
        return run_dir
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    base = DEFAULT_RESULTS_DIR / f"{stamp}-{config.scenario}-{config.kind}"
    run_dir, suffix = base, 1
    try:
        base.parent.mkdir(parents=True, exist_ok=True)
        while True:
            try:
                run_dir.mkdir()
                return run_dir
            except FileExistsError:  # another run started in the same second
                suffix += 1
                run_dir = base.with_name(f"{base.name}-{suffix}")
    except OSError as error:
        raise _cannot_create(run_dir, error) from None


def _nearest_existing(path: Path) -> Path:
    path = Path(os.path.abspath(path))
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _refuse_unusable_output(config: RunConfig) -> None:
    """Refuse an output folder that exists or cannot be created, before anything is loaded (the folder
    itself is claimed later, so that a run that fails to load leaves none)."""
    target = Path(config.output_dir) if config.output_dir is not None else DEFAULT_RESULTS_DIR / "new-run"
    if config.output_dir is not None and os.path.lexists(target):
        raise _output_exists(target)
    ancestor = _nearest_existing(target.parent)
    if not ancestor.is_dir():
        raise RunError(f"cannot create the run folder {target}: {ancestor} is a file, not a folder. Pass another "
                       "--output-dir")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise RunError(f"cannot create the run folder {target}: {ancestor} is not writable. Pass an --output-dir in "
                       "a folder you can write to")


def server_batch_wait_s(requested_ms: float, run_settings: RunSettings) -> float:
    """The Server batch wait in seconds: as requested, capped at a tenth of the latency target."""
    target_s = run_settings.test_settings.server_target_latency_ns / 1e9
    wait_s = min(requested_ms / 1e3, MAX_WAIT_FRACTION_OF_TARGET * target_s)
    if wait_s < requested_ms / 1e3:
        log.warning("--batch-wait-ms %.3g capped at %.3g ms, a tenth of the %.3g ms latency target",
                    requested_ms, wait_s * 1e3, target_s * 1e3)
    return wait_s


def _check_request(config: RunConfig) -> None:
    """Refuse combinations of options that cannot run, before anything is loaded."""
    if config.compliance:
        compliance_test(config.compliance)
        if config.accuracy or config.find_peak:
            raise RunError(f"{config.compliance} is a performance-mode run: drop --accuracy and --find-peak-performance")
    elif config.accuracy_run is not None or config.performance_run is not None:
        raise RunError("--accuracy-run and --performance-run belong to a compliance run: add --compliance TEST01")
    if config.find_peak:
        if config.scenario != "Server":
            raise RunError("--find-peak-performance searches the highest Server rate: use it with --scenario Server")
        if config.accuracy:
            raise RunError("--find-peak-performance is a performance search: drop --accuracy")
        if not 0 < config.peak_tolerance < 1:
            raise RunError(f"--peak-tolerance must lie between 0 and 1, got {config.peak_tolerance}")
    if not Path(config.model_path).is_file():
        if Path(config.model_path).exists():
            raise RunError(f"weights {config.model_path} is not a regular file (a folder, FIFO or device); pass "
                           "--model-path of a .safetensors file")
        raise RunError(f"weights file not found: {config.model_path}; pass --model-path or restore model/seq2cnn.safetensors")
    ray_options = [name for name, value in (("--ray-address", config.ray_address), ("--ray-actors", config.ray_actors),
                                            ("--ray-actor-cpus", config.ray_actor_cpus)) if value is not None]
    if ray_options and not config.ray:
        raise RunError(f"{', '.join(ray_options)} belong to a run on Ray actors: add --ray")
    if config.ray:
        import_ray(config.ray_address)  # RayUnavailableError (exit 2) says how to install it, before anything loads
        if config.ray_address not in (None, "auto"):
            check_reachable(config.ray_address)  # Ray would retry for minutes
        if config.workers != 1:
            raise RunError("--workers is the number of local worker threads; on Ray the actors do the work: "
                           "drop --workers, and set --ray-actors")
        if (config.ray_actors is not None and config.ray_actors < 1) or config.ray_in_flight < 1:
            raise RunError("--ray-actors and --ray-in-flight must be at least 1")
        if config.ray_actor_cpus is not None and config.ray_actor_cpus <= 0:
            raise RunError("--ray-actor-cpus must be more than 0")
    if config.ray and config.device.split(":")[0] == "cuda":
        device = torch.device("cuda")  # a GPU of the cluster's, not of this machine: checked when the actors start
    else:
        device = torch_device(config.device)  # ValueError (exit 2) for a device torch does not know or see
    if config.precision != "fp32" and (config.backend != "folded" or device.type != "cpu"):
        raise RunError(f"--precision {config.precision} is an option of the folded backend on the CPU; the "
                       f"{config.backend} backend on {config.device} runs in fp32: drop --precision")


class LoadGenRun:
    """LoadGen runs over one SUT and QSL: each :meth:`start` is one test into its own folder."""

    def __init__(self, sut: Seq2CNNSystem, qsl: ImdbQSL, run_settings: RunSettings, trace: bool):
        self.sut, self.qsl, self.run_settings, self.trace = sut, qsl, run_settings, trace

    def start(self, log_dir: Path, audit_config: Path) -> float:
        """Run one LoadGen test writing into ``log_dir``; returns its wall time (s).

        LoadGen runs on its own thread while this one logs progress; if
        inference fails, the SUT's error is raised here instead of waiting for
        a LoadGen that cannot be stopped.
        """
        log_settings = lg.LogSettings()
        log_settings.log_output.outdir = str(log_dir)
        log_settings.log_output.copy_summary_to_stdout = False
        log_settings.enable_trace = self.trace
        errors: list[BaseException] = []

        def test() -> None:
            try:
                lg.StartTestWithLogSettings(self.sut.handle, self.qsl.handle, self.run_settings.test_settings,
                                            log_settings, str(audit_config))
            except BaseException as error:  # noqa: BLE001 - reported on the main thread
                errors.append(error)

        loaded = len(self.qsl.split) if self.run_settings.mode == "accuracy" else self.qsl.performance_sample_count
        self.sut.reset_ledger(plan_load(self.run_settings, loaded).samples)
        # Everything loaded so far (reviews, tables, modules) lives to the end: move it out of the garbage
        # collector's sight, so that a full collection during the run does not walk it (a latency spike).
        gc.collect()
        gc.freeze()
        started = time.perf_counter()
        thread = threading.Thread(target=test, name="loadgen", daemon=True)
        thread.start()
        next_progress = started + PROGRESS_SECONDS
        try:
            while thread.is_alive():
                if self.sut.failed.wait(timeout=POLL_SECONDS):
                    error = self.sut.error
                    if isinstance(error, Exception) and not isinstance(error, OSError):
                        raise error
                    # SystemExit, KeyboardInterrupt... from the backend: inference failed, the process did not ask to end
                    raise InferenceError(f"{type(error).__name__} raised inside the backend: {error}") from error
                if time.perf_counter() >= next_progress:
                    self._log_progress(time.perf_counter() - started)
                    next_progress += PROGRESS_SECONDS
        except RunInterrupted as interrupt:
            interrupt.loadgen_started = True  # its threads cannot be stopped: the process must end
            log.warning("%s after %.1f s: stopping the run", interrupt, time.perf_counter() - started)
            raise
        trace = Path(log_dir) / TRACE_FILE
        if not self.trace and trace.is_file() and trace.stat().st_size == 0:
            trace.unlink()  # LoadGen opens it on every run; without --trace it stays empty
        if errors:
            raise errors[0]
        wall_seconds = time.perf_counter() - started
        self.sut.ledger.save_timings(Path(log_dir) / SUT_TIMINGS_FILE)
        return wall_seconds

    def _log_progress(self, elapsed_s: float) -> None:
        completed = self.sut.ledger.completed_total
        planned = self.run_settings.test_settings.min_duration_ms / 1e3
        log.info("LoadGen running: %.0f s of at least %.0f s, %s samples completed (%s/s)",
                 elapsed_s, planned, f"{completed:,}", f"{completed / elapsed_s:,.0f}")


def run_benchmark(config: RunConfig, backend: Backend | None = None, command: list[str] | None = None) -> RunOutcome:
    """Run LoadGen as ``config`` says and return where and what it wrote.

    ``backend`` replaces ``config.backend`` (for tests); ``command`` is the
    command line recorded in ``run.json`` (default: this process's). Once the
    run folder exists, any way the run ends is recorded there: ``finished``,
    ``failed`` with the error, or ``interrupted`` (:class:`RunInterrupted`).
    """
    _check_request(config)
    _refuse_unusable_output(config)
    baselines = config.baselines()
    if baselines is not None:  # before anything is loaded, so that a wrong folder costs no run
        check_baselines(config.scenario, baselines)
    test = compliance_test(config.compliance) if config.compliance else None
    run_settings = load_run_settings(
        config.scenario, config.mode, config.mlperf_conf, config.user_conf,
        duration_s=config.duration_s, target_qps=config.target_qps, target_latency_ms=config.target_latency_ms,
    )
    # Before the data loads, so that settings out of range cost nothing; checked again with the real sample count.
    check_run_settings(run_settings, run_settings.test_settings.performance_sample_count_override or TEST_SPLIT_REVIEWS)
    dataset_path = resolve_dataset_path(config.dataset_path)
    whole = load_test_split(dataset_path, config.vocabulary_path)
    split = whole.head(config.count) if config.count is not None else whole
    if config.count is not None:
        samples = min(run_settings.test_settings.performance_sample_count_override or len(split), len(split))
        run_settings.add_override(Override("count", config.count, {"performance_sample_count_override": samples}))
    loaded_samples = run_settings.test_settings.performance_sample_count_override or len(split)
    plan = check_run_settings(run_settings, len(split) if config.accuracy else loaded_samples)
    if config.scenario == "Server" and "OMP_WAIT_POLICY" not in os.environ:
        # The kernel's OpenMP threads would otherwise spin between batches, taking the core that LoadGen's
        # issue thread and the SUT's batching need: p99 103 ms instead of 40 ms at 2,000 queries/s here.
        # Read when OpenMP starts (the kernel's first call), so set before the backend is made.
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    cluster = RayCluster(config.ray_address) if config.ray else None
    try:
        return _run_on(config, backend, cluster, command, run_settings, plan, split, whole, dataset_path,
                       loaded_samples, test, baselines)
    finally:
        if cluster is not None:
            cluster.stop()


def _start_pool(config: RunConfig, cluster: RayCluster) -> ActorPool:
    """The backend actors of a run on Ray, on ``cluster`` (started or joined here)."""
    cluster.start()
    spec = actor_spec(config.backend, config.device, config.precision, config.threads, config.ray_actor_cpus,
                      Path(config.model_path))
    actors = config.ray_actors or default_actor_count(cluster, spec)
    log.info("starting %d %s backend actor(s) on Ray (%g CPUs%s each)", actors, config.backend, spec.cpus,
             ", 1 GPU" if spec.gpus else "")
    return ActorPool(cluster, spec, Path(config.model_path), actors, config.ray_in_flight)


def _run_on(config: RunConfig, backend: Backend | None, cluster: RayCluster | None, command: list[str] | None,
            run_settings: RunSettings, plan, split, whole, dataset_path: Path, loaded_samples: int, test,
            baselines) -> RunOutcome:
    """The rest of :func:`run_benchmark`, from the backend on (on Ray actors when ``cluster`` is given)."""
    pool = _start_pool(config, cluster) if cluster is not None else None
    if pool is not None:
        backend = pool
    elif backend is None:  # loading checks the weights' checksum, names and shapes
        log.info("loading the %s backend on %s", config.backend, config.device)
        backend = create_backend(config.backend, config.model_path, config.device, config.threads, config.precision)
    if config.scenario == "Offline" and config.mode == "performance" and config.duration_s is not None \
            and config.target_qps is None:
        # on Ray, as many batches at once as the actors hold
        workers = pool.live_actors * pool.in_flight_per_actor if pool is not None else config.workers
        rate = MARGIN * measure_offline_rate(backend, split, *config.batching(), workers)
        run_settings.add_override(Override("calibrated_qps", round(rate, 1), {"offline_expected_qps": round(rate, 1)}))
        plan = check_run_settings(run_settings, loaded_samples)
    plan = replace(plan, max_outstanding_queries=bound_server_backlog(run_settings, plan))

    qsl = ImdbQSL(split, loaded_samples)
    batch_wait_s = server_batch_wait_s(config.batch_wait_ms, run_settings) if config.scenario == "Server" else 0.0
    batching = dict(max_batch_size=config.batching()[0], max_batch_tokens=config.batching()[1],
                    batch_wait_s=batch_wait_s, workers=config.workers)
    sut = RaySystem(pool, qsl, config.scenario, **batching) if pool is not None else \
        Seq2CNNSystem(backend, qsl, config.scenario, **batching)
    run_dir = new_run_dir(config)
    record = RunRecord(
        version=RECORD_VERSION, kind=config.kind, status="running", scenario=config.scenario,
        started_utc=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        command=[str(word) for word in (command if command is not None else sys.argv)],
        config={key: (str(value) if isinstance(value, Path) else value) for key, value in asdict(config).items()},
        backend=_backend_info(backend, config),
        sut=SutInfo(*config.batching(), round(batch_wait_s * 1e3, 6), config.workers),
        dataset=DatasetInfo(str(dataset_path), len(split), len(whole)),
        settings=run_settings.record(), versions=package_versions(), git=git_commit(), machine=machine(),
        compliance=ComplianceInfo(test.name, test.settings, str(baselines.accuracy_run), str(baselines.performance_run))
        if test is not None and baselines is not None else None,
        load_plan=plan, cluster=pool.cluster_info() if pool is not None else None,
    )
    started = time.perf_counter()
    try:
        _reserve_space(run_dir)
        record.write(run_dir)
        log.info("%s %s run of %d samples with the %s backend -> %s", config.scenario, config.kind, len(split),
                 backend.name, run_dir)
        verification = _run_and_check(config, record, LoadGenRun(sut, qsl, run_settings, config.trace), run_dir,
                                      test, baselines, split.labels)
    except BaseException as error:
        if pool is not None:
            record.cluster = pool.cluster_info()
        record.status = "failed"
        if isinstance(error, RunInterrupted):
            error.run_dir, record.status = run_dir, "interrupted"
        record.error = f"{type(error).__name__}: {error}"
        record.wall_seconds = round(time.perf_counter() - started, 2)
        record.peak_rss_bytes = peak_rss_bytes()
        _write_final_record(record, run_dir)
        raise
    if pool is not None:
        pool.shutdown()
        record.cluster = pool.cluster_info()
    record.status = "finished"
    _write_final_record(record, run_dir, must_succeed=True)
    return RunOutcome(run_dir, record, verification)


def _backend_info(backend: Backend, config: RunConfig) -> BackendInfo:
    """What ``run.json`` records of the backend; ``load_report`` and ``precision`` where the backend has them."""
    tables = getattr(backend, "load_report", None)
    return BackendInfo(backend.name, config.device, config.threads, str(config.model_path),
                       sha256_of_file(Path(config.model_path)), getattr(backend, "precision", "fp32"),
                       tables.source if tables is not None else None, tables.seconds if tables is not None else None)


def peak_rss_bytes() -> int:
    """The most resident memory this process has used so far (bytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _reserve_space(run_dir: Path) -> None:
    """Hold :data:`RESERVE_BYTES` of disk in the run folder, so that its final record fits on a disk that fills."""
    with open(run_dir / RESERVE_FILE, "wb") as stream:
        stream.write(b"\0" * RESERVE_BYTES)


def _write_final_record(record: RunRecord, run_dir: Path, *, must_succeed: bool = False) -> None:
    """Write the run's last record and drop the space reserve; on a full disk the reserve makes room for it.
    If even that fails, say where the run stands (and raise the error when ``must_succeed``)."""
    reserve = run_dir / RESERVE_FILE
    try:
        try:
            record.write(run_dir)
        except OSError:
            reserve.unlink(missing_ok=True)
            record.write(run_dir)
    except OSError as error:
        log.error("cannot record the run's end in %s (%s): its run.json still says 'running'; the run %s",
                  run_dir / RUN_RECORD_FILE, error.strerror or error, record.status)
        if must_succeed:
            raise
    finally:
        reserve.unlink(missing_ok=True)


def _run_and_check(config: RunConfig, record: RunRecord, runs: LoadGenRun, run_dir: Path, test, baselines,
                   labels) -> Verification | None:
    """The LoadGen run (or the peak search), then its accuracy check and compliance verification, into ``record``."""
    started = time.perf_counter()
    if config.find_peak:
        record.peak_search = _search_peak(runs, run_dir, config.peak_tolerance)
        peak = record.peak_search.peak_probe
        record.result = peak.result if peak is not None else None
        record.samples = peak.samples if peak is not None else None
    else:
        runs.start(run_dir, stage_audit_config(run_dir, test))
        record.samples = runs.sut.ledger.counts()
        record.result = read_result(run_dir)
        _compare_used_settings(record)
    record.wall_seconds = round(time.perf_counter() - started, 2)
    record.peak_rss_bytes = peak_rss_bytes()
    runs.sut.shutdown()
    runs.qsl.destroy()

    verification = None
    if config.accuracy:
        record.accuracy = check_accuracy_log(run_dir, labels, judged=record.dataset.whole_split).summary()
    if test is not None and baselines is not None:
        record.status = "finished"  # the verification reads the compliance run's own record
        record.write(run_dir)
        verification = verify_test01(run_dir, baselines)
        record.compliance = replace(record.compliance, passed=verification.passed)  # type: ignore[arg-type]
    return verification


#: settings given to LoadGen (``TestSettings`` attribute) and the name LoadGen logs what it used under
USED_SETTING_NAMES = {
    "offline_expected_qps": "target_qps", "server_target_qps": "target_qps",
    "min_duration_ms": "min_duration_ms", "server_max_async_queries": "max_async_queries",
}


def _compare_used_settings(record: RunRecord) -> None:
    """Warn when LoadGen logged that it used another value than the one it was given."""
    if record.result is None:
        return
    for attribute, name in USED_SETTING_NAMES.items():
        given, used = record.settings.effective.get(attribute), record.result.used_settings.get(name)
        if given is None or isinstance(used, bool) or not isinstance(used, (int, float)):
            continue
        if abs(float(used) - float(given)) > 1e-6 * max(1.0, abs(float(given))):
            log.warning("LoadGen used %s = %s, not the %s it was given: see its detail log", name, used, given)


def _search_peak(runs: LoadGenRun, run_dir: Path, tolerance: float) -> PeakSearch:
    """LoadGen performance runs at the rates :func:`search_peak` asks for, each into ``probes/NN-<rate>qps``."""
    settings = runs.run_settings.test_settings
    probes_dir = run_dir / PROBES_DIR
    probes_dir.mkdir()

    def run_probe(rate: float) -> Probe:
        folder = probes_dir / f"{len(list(probes_dir.iterdir())) + 1:02d}-{rate:.1f}qps"
        folder.mkdir()
        settings.server_target_qps = rate
        bound_server_backlog(runs.run_settings, check_run_settings(runs.run_settings, runs.qsl.performance_sample_count))
        log.info("find-peak probe at %.1f queries/s -> %s", rate, folder)
        wall_seconds = runs.start(folder, stage_audit_config(folder, None))
        return Probe(rate, str(folder.relative_to(run_dir)), read_result(folder), runs.sut.ledger.counts(),
                     round(wall_seconds, 2))

    return search_peak(settings.server_target_qps, run_probe, tolerance)

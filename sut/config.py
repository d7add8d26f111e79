"""What a run is asked to do: :class:`RunConfig`, every default stated once, every check of options together.

``run.py`` turns its command line into a :class:`RunConfig`; tests and tools
build one directly. :meth:`RunConfig.check` refuses, before anything is
loaded, any combination of options that cannot run (:class:`RunError`, exit 2).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from common.errors import BadInputError
from model.paths import DEFAULT_WEIGHTS
from model.precision import ONNX_BACKEND_NAMES, check_precision
from qsl.vocabulary import DEFAULT_VOCABULARY
from readback.run_record import RunKind
from readback.test01 import Baselines
from sut.compliance import compliance_test
from sut.settings import DEFAULT_MLPERF_CONF, default_user_conf
from sut.stall import DEFAULT_STALL_CEILING_S, DEFAULT_STALL_FLOOR_S, StallLimits

DEFAULT_RESULTS_DIR = Path("results")
#: The folded backend's Offline batches (reviews, token ids): large, because its kernel streams a whole batch
#: through each 4.7 MB tile of its tables while the tile stays in cache, so larger batches run faster per
#: review. (The torch backends would hold (ids x 1024) activations: 4 GB at 1M ids.)
OFFLINE_BATCHING = (4096, 1 << 20)
#: Batches (reviews, token ids) otherwise: small, so that a Server batch's time stays well inside the latency
#: bound, and the torch backends' activations small
OTHER_BATCHING = (64, 16384)
#: The ONNX backends' batches (reviews, token ids), as measured (docs/measurements.md): small, because the
#: runtimes materialise each batch's (reviews x length x 1024) activations, padded to its longest review. The
#: folded graphs one review at a time: larger batches did not run Offline reliably faster, and made Server miss
#: its latency bound
ONNX_BATCHING = {"onnxruntime-trimmed": (4, 16384), "onnxruntime-folded": (1, 1 << 20),
                 "openvino-trimmed": (4, 16384), "openvino-folded": (1, 1 << 20)}
#: how long a Server query may wait for others to share its batch (ms; capped at a tenth of the latency target)
DEFAULT_BATCH_WAIT_MS = 0.5
#: worker threads that run Offline and Server batches in this process
DEFAULT_WORKERS = 1
#: Ray: batches each actor may hold at once: one running, one waiting in its mailbox so that it never idles
DEFAULT_IN_FLIGHT = 2
#: Ray: CPUs each CPU actor reserves when neither --ray-actor-cpus nor --threads says
DEFAULT_ACTOR_CPUS = 2
#: a find-peak search ends when (invalid - valid) rate <= this fraction of the valid rate
DEFAULT_PEAK_TOLERANCE = 0.02


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
    #: None: the shipped tuning of the run's precision (:func:`sut.settings.default_user_conf`)
    user_conf: Path | None = None
    output_dir: Path | None = None
    count: int | None = None
    #: accept a test split that is not the IMDB v1.0 test split (:mod:`qsl.identity`): its accuracy is reported,
    #: not judged; without it such a split is refused before the run
    unofficial_dataset: bool = False
    backend: str = "folded"
    device: str = "cpu"
    precision: str = "fp32"
    max_batch_size: int | None = None
    max_batch_tokens: int | None = None
    batch_wait_ms: float = DEFAULT_BATCH_WAIT_MS
    threads: int | None = None
    workers: int = DEFAULT_WORKERS
    duration_s: float | None = None
    target_qps: float | None = None
    target_latency_ms: float | None = None
    trace: bool = False
    compliance: str | None = None
    accuracy_run: Path | None = None
    performance_run: Path | None = None
    find_peak: bool = False
    peak_tolerance: float = DEFAULT_PEAK_TOLERANCE
    ray: bool = False
    ray_address: str | None = None
    ray_actors: int | None = None
    ray_actor_cpus: float | None = None
    ray_in_flight: int = DEFAULT_IN_FLIGHT
    stall_timeout_s: float = DEFAULT_STALL_FLOOR_S
    #: None: the larger of :data:`sut.stall.DEFAULT_STALL_CEILING_S` and ``stall_timeout_s``
    stall_timeout_max_s: float | None = None

    def __post_init__(self) -> None:
        if self.user_conf is None:
            self.user_conf = default_user_conf(self.precision)

    def batching(self) -> tuple[int, int]:
        """The most reviews and token ids per batch: as given, else the default (:data:`OFFLINE_BATCHING` for
        the folded backend's Offline runs, :data:`ONNX_BATCHING` for the ONNX backends, :data:`OTHER_BATCHING`
        for the rest)."""
        if self.scenario == "Offline" and self.backend == "folded":
            size, tokens = OFFLINE_BATCHING
        elif self.backend in ONNX_BATCHING:
            size, tokens = ONNX_BATCHING[self.backend]
        else:
            size, tokens = OTHER_BATCHING
        return self.max_batch_size or size, self.max_batch_tokens or tokens

    @property
    def stall_limits(self) -> StallLimits:
        """The floor and ceiling of the bound past which a batch in flight is a stall (:mod:`sut.stall`)."""
        ceiling = self.stall_timeout_max_s
        if ceiling is None:
            ceiling = max(DEFAULT_STALL_CEILING_S, self.stall_timeout_s)
        return StallLimits(self.stall_timeout_s, ceiling)

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

    @property
    def calibrates(self) -> bool:
        """Whether LoadGen's queries are sized from a measurement (:mod:`sut.calibration`): a quick performance run
        (``--time``) of Offline without --qps (its rate), or of SingleStream or MultiStream without
        --target-latency (their latency)."""
        if self.mode != "performance" or self.duration_s is None:
            return False
        if self.scenario == "Offline":
            return self.target_qps is None
        return self.scenario in ("SingleStream", "MultiStream") and self.target_latency_ms is None

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

    def check(self) -> None:
        """Refuse options that cannot run together (:class:`RunError`), before anything is loaded."""
        if self.count is not None and self.count < 1:
            raise RunError("--count must be at least 1")
        if (self.max_batch_size or 1) < 1 or (self.max_batch_tokens or 1) < 1 or self.workers < 1:
            raise RunError("--max-batchsize, --max-batch-tokens and --workers must be at least 1")
        if self.batch_wait_ms < 0:
            raise RunError("--batch-wait-ms must be at least 0")
        limits = self.stall_limits
        if not (0 < limits.floor_s <= limits.ceiling_s < float("inf")):
            raise RunError(f"--stall-timeout {limits.floor_s:g} and --stall-timeout-max {limits.ceiling_s:g}: the stall "
                           "bound needs 0 < --stall-timeout <= --stall-timeout-max (seconds, finite)")
        if self.compliance:
            compliance_test(self.compliance)
            if self.accuracy or self.find_peak:
                raise RunError(f"{self.compliance} is a performance-mode run: drop --accuracy and --find-peak-performance")
        elif self.accuracy_run is not None or self.performance_run is not None:
            raise RunError("--accuracy-run and --performance-run belong to a compliance run: add --compliance TEST01")
        if self.find_peak:
            if self.scenario != "Server":
                raise RunError("--find-peak-performance searches the highest Server rate: use it with --scenario Server")
            if self.accuracy:
                raise RunError("--find-peak-performance is a performance search: drop --accuracy")
            if not 0 < self.peak_tolerance < 1:
                raise RunError(f"--peak-tolerance must lie between 0 and 1, got {self.peak_tolerance}")
        weights = Path(self.model_path)
        if not weights.is_file():
            if weights.exists():
                raise RunError(f"weights {self.model_path} is not a regular file (a folder, FIFO or device); pass "
                               "--model-path of a .safetensors file")
            raise RunError(f"weights file not found: {self.model_path}; pass --model-path or restore model/seq2cnn.safetensors")
        self._check_ray_options()
        if self.backend in ONNX_BACKEND_NAMES:
            pass  # the runtime knows its devices (cpu, cuda, tensorrt, gpu): checked when the backend is created
        elif not (self.ray and self.device.split(":")[0] == "cuda"):  # a cluster's GPU is checked by its actors
            from model.backends import (
                torch_device,  # torch: imported once the command line is known to be good
            )

            torch_device(self.device)  # DeviceError for a device torch does not know or see
        check_precision(self.backend, self.device, self.precision)

    def _check_ray_options(self) -> None:
        ray_options = [name for name, value in (("--ray-address", self.ray_address), ("--ray-actors", self.ray_actors),
                                                ("--ray-actor-cpus", self.ray_actor_cpus)) if value is not None]
        if ray_options and not self.ray:
            raise RunError(f"{', '.join(ray_options)} belong to a run on Ray actors: add --ray")
        if not self.ray:
            return
        if self.workers != 1:
            raise RunError("--workers is the number of local worker threads; on Ray the actors do the work: "
                           "drop --workers, and set --ray-actors")
        if (self.ray_actors is not None and self.ray_actors < 1) or self.ray_in_flight < 1:
            raise RunError("--ray-actors and --ray-in-flight must be at least 1")
        if self.ray_actor_cpus is not None and self.ray_actor_cpus <= 0:
            raise RunError("--ray-actor-cpus must be more than 0")

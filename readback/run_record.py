"""``run.json``: the record of one run, its one writer and its one reader.

Every run folder holds a ``run.json`` written by :mod:`sut.runner` when the
run starts (status ``running``) and again when it ends (``finished``,
``failed``, or ``interrupted`` by SIGINT or SIGTERM). It says what kind of run
it was (:data:`RunKind`, decided once, by the runner), the command, the
settings LoadGen was given and where they came from, the query set LoadGen
was expected to build (:class:`sut.load_plan.LoadPlan`), the backend and its
weights, the dataset, versions, git commit and machine, and the outcome:
LoadGen's result (with the settings LoadGen says it used), the sample
bookkeeping, the process's peak memory, the accuracy check, the compliance
test, or the find-peak search; for a run on Ray, the cluster, its actors and the faults it met; and the
process that makes the run, so that a record left ``running`` by a killed process says so
(:mod:`readback.run_process`).

Everything that reads a run folder (TEST01 verification, the submission
packer and checker, the report) reads it through :func:`read_run_record`,
which checks the format version and every field's type, so that a
hand-edited or truncated record is refused with the field it is about,
never half-read. The record is validated and serialised by pydantic from the
plain dataclasses below and those of the modules that own each part
(:class:`readback.loadgen_log.LoadGenResult`, :class:`readback.accuracy.AccuracySummary`,
:class:`sut.settings.SettingsRecord`, :class:`sut.ledger.SampleCounts`,
:class:`sut.peak_search.PeakSearch`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pydantic

from common.errors import BadInputError
from common.files import write_bytes_atomically
from readback.accuracy import AccuracySummary, not_judged_because
from readback.cluster import ClusterInfo
from readback.loadgen_log import LoadGenResult
from readback.peak_search import PeakSearch
from readback.run_files import RUN_RECORD_FILE
from readback.run_process import RunProcess, unfinished_reason
from readback.settings_record import LoadPlan, SettingsRecord
from readback.timings import SampleCounts

#: the format of ``run.json``; a reader refuses any other
RECORD_VERSION = 2
#: what a run is: a performance or accuracy run, a compliance test, or a Server peak search
RunKind = Literal["performance", "accuracy", "TEST01", "find-peak"]
RunStatus = Literal["running", "finished", "failed", "interrupted"]


class RunRecordError(BadInputError):
    """A run folder whose ``run.json`` is missing, unreadable, of another format, or not of a finished run."""


@dataclass(frozen=True)
class BackendInfo:
    """How the model was computed: the backend, its device and threads, the weights by path and sha256, the
    tables' precision, for the folded backend where its tables came from (``cache`` or ``built``) and the
    seconds that took, and the software that computed and its release (``PyTorch 2.13.0``, ``numba 0.68.1``,
    ``ONNX Runtime 1.32.0``, ...; None in records of older releases and for backends that do not say)."""

    name: str
    device: str
    threads: int | None
    weights: str
    weights_sha256: str
    precision: str = "fp32"
    tables_source: str | None = None
    tables_load_seconds: float | None = None
    framework: str | None = None


@dataclass(frozen=True)
class SutInfo:
    """How the SUT batched: the most reviews and token ids per batch, the Server batch wait it used (ms,
    after the cap at a tenth of the latency bound), its worker threads, and how queries and responses crossed
    to LoadGen (``arrays``: LoadGen's C API, queries and responses as arrays, Offline and Server where it is
    reached; ``objects``: the binding's Python objects, :mod:`sut.loadgen_c_api`)."""

    max_batch_size: int
    max_batch_tokens: int
    batch_wait_ms: float
    workers: int
    completion: str = "objects"


@dataclass(frozen=True)
class DatasetInfo:
    """The reviews the run's QSL held: the dataset path, how many, and how many the whole test split has;
    ``unofficial``: why that split is not the IMDB v1.0 test split (a run with ``--unofficial-dataset``), None
    when the run verified that it is (:mod:`qsl.identity`)."""

    path: str
    samples: int
    split_samples: int
    unofficial: str | None = None

    @property
    def whole_split(self) -> bool:
        """Whether the run covered the whole test split (no ``--count``)."""
        return self.samples == self.split_samples

    @property
    def judged(self) -> bool:
        """Whether the run's accuracy is judged against the quality targets: over the whole, verified IMDB v1.0
        test split."""
        return self.whole_split and self.unofficial is None

    def not_judged_reason(self) -> str | None:
        """Why the run's accuracy is not judged (:func:`readback.accuracy.not_judged_because`); None when it is."""
        if self.judged:
            return None
        return not_judged_because(self.samples, self.unofficial)


@dataclass(frozen=True)
class ComplianceInfo:
    """A compliance run's test, the settings its ``audit.config`` gave LoadGen, and the runs it was verified against."""

    test: str
    audit_config: dict[str, int]
    accuracy_run: str
    performance_run: str
    passed: bool | None = None


@dataclass
class RunRecord:
    """The content of ``run.json`` (format :data:`RECORD_VERSION`); see the module docstring."""

    version: int
    kind: RunKind
    status: RunStatus
    scenario: str
    started_utc: str
    command: list[str]
    config: dict[str, Any]
    backend: BackendInfo
    sut: SutInfo
    dataset: DatasetInfo
    settings: SettingsRecord
    versions: dict[str, str]
    git: dict[str, Any]
    machine: dict[str, Any]
    compliance: ComplianceInfo | None = None
    load_plan: LoadPlan | None = None
    peak_rss_bytes: int | None = None
    wall_seconds: float | None = None
    samples: SampleCounts | None = None
    result: LoadGenResult | None = None
    accuracy: AccuracySummary | None = None
    peak_search: PeakSearch | None = None
    cluster: ClusterInfo | None = None
    error: str | None = None
    #: the process that makes the run (:mod:`readback.run_process`): a reader can tell a killed run
    process: RunProcess | None = None

    def unfinished_reason(self) -> str:
        """Why this is not a finished run's record (for a ``running`` one: whether its process still runs)."""
        return unfinished_reason(self.status, self.process, self.error)

    @property
    def mode(self) -> str:
        """LoadGen's mode: ``accuracy`` or ``performance`` (compliance runs and find-peak probes too)."""
        return self.settings.mode

    def write(self, run_dir: Path) -> None:
        """Write ``run_dir/run.json``, whole or not at all."""
        write_bytes_atomically(Path(run_dir) / RUN_RECORD_FILE, _ADAPTER.dump_json(self, indent=2) + b"\n")


_ADAPTER = pydantic.TypeAdapter(RunRecord)


def read_run_record(run_dir: Path, role: str = "run") -> RunRecord:
    """The record of the run folder ``run_dir``; ``role`` names it in errors ("accuracy run", ...)."""
    path = Path(run_dir) / RUN_RECORD_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunRecordError(f"{role} {run_dir}: no {RUN_RECORD_FILE} there; pass the folder of a run made by run.py") from None
    except (OSError, UnicodeDecodeError) as error:
        raise RunRecordError(f"{role} {run_dir}: cannot read {path}: {error}") from None
    except json.JSONDecodeError as error:
        raise RunRecordError(f"{role} {run_dir}: {path} is not valid JSON ({error}); the run may have been cut short") from None
    version = data.get("version") if isinstance(data, dict) else None
    if version != RECORD_VERSION:
        raise RunRecordError(
            f"{role} {run_dir}: {path} is of format version {version if version is not None else '1 (no version field)'}, "
            f"this release reads version {RECORD_VERSION}: make the run again with this release")
    try:
        return _ADAPTER.validate_python(data)
    except pydantic.ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors()[:5])
        raise RunRecordError(f"{role} {run_dir}: {path} does not fit format version {RECORD_VERSION} "
                             f"({error.error_count()} problem(s): {problems}); restore it from the run, or make the run again") from None


def read_finished_run(run_dir: Path, role: str = "run") -> RunRecord:
    """The record of a run that finished (not running, failed or interrupted)."""
    record = read_run_record(run_dir, role)
    if record.status != "finished":
        raise RunRecordError(f"{role} {run_dir} did not finish ({record.unfinished_reason()}): make it again")
    return record

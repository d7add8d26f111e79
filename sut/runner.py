"""One run from start to finish, in five steps a reader can follow top to bottom (:func:`run_benchmark`):

1. plan: check the options, load LoadGen's settings, check the runs a compliance test compares with (and warn
   of settings unlike its performance run's: :func:`sut.compliance.settings_unlike`);
   nothing is loaded yet, so a mistake costs nothing;
2. prepare: the reviews, the query set LoadGen will build, the executor (this process's backend, or Ray
   actors: :func:`make_executor`, the one place that chooses), a quick run's calibration
   (:func:`sut.calibration.calibrate`, watched as the test is);
3. run: the SUT over the executor, a new run folder, the LoadGen test (or a Server peak search);
4. record: ``run.json`` (:mod:`readback.run_record`), written as the run starts and however it ends
   (:func:`sut.run_folder.recording`);
5. check: the accuracy log against the labels, a compliance run against its baselines.

Each run writes into its own new folder: LoadGen's logs, ``run.json``, ``sut_timings.npz``, in accuracy mode
``accuracy.txt``, for a compliance test the ``audit.config`` LoadGen read and the verdicts, for a peak search
one folder per probe under ``probes/``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

from common.files import file_sha256
from model.backends import Backend
from qsl.identity import unofficial_reason
from qsl.library import ImdbQSL
from qsl.locations import resolve_dataset_path
from qsl.reviews import TEST_SPLIT_REVIEWS
from qsl.token_cache import TokenizedSplit, load_test_split
from readback.accuracy import check_accuracy_log
from readback.loadgen_log import read_result
from readback.provenance import git_commit, machine, package_versions
from readback.run_process import this_process
from readback.run_record import RECORD_VERSION, BackendInfo, ComplianceInfo, DatasetInfo, RunRecord, SutInfo
from readback.settings_record import LoadPlan
from readback.test01 import Baselines, Verification, check_baselines, verify_test01
from sut.calibration import calibrate
from sut.compliance import ComplianceTest, compliance_test, settings_unlike, stage_audit_config
from sut.config import RunConfig
from sut.executor import Executor
from sut.load_plan import bound_server_backlog, check_run_settings
from sut.loadgen_driver import LoadGenTest
from sut.local_executor import LocalExecutor
from sut.peak_search import run_peak_search
from sut.run_folder import new_run_dir, peak_rss_bytes, recording, refuse_unusable_output
from sut.settings import (
    Override,
    RunSettings,
    load_run_settings,
    warn_of_seeds_other_than_the_rules,
    warn_of_settings_used_otherwise,
)
from sut.system import Seq2CNNSystem, server_batch_wait_s

log = logging.getLogger(__name__)


@dataclass
class RunOutcome:
    """Where a run wrote its logs, its record, and for a compliance run the verification."""

    run_dir: Path
    record: RunRecord
    verification: Verification | None = None


@dataclass
class RunPlan:
    """What step 1 settled: LoadGen's settings, the compliance test and its baselines, the query set."""

    run_settings: RunSettings
    test: ComplianceTest | None
    baselines: Baselines | None
    load: LoadPlan | None = None


@dataclass
class Reviews:
    """The test reviews of the run: the dataset, the whole split, the part the QSL holds, how many it loads."""

    dataset_path: Path
    whole: TokenizedSplit
    split: TokenizedSplit
    loaded_samples: int


def run_benchmark(config: RunConfig, backend: Backend | None = None, command: list[str] | None = None) -> RunOutcome:
    """Run LoadGen as ``config`` says and return where and what it wrote.

    ``backend`` replaces ``config.backend`` in this process (for tests); ``command`` is the command line
    recorded in ``run.json`` (default: this process's).
    """
    plan = plan_run(config)
    reviews = load_reviews(config, plan)
    with opened_executor(config, backend) as executor:
        if config.calibrates:  # step 2c: a quick run's queries sized from a measurement, watched as the test is
            calibrate(config, plan.run_settings, reviews.split, executor)
            plan.load = check_run_settings(plan.run_settings, reviews.loaded_samples)
        plan.load = replace(plan.load, max_outstanding_queries=bound_server_backlog(plan.run_settings, plan.load))
        qsl = ImdbQSL(reviews.split, reviews.loaded_samples)
        batch_wait_s = server_batch_wait_s(config.batch_wait_ms, plan.run_settings) if config.scenario == "Server" else 0.0
        sut = Seq2CNNSystem(executor, qsl, config.scenario, max_batch_size=config.batching()[0],
                            max_batch_tokens=config.batching()[1], batch_wait_s=batch_wait_s, workers=config.workers,
                            stall_limits=config.stall_limits)
        run_dir = new_run_dir(config)
        record = new_record(config, command, plan, reviews, executor, batch_wait_s, sut.completion)
        with recording(record, run_dir, executor):
            log.info("%s %s run of %d samples with the %s backend -> %s", config.scenario, config.kind,
                     len(reviews.split), record.backend.name, run_dir)
            run_tests(config, record, LoadGenTest(sut, qsl, plan.run_settings, config.trace), run_dir, plan)
            sut.shutdown()
            qsl.destroy()
            executor.close()
            record.cluster = executor.cluster()
            verification = check_results(config, record, run_dir, plan, reviews)
    return RunOutcome(run_dir, record, verification)


def plan_run(config: RunConfig) -> RunPlan:
    """Step 1: every check that needs no data, then LoadGen's settings."""
    config.check()
    executor_class(config).check_available(config)
    refuse_unusable_output(config)
    baselines = config.baselines()
    performance = None
    if baselines is not None:  # before anything is loaded, so that a wrong folder costs no run
        _, performance = check_baselines(config.scenario, baselines)
    run_settings = load_run_settings(
        config.scenario, config.mode, config.mlperf_conf, config.user_conf,
        duration_s=config.duration_s, target_qps=config.target_qps, target_latency_ms=config.target_latency_ms)
    warn_of_seeds_other_than_the_rules(run_settings)
    if performance is not None and (differences := settings_unlike(performance, run_settings, config.count)):
        log.warning("this %s run's settings differ from those of its performance run %s: %s. TEST01 compares the "
                    "two runs' figures as they are (as MLPerf's verify_performance.py does); make both with the same "
                    "settings, one right after the other", config.compliance, baselines.performance_run,
                    "; ".join(differences))
    # Before the data loads, so that settings out of range cost nothing; checked again with the real sample count.
    check_run_settings(run_settings, run_settings.test_settings.performance_sample_count_override or TEST_SPLIT_REVIEWS)
    test = compliance_test(config.compliance) if config.compliance else None
    return RunPlan(run_settings, test, baselines)


def load_reviews(config: RunConfig, plan: RunPlan) -> Reviews:
    """Step 2a: the tokenised test split (``--count`` of it), and the query set LoadGen will build from it."""
    dataset_path = resolve_dataset_path(config.dataset_path)
    whole = load_test_split(dataset_path, config.vocabulary_path, unofficial_dataset=config.unofficial_dataset)
    split = whole.head(config.count) if config.count is not None else whole
    settings = plan.run_settings.test_settings
    if config.count is not None:
        samples = min(settings.performance_sample_count_override or len(split), len(split))
        plan.run_settings.add_override(Override("count", config.count, {"performance_sample_count_override": samples}))
    loaded = settings.performance_sample_count_override or len(split)
    plan.load = check_run_settings(plan.run_settings, len(split) if config.accuracy else loaded)
    if config.scenario == "Server" and "OMP_WAIT_POLICY" not in os.environ:
        # The kernel's OpenMP threads would otherwise spin between batches, taking the core that LoadGen's
        # issue thread and the SUT's batching need, which raises Server's tail latency.
        # Read when OpenMP starts (the kernel's first call), so set before the backend is made.
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    return Reviews(dataset_path, whole, split, loaded)


def executor_class(config: RunConfig) -> type[Executor]:
    """Where the batches run: Ray actors with ``--ray`` (Ray is imported only then), else this process."""
    if config.ray:
        from sut.ray_executor import RayExecutor
        return RayExecutor
    return LocalExecutor


def make_executor(config: RunConfig, backend: Backend | None = None) -> Executor:
    """The run's executor, not yet open."""
    return executor_class(config).from_config(config, backend)


@contextlib.contextmanager
def opened_executor(config: RunConfig, backend: Backend | None) -> Iterator[Executor]:
    """Step 2b: the executor, open for the block; closed after it (without waiting for batches after a failure)."""
    executor = make_executor(config, backend)
    try:
        executor.open()
        yield executor
    except BaseException:
        executor.close(drain=False)
        raise
    executor.close()


def new_record(config: RunConfig, command: list[str] | None, plan: RunPlan, reviews: Reviews, executor: Executor,
               batch_wait_s: float, completion: str) -> RunRecord:
    """Step 4: the run's record as it starts (status ``running``)."""
    described = executor.describe()
    compliance = (ComplianceInfo(plan.test.name, plan.test.settings, str(plan.baselines.accuracy_run),
                                 str(plan.baselines.performance_run))
                  if plan.test is not None and plan.baselines is not None else None)
    return RunRecord(
        version=RECORD_VERSION, kind=config.kind, status="running", scenario=config.scenario,
        started_utc=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        command=[str(word) for word in (command if command is not None else sys.argv)],
        config={key: (str(value) if isinstance(value, Path) else value) for key, value in asdict(config).items()},
        backend=BackendInfo(described.backend, config.device, config.threads, str(config.model_path),
                            file_sha256(Path(config.model_path)), described.precision, described.tables_source,
                            described.tables_load_seconds, described.framework),
        sut=SutInfo(*config.batching(), round(batch_wait_s * 1e3, 6), config.workers, completion),
        dataset=DatasetInfo(str(reviews.dataset_path), len(reviews.split), len(reviews.whole),
                            unofficial_reason(reviews.whole.identity)),
        settings=plan.run_settings.record(), versions=package_versions(), git=git_commit(), machine=machine(),
        compliance=compliance, load_plan=plan.load, cluster=executor.cluster(), process=this_process())


def run_tests(config: RunConfig, record: RunRecord, test: LoadGenTest, run_dir: Path, plan: RunPlan) -> None:
    """Step 3: the LoadGen test (or the peak search's probes) into ``run_dir``, its result into ``record``."""
    started = time.perf_counter()
    if config.find_peak:
        record.peak_search = run_peak_search(test, run_dir, config.peak_tolerance)
        peak = record.peak_search.peak_probe
        record.result = peak.result if peak is not None else None
        record.samples = peak.samples if peak is not None else None
    else:
        test.run(run_dir, stage_audit_config(run_dir, plan.test))
        record.samples = test.sut.ledger.counts()
        record.result = read_result(run_dir)
        warn_of_settings_used_otherwise(record.settings.effective, record.result.used_settings)
    record.wall_seconds = round(time.perf_counter() - started, 2)
    record.peak_rss_bytes = peak_rss_bytes()


def check_results(config: RunConfig, record: RunRecord, run_dir: Path, plan: RunPlan,
                  reviews: Reviews) -> Verification | None:
    """Step 5: an accuracy run's log against the labels (judged on the whole, verified IMDB v1.0 test split only);
    a compliance run against its baselines."""
    if config.accuracy:
        record.accuracy = check_accuracy_log(run_dir, reviews.split.labels, judged=record.dataset.judged,
                                             not_judged_reason=record.dataset.not_judged_reason()).summary()
    if plan.test is None or plan.baselines is None:
        return None
    record.status = "finished"  # the verification reads the compliance run's own record
    record.write(run_dir)
    verification = verify_test01(run_dir, plan.baselines)
    record.compliance = replace(record.compliance, passed=verification.passed)  # type: ignore[arg-type]
    return verification

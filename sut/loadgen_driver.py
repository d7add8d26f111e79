"""One LoadGen test over the SUT and the QSL, driven from the main thread.

LoadGen runs on a thread of its own while the main thread logs a line of
progress every :data:`PROGRESS_SECONDS` and watches the SUT: when inference
fails, or a batch in flight is past its stall bound (:mod:`sut.stall`), the driver raises :class:`common.errors.InferenceFailedError` at once
(whatever the Python type of the backend's error) instead of waiting for a
LoadGen that cannot be stopped. LoadGen's threads cannot be stopped from
Python either: after a failed or interrupted test, :func:`loadgen_running`
says so, and ``run.py`` then ends the process with ``os._exit``.

Every test of the process runs on the same thread (:class:`TestThread`), never on one made per test: each
thread that completes samples gets a logger of LoadGen's own, and a thread that ends between two tests
leaves LoadGen's log thread a logger it frees while a request to read it is still pending. The next test
then crashed in ``TlsLogger::SwapBuffers`` (SIGSEGV): 6 times in about 950 one-second MultiStream tests,
20 to a process, each failed on its third batch. A process runs several tests in find-peak's probes and in
the tests' children. The thread lives as long as the process.
"""

from __future__ import annotations

import gc
import logging
import queue
import threading
import time
from pathlib import Path
from typing import Callable

import mlperf_loadgen as lg

from common.errors import RunInterrupted
from qsl.library import ImdbQSL
from readback.loadgen_log import TRACE_FILE
from readback.run_files import SUT_TIMINGS_FILE
from sut.executor import inference_failure
from sut.load_plan import plan_load
from sut.settings import RunSettings
from sut.system import Seq2CNNSystem

log = logging.getLogger(__name__)

#: seconds between two progress lines while LoadGen runs
PROGRESS_SECONDS = 10.0
#: how often the main thread looks whether LoadGen finished or inference failed (s)
POLL_SECONDS = 0.2

#: the ledger reserves the planned samples plus this fraction of them (1/10)
LEDGER_SLACK_DIVISOR = 10


class TestThread:
    """The one thread of this process on which LoadGen's tests run, one after the other, started with the first."""

    def __init__(self) -> None:
        self._tests: queue.SimpleQueue = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pending = 0  # tests handed over and not yet ended

    def start(self, test: Callable[[], None]) -> threading.Event:
        """Run ``test`` (which must not raise) on the thread; the event is set once it returned."""
        ended = threading.Event()
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._serve, name="loadgen", daemon=True)
                self._thread.start()
            self._pending += 1
        self._tests.put((test, ended))
        return ended

    def running(self) -> bool:
        """Whether a test handed over has not ended yet."""
        with self._lock:
            return self._pending > 0

    def _serve(self) -> None:
        while True:
            test, ended = self._tests.get()
            try:
                test()
            finally:
                with self._lock:
                    self._pending -= 1
                ended.set()


_test_thread = TestThread()


def loadgen_running() -> bool:
    """Whether a LoadGen test of this process is still running (its threads would abort a normal exit)."""
    return _test_thread.running()


class LoadGenTest:
    """LoadGen tests over one SUT and QSL: each :meth:`run` is one test into its own folder."""

    def __init__(self, sut: Seq2CNNSystem, qsl: ImdbQSL, run_settings: RunSettings, trace: bool):
        self.sut, self.qsl, self.run_settings, self.trace = sut, qsl, run_settings, trace
        #: the samples LoadGen is expected to issue in the current test (:func:`sut.load_plan.plan_load`)
        self.planned_samples = 0

    def run(self, log_dir: Path, audit_config: Path) -> float:
        """Run one LoadGen test writing into ``log_dir``, LoadGen reading ``audit_config``; returns its wall
        time (s). :class:`InferenceFailedError` when inference failed."""
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
        self.planned_samples = plan_load(self.run_settings, loaded).samples
        # Server arrivals are random: their count varies by about its square root around the plan
        self.sut.reset_ledger(self.planned_samples + self.planned_samples // LEDGER_SLACK_DIVISOR + 64)
        # Everything loaded so far (reviews, tables, modules) lives to the end: move it out of the garbage
        # collector's sight, so that a full collection during the run does not walk it (a latency spike).
        gc.collect()
        gc.freeze()
        started = time.perf_counter()
        ended = _test_thread.start(test)
        next_progress = started + PROGRESS_SECONDS
        try:
            while not ended.is_set() or self.sut.failed.is_set():
                if self.sut.failed.wait(timeout=POLL_SECONDS) or self.sut.stalled():
                    failure = inference_failure(self.sut.error)
                    raise failure from (failure.cause or None)
                if time.perf_counter() >= next_progress:
                    self._log_progress(time.perf_counter() - started)
                    next_progress += PROGRESS_SECONDS
        except RunInterrupted as interrupt:
            log.warning("%s after %.1f s: stopping the run", interrupt, time.perf_counter() - started)
            raise
        finally:
            self._drop_empty_trace(Path(log_dir))
        if errors:
            raise errors[0]
        wall_seconds = time.perf_counter() - started
        self.sut.ledger.save_timings(Path(log_dir) / SUT_TIMINGS_FILE)
        return wall_seconds

    def _drop_empty_trace(self, log_dir: Path) -> None:
        """LoadGen opens its trace file on every run; without --trace it stays empty: remove it, however the
        test ended (a failed or interrupted run's folder too)."""
        trace = log_dir / TRACE_FILE
        if not self.trace and trace.is_file() and trace.stat().st_size == 0:
            trace.unlink()

    def _log_progress(self, elapsed_s: float) -> None:
        completed = self.sut.ledger.completed_total
        if self.run_settings.mode == "accuracy":  # no minimum duration: LoadGen ends once each sample is done
            log.info("LoadGen running (accuracy: every sample once): %.0f s, %s of %s samples completed (%s/s)",
                     elapsed_s, f"{completed:,}", f"{self.planned_samples:,}", f"{completed / elapsed_s:,.0f}")
            return
        planned = self.run_settings.test_settings.min_duration_ms / 1e3
        log.info("LoadGen running: %.0f s of at least %.0f s, %s samples completed (%s/s)",
                 elapsed_s, planned, f"{completed:,}", f"{completed / elapsed_s:,.0f}")

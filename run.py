"""Run the Seq2CNN system-under-test under MLPerf LoadGen.

    python run.py --scenario SingleStream                 # performance run, full rules (10 minutes)
    python run.py --scenario Offline --accuracy           # accuracy run + checker
    python run.py --scenario Server --time 30 --qps 100   # quick run (not valid for submission)
    python run.py --scenario Offline --compliance TEST01 --accuracy-run A --performance-run P
    python run.py --scenario Server --find-peak-performance --time 10   # the highest VALID Server rate
    python run.py --scenario Offline --ray                # batches on Ray backend actors (--ray-address to join)

Settings load in order: LoadGen's built-in rules, --mlperf-conf, --user-conf,
then the quick-run overrides (--time, --qps, --target-latency, --count), which
the summary prints so that nobody mistakes a short run for a valid one. Each
run writes into its own new folder (default results/<UTC time>-<scenario>-<kind>/).

Exit status: 0 done (a performance run may still be INVALID: read the
summary); 1 accuracy below the 99% target, a failed compliance test, or no
VALID rate in a peak search; 2 bad input (the message says what and where),
or a disk that filled during the run; 3 inference failed during the run
(an error of any Python type raised by the backend, locally or on a Ray
actor, a batch that got no answer within the stall bound: --stall-timeout,
or every Ray actor died or hung), or an error of this program's own (its
traceback is logged);
130 / 143 stopped by SIGINT / SIGTERM (run.json then says "interrupted").
"""

from __future__ import annotations

# Only what the command line needs is imported here: torch, numba and the SUT load once it is known to be good
# (--help and a mistyped option answer at once).
import argparse
import faulthandler
import logging
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from common.errors import EXIT_DONE, EXIT_VERDICT_FAILED, RunInterrupted, report_failure
from common.text import plain
from model.precision import BACKEND_NAMES, PRECISIONS
from qsl.locations import DATASET_LOOKUP_HELP
from readback.peak_search import PeakSearch
from readback.run_record import RunRecord
from sut.compliance import COMPLIANCE_TESTS
from sut.config import DEFAULT_ACTOR_CPUS, OFFLINE_BATCHING, ONNX_BATCHING, OTHER_BATCHING, RunConfig
from sut.interrupts import interrupts_raise
from sut.settings import DEFAULT_USER_CONF, SCENARIOS
from sut.stall import DEFAULT_STALL_CEILING_S, STALL_FACTOR

if TYPE_CHECKING:
    from model.backends import Backend
    from sut.runner import RunOutcome

log = logging.getLogger("run")

#: what the error line of a full disk or a vanished folder adds
OS_ERROR_ADVICE = "free some space or choose another --output-dir, and run again"

#: how long LoadGen's log thread is given to write its last lines before the process ends (s)
LOADGEN_FLUSH_S = 0.1


def parse_args(argv: list[str] | None = None) -> RunConfig:
    """The run's configuration, as the command line asks for it: only the options given, :class:`RunConfig`
    holds every default (the help texts name it)."""
    parser = argparse.ArgumentParser(prog="python run.py", description=plain(__doc__),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", choices=list(SCENARIOS),
                        help=f"the LoadGen scenario (default: {RunConfig.scenario})")
    parser.add_argument("--accuracy", action="store_true", help="accuracy mode: every sample once, then the checker")
    parser.add_argument("--dataset-path", type=Path, help=DATASET_LOOKUP_HELP)
    parser.add_argument("--model-path", type=Path, help="safetensors weights (default: the shipped model/seq2cnn.safetensors)")
    parser.add_argument("--mlperf-conf", type=Path, help=f"benchmark rules (default: {RunConfig.mlperf_conf})")
    parser.add_argument("--user-conf", type=Path,
                        help=f"system tuning (default: {DEFAULT_USER_CONF} for fp32 tables, the user-bf16.conf and "
                             "user-int8.conf beside it for --precision bf16 and int8)")
    parser.add_argument("--output-dir", type=Path, help="new folder for this run's logs (must not exist)")
    parser.add_argument("--count", type=int, help="use only the first N test reviews (balanced), for quick runs")
    parser.add_argument("--unofficial-dataset", action="store_true",
                        help="accept a test split that is not the IMDB v1.0 test split (other review files, or "
                             "edited ones), which is otherwise refused before the run: its accuracy is reported, "
                             "not judged against the targets, which apply to that split only")
    parser.add_argument("--backend", choices=list(BACKEND_NAMES),
                        help="folded (fastest, exact), trimmed, or reference (the yardstick); <runtime>-<graph>: the "
                             "exported ONNX graph in ONNX Runtime or OpenVINO (pip install -e '.[onnx]' or "
                             f"'.[openvino]') (default: {RunConfig.backend})")
    parser.add_argument("--device", help="torch device, e.g. cpu or cuda; for ONNX Runtime also tensorrt, for "
                                         f"OpenVINO gpu (default: {RunConfig.device})")
    parser.add_argument("--precision", choices=list(PRECISIONS),
                        help="folded backend (CPU, or CUDA with Triton): fp32 tables (exact), bf16 tables (half the "
                             "memory traffic) or int8 tables (a quarter, integer sums); bf16 and int8 are MLPerf's "
                             "99.9%% variants, their agreement with fp32 in the README "
                             f"(default: {RunConfig.precision})")
    parser.add_argument("--max-batchsize", type=int, dest="max_batch_size",
                        help=f"largest batch of reviews the SUT runs at once (default: {OFFLINE_BATCHING[0]} for "
                             "the folded backend Offline, "
                             + ", ".join(f"{size} for {name}" for name, (size, _) in ONNX_BATCHING.items())
                             + f", {OTHER_BATCHING[0]} otherwise)")
    parser.add_argument("--max-batch-tokens", type=int,
                        help=f"Offline: token ids per batch, reviews sorted by length (default: {OFFLINE_BATCHING[1]:,} "
                             f"for the folded backend and the ONNX folded graphs, {OTHER_BATCHING[1]:,} otherwise)")
    parser.add_argument("--batch-wait-ms", type=float,
                        help="Server: how long a query may wait for others to share its batch "
                             f"(default: {RunConfig.batch_wait_ms}; capped at a tenth of the latency target)")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's choice)")
    parser.add_argument("--workers", type=int,
                        help=f"worker threads for Server and Offline (default: {RunConfig.workers})")
    quick = parser.add_argument_group("quick-run overrides (the run is then not valid for submission)")
    quick.add_argument("--time", type=float, dest="duration_s",
                       help="run for this many seconds (Offline without --qps: the query is sized from a 1 s "
                            "measurement of the backend, so the run lasts about this long)")
    quick.add_argument("--qps", type=float, dest="target_qps", help="Offline expected or Server target queries/s")
    quick.add_argument("--target-latency", type=float, dest="target_latency_ms", help="latency target or expectation, ms")
    compliance = parser.add_argument_group("compliance (TEST01: responses logged in performance mode match accuracy mode)")
    compliance.add_argument("--compliance", choices=list(COMPLIANCE_TESTS),
                            help="run this compliance test (its audit.config is staged in the run's own folder)")
    compliance.add_argument("--accuracy-run", type=Path, help="TEST01: the accuracy-mode run of this scenario to compare with")
    compliance.add_argument("--performance-run", type=Path, help="TEST01: the performance run of this scenario to compare with")
    peak = parser.add_argument_group("Server peak search")
    peak.add_argument("--find-peak-performance", action="store_true", dest="find_peak",
                      help="search the highest arrival rate LoadGen judges VALID, starting from the target rate "
                           "(--qps or user.conf): one full LoadGen run per probe")
    peak.add_argument("--peak-tolerance", type=float,
                      help="stop when the VALID and INVALID rates are this fraction apart "
                           f"(default: {RunConfig.peak_tolerance})")
    ray = parser.add_argument_group("Ray (pip install -e '.[ray]'): batches run on backend actors across processes, "
                                    "machines and GPUs")
    ray.add_argument("--ray", action="store_true",
                     help="run the SUT's batches on a pool of Ray actors, each holding its own backend (--backend, "
                          "--device, --precision)")
    ray.add_argument("--ray-address", help="join this Ray cluster (HOST:PORT of its head, or auto: the one RAY_ADDRESS "
                                           "or the last 'ray start' of this machine names) instead of starting a "
                                           "local instance of the run's own on 127.0.0.1")
    ray.add_argument("--ray-actors", type=int,
                     help="backend actors (default: one per GPU of the cluster with --device cuda, else one per "
                          "--ray-actor-cpus of its CPUs)")
    ray.add_argument("--ray-actor-cpus", type=float,
                     help=f"CPUs each actor reserves, and its threads (default: --threads, else {DEFAULT_ACTOR_CPUS}; "
                          "1 for a GPU actor)")
    ray.add_argument("--ray-in-flight", type=int,
                     help=f"batches sent to each actor before its first answers (default: {RunConfig.ray_in_flight})")
    stall = parser.add_argument_group("stalls (a batch that gets no answer ends the run with exit 3; on Ray the "
                                      "hung actor is dropped and its batches go to the others)")
    stall.add_argument("--stall-timeout", type=float, dest="stall_timeout_s", metavar="SECONDS",
                       help=f"seconds: the least a batch may wait for its answer before it is a stall; the bound is "
                            f"{STALL_FACTOR:g}x the batch's expected time from the slowest batch so far, at least this "
                            f"(default: {RunConfig.stall_timeout_s})")
    stall.add_argument("--stall-timeout-max", type=float, dest="stall_timeout_max_s", metavar="SECONDS",
                       help=f"seconds: the most a batch may wait, and the bound before any batch has completed "
                            f"(default: {DEFAULT_STALL_CEILING_S:g}, or --stall-timeout if larger)")
    parser.add_argument("--trace", action="store_true", help="also write LoadGen's mlperf_log_trace.json")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    options = {key: value for key, value in vars(args).items() if key != "verbose" and value is not None}
    return RunConfig(**options)


def result_line(record: RunRecord) -> str | None:
    """The headline figure as MLPerf defines it, with the plain percentile and tail beside it."""
    result = record.result
    if result is None or result.headline is None:
        return None
    extras = [f"{figure.name} {figure.text()}" for figure in (result.percentile, result.tail) if figure is not None]
    if record.scenario == "Server":
        bound = record.settings.effective.get("server_target_latency_ns")
        if bound:
            extras.append(f"bound {bound / 1e6:g} ms")
    shown = f" ({'; '.join(extras)})" if extras else ""
    return f"{result.headline.text()}  {result.headline.name}{shown}"


def peak_lines(search: PeakSearch) -> list[str]:
    """The peak, then one row per probe: rate, p99, LoadGen's verdict."""
    if search.peak_qps is not None:
        head = f"Peak       : {search.peak_qps:,.1f} queries/s, the highest rate LoadGen judged VALID ({search.conclusion})"
    else:
        head = f"Peak       : none: {search.conclusion}"
    rows = [head, "Probes     : rate (queries/s)   p99 latency   completed/s   verdict   folder"]
    for probe in search.probes:
        percentile = probe.result.percentile.text() if probe.result.percentile else "n/a"
        rate = probe.result.headline.value if probe.result.headline else float("nan")
        reasons = f" ({probe.result.failed_checks_text()})" if probe.result.failed_checks else ""
        if (more := probe.result.more_queries_needed()) is not None:
            reasons += f" [early stopping needs {more:,} more queries: longer probes (--time)]"
        rows.append(f"             {probe.target_qps:>16,.1f}   {percentile:>11}   {rate:>11,.1f}   "
                    f"{probe.result.validity}{reasons}   {probe.folder}")
    return rows


def print_summary(outcome: RunOutcome) -> None:
    record = outcome.record
    print()
    precision = f" ({record.backend.precision})" if record.backend.precision != "fp32" else ""
    print(f"Scenario   : {record.scenario}   Kind: {record.kind}   Backend: {record.backend.name}{precision}")
    if record.cluster is not None:
        print(f"Cluster    : {record.cluster.summary()}{record.cluster.faults()}")
    if record.samples is not None:
        print(f"Samples    : {record.dataset.samples} test reviews; issued {record.samples.issued}, "
              f"completed {record.samples.completed}")
    if record.peak_search is not None:
        print("\n".join(peak_lines(record.peak_search)))
    if (line := result_line(record)) is not None:
        print(f"Result     : {line}" + ("  [the peak probe]" if record.peak_search is not None else ""))
    result = record.result
    if result is not None and result.valid is not None:
        reasons = f" ({result.failed_checks_text()})" if result.failed_checks else ""
        print(f"Validity   : {result.validity}{reasons}")
        if result.ended_for_backlog:
            plan = record.load_plan
            bound = f"more than {plan.max_outstanding_queries:,} " if plan and plan.max_outstanding_queries else ""
            print(f"Backlog    : LoadGen ended the run early: {bound}queries were waiting, the system could not keep "
                  "up with the arrival rate: lower --qps (or find the highest rate with --find-peak-performance)")
        elif (advice := result.ran_out_of_queries(_user_conf_name(record))) is not None:
            print(f"Duration   : {advice}")
        elif (more := result.more_queries_needed()) is not None:
            print(f"Early stop : LoadGen would need at least {more:,} more queries for its percentile estimate: "
                  "run longer (--time) or faster (--qps)")
        elif result.missed_latency_bound and record.scenario == "Server":
            print("Latency    : the latency bound was missed at this arrival rate: lower --qps "
                  "(or find the highest rate with --find-peak-performance)")
    if record.accuracy is not None:
        print(f"Accuracy   : {record.accuracy.summary_line()}")
    if outcome.verification is not None:
        print(f"Compliance : {outcome.verification.summary_line()}")
        if quick_speed_check_failed(outcome):
            print("Speed      : only TEST01's speed check failed, in a quick run: two short runs on a shared machine "
                  f"differ by 10-20% from one minute to the next, so the check says little below {QUICK_TEST01_S:g} s. "
                  "Make the performance run and this one for at least that long (--time), one right after the other, "
                  "with nothing else running (the README's quick TEST01 recipe); under the rules (600 s) it is meaningful")
    if record.settings.overrides:
        listed = ", ".join(f"{o.option}={o.value:g}" for o in record.settings.overrides)
        print(f"Overrides  : {listed}  -> a quick run, NOT valid for submission")
    if result is not None and result.errors:
        print(f"LoadGen    : {len(result.errors)} error(s) logged, e.g. {result.errors[0]}")
    if result is not None and (mismatch := result.error_count_mismatch()):
        print(f"LoadGen    : {mismatch}")
    print(f"Logs       : {outcome.run_dir}")


def _user_conf_name(record) -> str:
    """The run's user.conf (the last config file it loaded), as a path from here where it lies below."""
    if not record.settings.config_files:
        return "the user.conf"
    path = Path(record.settings.config_files[-1].path).resolve()
    return str(path.relative_to(Path.cwd())) if path.is_relative_to(Path.cwd()) else str(path)


#: a quick TEST01 pair shorter than this (s each) has a speed check that mostly measures the machine's drift
QUICK_TEST01_S = 60.0


def quick_speed_check_failed(outcome: RunOutcome) -> bool:
    """Whether a quick TEST01 run failed its speed check alone (its responses matched the accuracy run)."""
    verification = outcome.verification
    return (verification is not None and verification.accuracy.passed and not verification.performance.passed
            and not verification.performance.problems and outcome.record.settings.quick_run)


def exit_code(outcome: RunOutcome) -> int:
    """0 done; 1 when the run's own verdict failed (accuracy, compliance, no VALID peak rate)."""
    record = outcome.record
    if record.accuracy is not None and record.accuracy.passed is False:
        return EXIT_VERDICT_FAILED
    if outcome.verification is not None and not outcome.verification.passed:
        return EXIT_VERDICT_FAILED
    if record.peak_search is not None and record.peak_search.peak_qps is None:
        return EXIT_VERDICT_FAILED
    return EXIT_DONE


def main(argv: list[str] | None = None, backend: Backend | None = None) -> int:
    """Run as the command line says; ``backend`` replaces ``--backend`` (for tests)."""
    config = parse_args(argv)
    command = sys.argv if argv is None else ["run.py", *argv]
    if not faulthandler.is_enabled():  # should LoadGen or native code crash: each thread's stack, to stderr
        faulthandler.enable()
    from sut.runner import (
        run_benchmark,  # LoadGen, numpy and the SUT: after the command line parsed
    )

    try:
        with interrupts_raise():
            outcome = run_benchmark(config, backend, command)
    except RunInterrupted as interrupt:
        where = (f"{interrupt.run_dir} keeps what was written, and its run.json says 'interrupted'"
                 if interrupt.run_dir is not None else "it had not started: nothing was written")
        print(f"error: {interrupt}: the run stopped; {where}", file=sys.stderr)
        return _ended(interrupt.exit_code)
    except Exception as error:  # noqa: BLE001 - each family of errors has its exit code
        return _ended(report_failure(error, log, OS_ERROR_ADVICE))
    print_summary(outcome)
    return exit_code(outcome)


def _ended(code: int) -> int:
    """``code``, once the process can end: while LoadGen's threads run, only by :func:`_end_process`."""
    from sut.loadgen_driver import loadgen_running

    if loadgen_running():
        _end_process(code)
    return code


def _end_process(code: int) -> None:
    """Flush the logs and end the process now: LoadGen's threads cannot be stopped from Python, and a normal
    exit with them alive aborts ("terminate called without an active exception")."""
    time.sleep(LOADGEN_FLUSH_S)  # LoadGen's log thread writes its last lines every few milliseconds
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main())

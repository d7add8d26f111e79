"""Run the Seq2CNN system-under-test under MLPerf LoadGen.

    python run.py --scenario SingleStream                 # performance run
    python run.py --scenario Offline --accuracy           # accuracy run + checker
    python run.py --scenario Server --time 30 --qps 10    # quick run (not valid for submission)
    python run.py --scenario Offline --compliance TEST01 --accuracy-run A --performance-run P
    python run.py --scenario Server --find-peak-performance   # LoadGen searches the highest Server rate

Settings load in order: LoadGen's built-in rules, --mlperf-conf, --user-conf,
then the quick-run overrides (--time, --qps, --target-latency), which the
summary prints so that nobody mistakes a short run for a valid one. Each run
writes into its own new folder (default results/<timestamp>-<scenario>-<mode>/).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from model.backends import BACKENDS, Backend
from model.weights import WeightsError
from qsl.errors import DatasetError
from qsl.locations import default_dataset_path
from qsl.vocabulary import VocabularyError
from sut.compliance import COMPLIANCE_TESTS
from sut.runner import EXIT_INFERENCE_FAILED, RunConfig, RunError, RunOutcome, run_benchmark
from sut.settings import DEFAULT_MLPERF_CONF, DEFAULT_USER_CONF, SCENARIOS, ConfigError
from tools.accuracy_imdb import AccuracyCheckError
from tools.verify_test01 import Baselines, Verification, VerificationError, check_baselines, verify_test01

log = logging.getLogger("run")


def parse_args(argv: list[str] | None = None) -> tuple[RunConfig, Baselines | None]:
    """The run's configuration, and for a compliance run the submission runs it is compared with."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", choices=list(SCENARIOS), default="SingleStream")
    parser.add_argument("--accuracy", action="store_true", help="accuracy mode: every sample once, then the checker")
    parser.add_argument("--dataset-path", type=Path, default=default_dataset_path(),
                        help="IMDB folder or .tar.gz (default: %(default)s; get it with 'python -m qsl.download')")
    parser.add_argument("--model-path", type=Path, help="safetensors weights (default: the shipped model/seq2cnn.safetensors)")
    parser.add_argument("--mlperf-conf", type=Path, default=DEFAULT_MLPERF_CONF, help="benchmark rules (default: %(default)s)")
    parser.add_argument("--user-conf", type=Path, default=DEFAULT_USER_CONF, help="system tuning (default: %(default)s)")
    parser.add_argument("--output-dir", type=Path, help="new folder for this run's logs (must not exist)")
    parser.add_argument("--count", type=int, help="use only the first N test reviews (balanced), for quick runs")
    parser.add_argument("--backend", choices=list(BACKENDS), default="folded",
                        help="folded (fastest, exact), trimmed, or reference (the yardstick) (default: %(default)s)")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    parser.add_argument("--max-batchsize", type=int, default=64, help="largest batch of reviews the SUT runs at once")
    parser.add_argument("--max-batch-tokens", type=int, default=16384,
                        help="Offline: token ids per batch, reviews sorted by length (default: %(default)s)")
    parser.add_argument("--batch-wait-ms", type=float, default=0.5,
                        help="Server: how long a query may wait for others to share its batch "
                             "(default: %(default)s; capped at a tenth of the latency target)")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's choice)")
    parser.add_argument("--workers", type=int, default=1, help="worker threads for Server and Offline")
    quick = parser.add_argument_group("quick-run overrides (the run is then not valid for submission)")
    quick.add_argument("--time", type=float, dest="duration_s", help="run for this many seconds")
    quick.add_argument("--qps", type=float, dest="target_qps", help="Offline expected or Server target queries/s")
    quick.add_argument("--target-latency", type=float, dest="target_latency_ms", help="latency target or expectation, ms")
    compliance = parser.add_argument_group("compliance (TEST01: responses logged in performance mode match accuracy mode)")
    compliance.add_argument("--compliance", choices=list(COMPLIANCE_TESTS),
                            help="run this compliance test (its audit.config is staged in the run's own folder)")
    compliance.add_argument("--accuracy-run", type=Path, help="TEST01: the accuracy-mode run of this scenario to compare with")
    compliance.add_argument("--performance-run", type=Path, help="TEST01: the performance run of this scenario to compare with")
    parser.add_argument("--find-peak-performance", action="store_true", dest="find_peak",
                        help="Server: LoadGen's search for the highest arrival rate meeting the latency bound, "
                             "starting from the target rate (--qps or user.conf)")
    parser.add_argument("--trace", action="store_true", help="also write LoadGen's mlperf_log_trace.json")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.count is not None and args.count < 1:
        parser.error("--count must be at least 1")
    if args.max_batchsize < 1 or args.max_batch_tokens < 1 or args.workers < 1:
        parser.error("--max-batchsize, --max-batch-tokens and --workers must be at least 1")
    if args.batch_wait_ms < 0:
        parser.error("--batch-wait-ms must be at least 0")
    if args.compliance and args.accuracy:
        parser.error(f"{args.compliance} is a performance-mode run: drop --accuracy")
    if args.compliance and (args.accuracy_run is None or args.performance_run is None):
        parser.error(
            f"{args.compliance} compares with an accuracy run and a performance run of the same scenario: pass "
            f"--accuracy-run and --performance-run (make them with 'python run.py --scenario {args.scenario} --accuracy' "
            f"and 'python run.py --scenario {args.scenario}')")
    if (args.accuracy_run or args.performance_run) and not args.compliance:
        parser.error("--accuracy-run and --performance-run belong to a compliance run: add --compliance TEST01")
    if args.find_peak and args.scenario != "Server":
        parser.error("--find-peak-performance searches the highest Server rate: use it with --scenario Server")
    if args.find_peak and (args.accuracy or args.compliance):
        parser.error("--find-peak-performance is a performance search: drop --accuracy and --compliance")
    left_out = ("verbose", "max_batchsize", "accuracy_run", "performance_run")
    options = {k: v for k, v in vars(args).items() if k not in left_out and v is not None}
    baselines = Baselines(args.accuracy_run, args.performance_run) if args.compliance else None
    return RunConfig(max_batch_size=args.max_batchsize, **options), baselines


def print_summary(outcome: RunOutcome, verification: Verification | None = None) -> None:
    record, result = outcome.record, outcome.result
    settings = record["settings"]
    print()
    print(f"Scenario   : {settings['scenario']}   Mode: {settings['mode']}   Backend: {record['backend']['name']}")
    print(f"Samples    : {record['dataset']['samples']} test reviews; issued {record['samples']['issued']}, "
          f"completed {record['samples']['completed']}")
    if result.value is not None:
        if "latency" in (result.metric or ""):
            print(f"Result     : {result.metric.replace(' (ns)', '')} = {result.value / 1e6:.3f} ms")
        else:
            print(f"Result     : {result.metric} = {result.value:.2f}")
    if result.valid is not None:
        reasons = f" ({'; '.join(c + ': NO' for c in result.failed_checks)})" if result.failed_checks else ""
        print(f"Validity   : {result.validity}{reasons}")
    if "peak_qps" in record["result"]:
        peak, probes = record["result"]["peak_qps"], len(record["result"]["probed_qps"])
        found = f"{peak:.1f} queries/s" if peak is not None else "not found (read the detail log)"
        print(f"Peak       : {found}, the highest rate LoadGen's search found valid ({probes} probe runs); "
              "the result above is LoadGen's summary of one probe")
    if outcome.accuracy is not None:
        print(f"Accuracy   : {outcome.accuracy.summary_line()}")
    if verification is not None:
        print(f"Compliance : {verification.summary_line()}")
    overrides = settings["overrides"] + [{"option": k, "value": v} for k, v in settings["adjustments"].items()]
    if overrides:
        listed = ", ".join(f"{o['option']}={o['value']:g}" for o in overrides)
        print(f"Overrides  : {listed}  -> a quick run, NOT valid for submission")
    if result.errors:
        print(f"LoadGen    : {len(result.errors)} error(s) logged, e.g. {result.errors[0]}")
    print(f"Logs       : {outcome.run_dir}")


def main(argv: list[str] | None = None, backend: Backend | None = None) -> int:
    """Run as the command line says; ``backend`` replaces ``--backend`` (for tests)."""
    config, baselines = parse_args(argv)
    command = sys.argv if argv is None else ["run.py", *argv]
    usage_errors = (RunError, ConfigError, DatasetError, WeightsError, VocabularyError, AccuracyCheckError,
                    VerificationError, ValueError)
    try:
        if baselines is not None:  # before the run, so that a wrong folder costs no run
            check_baselines(config.scenario, baselines)
        outcome = run_benchmark(config, backend, command)
    except usage_errors as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except Exception as error:  # noqa: BLE001 - inference failed inside LoadGen's run
        print(f"error: inference failed, run stopped: {type(error).__name__}: {error}", file=sys.stderr)
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        # LoadGen's threads cannot be stopped from Python: end the process here.
        os._exit(EXIT_INFERENCE_FAILED)
    verification = None
    if baselines is not None:
        try:
            verification = verify_test01(outcome.run_dir, baselines)
        except VerificationError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
    print_summary(outcome, verification)
    if outcome.accuracy is not None and not outcome.accuracy.passed:
        return 1
    if verification is not None and not verification.passed:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

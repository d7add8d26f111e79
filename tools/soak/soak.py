"""A soak benchmark: one long Server run at a share of the measured peak, its memory and latency per window.

    python -m tools.soak --precision int8                 # 30 minutes at 80% of the peak, 5-minute windows
    python -m tools.soak --peak-qps 5000 --minutes 2 --window-minutes 0.5   # a short try

The peak is the highest Server rate LoadGen judged VALID: given (``--peak-qps``), or measured first with
``run.py --find-peak-performance`` (short probes). The soak is then one ``run.py --scenario Server`` run of
``--minutes`` at ``--load`` times the peak, in its own process, whose resident memory (RSS, from
``/proc/PID/status``) is sampled every :data:`RSS_EVERY_S` seconds. Per window of ``--window-minutes``: the
samples issued, the RSS at its end, and the p99 latency as the SUT saw it (from the arrival of a query in
``issue_queries`` to its response, ``sut_timings.npz``); LoadGen's own p99 over the whole run beside them.

What must hold (exit 0; 1 when one does not): the RSS after the first minute grows by at most
:data:`MAX_RSS_GROWTH`, each window's p99 is within :data:`MAX_P99_RATIO` of the first window's, and every
sample LoadGen issued was completed exactly once. The table goes to stdout, and with the samples of RSS to
``soak.json`` in ``--folder``. Exit 2 for bad input, 3 for an error of this program's own (its traceback
logged), 130 / 143 when stopped by SIGINT / SIGTERM (the run in flight ends recorded first); a run that ended
otherwise than 0 passes its exit status on.
"""

from __future__ import annotations

import argparse
import json
import logging
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from common.errors import EXIT_BAD_INPUT, EXIT_DONE, EXIT_VERDICT_FAILED, run_command
from common.files import write_text_atomically
from common.text import plain
from model.backends import PRECISIONS
from readback.run_files import SUT_TIMINGS_FILE
from readback.run_record import RunRecordError, read_run_record
from tools.campaign.launcher import (
    RunPySettings,
    run_py,
    run_py_command_line,
    start_run_py,
    stop_on_signals,
    wait_for_run_py,
)

log = logging.getLogger("tools.soak")

#: seconds between two samples of the run's resident memory
RSS_EVERY_S = 5.0
#: the RSS may grow by at most this share after the first minute
MAX_RSS_GROWTH = 0.05
#: each window's p99 within this factor of the first window's
MAX_P99_RATIO = 1.5
#: the memory baseline: the RSS this long after LoadGen starts (s)
BASELINE_S = 60.0
#: seconds of each find-peak probe: long enough, at about a thousand queries/s, for the queries LoadGen's
#: early-stopping estimate of the p99 needs (a shorter probe falls short of them and is INVALID)
PEAK_PROBE_S = 30


@dataclass
class Window:
    """One window of the soak: its span (s from the first issue), samples issued, SUT-side p99 (ms), RSS (MiB)."""

    start_s: float
    end_s: float
    samples: int
    p99_ms: float | None
    rss_mib: float | None


def rss_bytes(pid: int) -> int | None:
    """Resident memory of process ``pid`` (bytes), or None once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


class RssSampler:
    """Samples a process's RSS every :data:`RSS_EVERY_S` on a thread: (s since start, bytes) pairs."""

    def __init__(self, pid: int):
        self.pid, self.samples, self._stop = pid, [], threading.Event()
        self._started = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            value = rss_bytes(self.pid)
            if value is not None:
                self.samples.append((time.monotonic() - self._started, value))
            self._stop.wait(RSS_EVERY_S)

    def stop(self) -> list[tuple[float, int]]:
        self._stop.set()
        self._thread.join()
        return self.samples


def measure_peak(settings: RunPySettings, folder: Path) -> float | None:
    """The highest VALID Server rate of a find-peak search with :data:`PEAK_PROBE_S` probes, or None when none was
    VALID."""
    run_dir = folder / "find-peak"
    log.info("measuring the peak Server rate (find-peak, %d s probes) -> %s", PEAK_PROBE_S, run_dir)
    code = run_py(run_py_command_line("Server", run_dir, settings, "--find-peak-performance", "--time",
                                      str(PEAK_PROBE_S)))
    try:
        search = read_run_record(run_dir).peak_search
    except RunRecordError as error:
        log.error("the peak search left no record (exit %d): %s", code, error)
        return None
    return search.peak_qps if search is not None else None


def windows(run_dir: Path, rss: list[tuple[float, int]], loadgen_started_s: float, window_s: float) -> list[Window]:
    """The soak's windows from the SUT's timings, with the last RSS sample of each window."""
    timings = np.load(run_dir / SUT_TIMINGS_FILE)
    issued_s = timings["issued_ns"] / 1e9
    latency_ms = (timings["completed_ns"] - timings["issued_ns"]) / 1e6
    end = float(issued_s.max()) if len(issued_s) else 0.0
    count = max(1, int(end // window_s))  # the last window takes the few seconds past the last full one
    result = []
    for index in range(count):
        start, stop = index * window_s, (end if index == count - 1 else (index + 1) * window_s)
        inside = (issued_s >= start) & ((issued_s < stop) if index < count - 1 else (issued_s <= stop))
        in_window = [value for at, value in rss if loadgen_started_s + start <= at <= loadgen_started_s + stop]
        result.append(Window(round(start, 1), round(stop, 1), int(inside.sum()),
                             float(np.percentile(latency_ms[inside], 99)) if inside.any() else None,
                             in_window[-1] / 2**20 if in_window else None))
    return result


def format_table(rows: list[Window]) -> str:
    lines = ["| window (min) | samples | p99 (ms, SUT) | p99 / first | RSS (MiB) |", "|---|---|---|---|---|"]
    first = rows[0].p99_ms if rows else None
    for row in rows:
        ratio = f"{row.p99_ms / first:.2f}" if row.p99_ms and first else "-"
        p99 = f"{row.p99_ms:.2f}" if row.p99_ms is not None else "-"
        rss = f"{row.rss_mib:,.0f}" if row.rss_mib is not None else "-"
        lines.append(f"| {row.start_s / 60:.1f}-{row.end_s / 60:.1f} | {row.samples:,} | {p99} | {ratio} | {rss} |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    description = plain(__doc__, {"RSS_EVERY_S": f"{RSS_EVERY_S:g}", "MAX_RSS_GROWTH": f"{MAX_RSS_GROWTH:.0%}",
                                  "MAX_P99_RATIO": f"{MAX_P99_RATIO:g}x"})
    parser = argparse.ArgumentParser(prog="python -m tools.soak", description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--precision", choices=list(PRECISIONS), default="fp32")
    parser.add_argument("--peak-qps", type=float, help="the measured peak Server rate (default: measure it first)")
    parser.add_argument("--load", type=float, default=0.8, help="share of the peak to run at (default: %(default)s)")
    parser.add_argument("--minutes", type=float, default=30.0, help="length of the soak run (default: %(default)s)")
    parser.add_argument("--window-minutes", type=float, default=5.0, help="window length (default: %(default)s)")
    parser.add_argument("--folder", type=Path, help="new folder for the runs and soak.json (default: results/soak-<UTC time>)")
    parser.add_argument("--dataset-path", type=Path, help="the IMDB archive or folder (default: run.py's lookup)")
    args = parser.parse_args(argv)
    if not (0 < args.load <= 1) or args.minutes <= 0 or not (0 < args.window_minutes <= args.minutes):
        parser.error("--load must lie in (0, 1], --minutes be positive and --window-minutes within (0, --minutes]")
    if args.peak_qps is not None and args.peak_qps <= 0:
        parser.error("--peak-qps must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = parse_args(argv)
    return run_command(lambda: soak(args), log)


def soak(args: argparse.Namespace) -> int:
    """The soak as parsed: the peak, the run, its table and checks; the exit status."""
    with stop_on_signals():  # a stop lets the run in flight end recorded, then exits 130 or 143
        return measure_soak(args)


def measure_soak(args: argparse.Namespace) -> int:
    """The peak (given or measured), the soak run at its share, the windows, the table, the checks and
    ``soak.json``; the exit status."""
    folder = args.folder or Path("results") / f"soak-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}"
    if folder.exists():
        log.error("%s exists; a soak never writes into an earlier one's folder: choose another --folder", folder)
        return EXIT_BAD_INPUT
    folder.mkdir(parents=True)
    settings = RunPySettings(precision=args.precision, dataset_path=args.dataset_path)
    peak = args.peak_qps if args.peak_qps is not None else measure_peak(settings, folder)
    if peak is None:
        log.error("no VALID Server rate was found to soak at: give --peak-qps")
        return EXIT_VERDICT_FAILED
    qps = round(args.load * peak, 1)
    run_dir = folder / "server"
    log.info("soak: Server at %s queries/s (%.0f%% of the %s peak) for %g minutes -> %s", f"{qps:,.1f}",
             100 * args.load, f"{peak:,.1f}", args.minutes, run_dir)
    process = start_run_py(run_py_command_line("Server", run_dir, settings, "--qps", str(qps), "--time",
                                               str(60 * args.minutes)))
    sampler = RssSampler(process.pid)
    try:
        code = wait_for_run_py(process)
    finally:
        rss = sampler.stop()
    if code != EXIT_DONE:
        log.error("the soak run ended with exit %d: see %s", code, run_dir)
        return code
    record = read_run_record(run_dir)
    # LoadGen starts once the data and tables are loaded: the RSS baseline counts from there
    loadgen_started_s = max(0.0, (rss[-1][0] if rss else 0.0) - (record.wall_seconds or 0.0))
    rows = windows(run_dir, rss, loadgen_started_s, 60 * args.window_minutes)
    after_baseline = [value for at, value in rss if at >= loadgen_started_s + BASELINE_S]
    growth = (max(after_baseline) / after_baseline[0] - 1) if after_baseline else None
    first_p99 = rows[0].p99_ms if rows else None
    worst_ratio = max((row.p99_ms / first_p99 for row in rows if row.p99_ms), default=None) if first_p99 else None
    samples = record.samples
    once = bool(samples and samples.issued == samples.completed and not samples.never_completed
                and not samples.completed_more_than_once and not samples.completed_not_issued)
    checks = {
        f"RSS growth after the first minute <= {MAX_RSS_GROWTH:.0%}": growth is not None and growth <= MAX_RSS_GROWTH,
        f"every window's p99 within {MAX_P99_RATIO:g}x of the first": worst_ratio is not None and worst_ratio <= MAX_P99_RATIO,
        "every sample completed once": once,
    }
    result = record.result
    loadgen_p99 = result.percentile.text() if result is not None and result.percentile is not None else "n/a"
    print()
    print(f"Soak: Server {args.precision} at {qps:,.1f} queries/s ({100 * args.load:.0f}% of the {peak:,.1f} peak), "
          f"{args.minutes:g} min; LoadGen: {result.validity if result else 'no result'}, p99 {loadgen_p99}")
    print(format_table(rows))
    print(f"RSS growth after the first minute: {f'{growth:+.2%}' if growth is not None else 'n/a'}; "
          f"worst window p99 / first: {f'{worst_ratio:.2f}' if worst_ratio is not None else 'n/a'}; samples issued "
          f"{samples.issued if samples else 0:,}, completed {samples.completed if samples else 0:,}")
    for check, passed in checks.items():
        print(f"  {'PASS' if passed else 'FAIL'}  {check}")
    write_text_atomically(folder / "soak.json", json.dumps({
        "precision": args.precision, "peak_qps": peak, "qps": qps, "minutes": args.minutes,
        "windows": [asdict(row) for row in rows], "rss_samples": rss, "rss_growth": growth,
        "worst_p99_ratio": worst_ratio, "checks": checks, "run": str(run_dir)}, indent=2) + "\n")
    return EXIT_DONE if all(checks.values()) else EXIT_VERDICT_FAILED

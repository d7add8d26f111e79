"""The highest Server arrival rate that LoadGen judges VALID: a search over full LoadGen runs.

``run.py --scenario Server --find-peak-performance`` probes rates the way
LoadGen's own FindPeakPerformance mode does (start at the target rate, double
it until a probe fails, then bisect), but each probe is a complete LoadGen
performance run with its own folder of logs (``probes/NN-<rate>qps/``) and its
own verdict. LoadGen's mode judges its probes by the latency bound alone (not
by early stopping or the minimum duration), logs no result per probe and
writes one summary for the whole search, whose verdict can contradict the
peak it reports; here every row of the search is a run a submitter can read.

The search ends when the bracket [highest VALID rate, lowest INVALID rate
above it] is narrower than ``tolerance`` times its lower end. The peak is the
highest rate whose probe was VALID; when the starting rate itself is INVALID
there is no peak (lower ``--qps`` and search again), as in LoadGen.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from readback.loadgen_log import read_result
from readback.peak_search import PeakSearch, Probe
from readback.run_files import PROBES_DIR
from sut.compliance import stage_audit_config
from sut.config import DEFAULT_PEAK_TOLERANCE
from sut.load_plan import bound_server_backlog, check_run_settings
from sut.loadgen_driver import LoadGenTest

log = logging.getLogger(__name__)

#: doublings of the starting rate before the search gives up looking for an INVALID rate
MAX_DOUBLINGS = 12


def search_peak(start_qps: float, run_probe: Callable[[float], Probe], tolerance: float = DEFAULT_PEAK_TOLERANCE,
                max_doublings: int = MAX_DOUBLINGS) -> PeakSearch:
    """Search the highest VALID rate from ``start_qps``, calling ``run_probe(rate)`` for each probe."""
    if not start_qps > 0 or not 0 < tolerance < 1:
        raise ValueError(f"the search needs a start rate > 0 and a tolerance in (0, 1), got {start_qps}, {tolerance}")
    search = PeakSearch(start_qps, tolerance)

    def probe(rate: float) -> bool:
        result = run_probe(rate)
        search.probes.append(result)
        log.info("probe %d at %.1f queries/s: %s", len(search.probes), rate, result.result.validity)
        return result.valid

    if not probe(start_qps):
        first = search.probes[0].result
        if first.more_queries_needed() is not None:  # the latency bound held: the probe was too short to tell
            advice = (f"its latency bound held, but early stopping needs {first.more_queries_needed():,} more "
                      "queries: longer probes (--time) and search again")
        else:
            advice = "lower --qps and search again"
        search.conclusion = f"no rate was VALID: the starting rate {start_qps:g} queries/s already failed; {advice}"
        return search
    valid_rate, invalid_rate = start_qps, None
    for _ in range(max_doublings):
        rate = 2 * valid_rate
        if probe(rate):
            valid_rate = rate
        else:
            invalid_rate = rate
            break
    if invalid_rate is None:
        search.peak_qps = valid_rate
        search.conclusion = (f"every probe up to {valid_rate:g} queries/s was VALID ({max_doublings} doublings): "
                             "the peak is at least that; start higher with --qps")
        return search
    while invalid_rate - valid_rate > tolerance * valid_rate:
        rate = (valid_rate + invalid_rate) / 2
        if probe(rate):
            valid_rate = rate
        else:
            invalid_rate = rate
    search.peak_qps = valid_rate
    search.conclusion = (f"{valid_rate:g} queries/s was VALID and {invalid_rate:g} INVALID: the peak lies between "
                         f"them (within {100 * tolerance:g}%)")
    return search


def run_peak_search(test: LoadGenTest, run_dir: Path, tolerance: float) -> PeakSearch:
    """LoadGen performance runs at the rates :func:`search_peak` asks for, each into ``probes/NN-<rate>qps``."""
    settings = test.run_settings.test_settings
    probes_dir = run_dir / PROBES_DIR
    probes_dir.mkdir()

    def run_probe(rate: float) -> Probe:
        folder = probes_dir / f"{len(list(probes_dir.iterdir())) + 1:02d}-{rate:.1f}qps"
        folder.mkdir()
        settings.server_target_qps = rate
        bound_server_backlog(test.run_settings, check_run_settings(test.run_settings, test.qsl.performance_sample_count))
        log.info("find-peak probe at %.1f queries/s -> %s", rate, folder)
        wall_seconds = test.run(folder, stage_audit_config(folder, None))
        return Probe(rate, str(folder.relative_to(run_dir)), read_result(folder), test.sut.ledger.counts(),
                     round(wall_seconds, 2))

    return search_peak(settings.server_target_qps, run_probe, tolerance)

"""The Server peak search (``run.py --find-peak-performance``): its logic on probes whose verdict the test
decides, then searches end to end through the real LoadGen, on real reviews with the shipped model's labels.

The end-to-end searches use a backend of fixed pace (``paced`` in conftest):
the speed is the test's, so which rates are VALID does not depend on how fast
or how loaded the machine is.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import run
from readback.loadgen_log import LoadGenResult
from readback.peak_search import Probe
from readback.run_record import read_run_record
from readback.timings import SampleCounts
from sut.peak_search import search_peak


def probes_valid_up_to(capacity: float, tried: list[float]):
    """A probe function under which every rate up to ``capacity`` queries/s is VALID; records the rates tried."""
    def run_probe(rate: float) -> Probe:
        tried.append(rate)
        result = LoadGenResult("Server", "performance", rate <= capacity)
        return Probe(rate, f"probes/{len(tried):02d}", result, SampleCounts(1, 1, 0, 0, 0), 0.1)
    return run_probe


def test_doubles_until_a_rate_fails_then_bisects_to_the_tolerance():
    tried: list[float] = []
    search = search_peak(100, probes_valid_up_to(700, tried), tolerance=0.05)
    assert tried[:4] == [100, 200, 400, 800]
    assert tried[4:] == [600, 700, 750, 725]  # 725 - 700 is within 5% of 700
    assert search.peak_qps == 700 and search.peak_probe.target_qps == 700
    assert [probe.target_qps for probe in search.probes] == tried
    assert "700 queries/s was VALID and 725 INVALID" in search.conclusion


def test_no_peak_when_the_starting_rate_fails():
    tried: list[float] = []
    search = search_peak(100, probes_valid_up_to(50, tried))
    assert tried == [100] and search.peak_qps is None and search.peak_probe is None
    assert search.conclusion.startswith("no rate was VALID: the starting rate 100 queries/s already failed")


def test_a_search_that_never_fails_stops_and_says_the_peak_is_higher():
    tried: list[float] = []
    search = search_peak(1, probes_valid_up_to(1e9, tried), max_doublings=3)
    assert tried == [1, 2, 4, 8] and search.peak_qps == 8
    assert "the peak is at least that" in search.conclusion


@pytest.mark.parametrize("start, tolerance", [(0, 0.1), (-5, 0.1), (10, 0), (10, 1.5)])
def test_unusable_search_settings_are_refused(start, tolerance):
    with pytest.raises(ValueError):
        search_peak(start, probes_valid_up_to(1, []), tolerance)


@pytest.mark.parametrize("failed", [
    [], ["performance constraints satisfied"], ["early stopping satisfied"],
    ["performance constraints satisfied", "early stopping satisfied"],
    ["performance constraints satisfied", "min duration satisfied", "min queries satisfied", "early stopping satisfied"],
])
def test_a_probe_row_says_no_for_each_check_that_failed_and_for_none_that_passed(failed):
    from readback.loadgen_log import VALIDITY_CHECKS
    from readback.peak_search import PeakSearch

    result = LoadGenResult("Server", "performance", not failed, failed_checks=list(failed))
    search = PeakSearch(100.0, 0.02, [Probe(100.0, "probes/01", result, SampleCounts(1, 1, 0, 0, 0), 0.1)])
    row = run.peak_lines(search)[-1]
    for check in VALIDITY_CHECKS.values():
        assert (f"{check}: NO" in row) == (check in failed), row
    assert ("; ".join(f"{check}: NO" for check in failed) in row) and row.count(": NO") == len(failed)


def test_a_first_probe_too_short_for_early_stopping_says_to_probe_longer_not_to_lower_the_rate():
    def too_short(rate: float) -> Probe:
        result = LoadGenResult("Server", "performance", False, failed_checks=["early stopping satisfied"],
                               early_stopping="Run unsuccessful. Would need to run at least 1195 more queries, ...")
        return Probe(rate, "probes/01", result, SampleCounts(1, 1, 0, 0, 0), 0.1)

    search = search_peak(1000.0, too_short, 0.02)
    assert search.peak_qps is None and "early stopping needs 1,195 more queries: longer probes (--time)" in search.conclusion
    assert "lower --qps" not in search.conclusion


def server_probe_args(out: Path, dataset_path: Path, qps: float, seconds: float) -> list[str]:
    """A peak search from ``qps`` with probes of ``seconds``, batches of one review, a 50 ms latency bound."""
    return ["--scenario", "Server", "--find-peak-performance", "--time", str(seconds), "--qps", str(qps),
            "--max-batchsize", "1", "--target-latency", "50", "--dataset-path", str(dataset_path), "--count", "2000",
            "--output-dir", str(out)]


@pytest.mark.slow
def test_find_peak_reports_the_highest_valid_rate_and_every_probe(dataset_path, tmp_path, capsys, paced):
    """Each review takes 2 ms: 500 queries/s is the most the SUT can serve, 250/s it serves within the 50 ms bound."""
    out = tmp_path / "peak"
    # 1,500 queries at the starting rate: enough for LoadGen's early-stopping p99 estimate
    code = run.main([*server_probe_args(out, dataset_path, 250, 6), "--peak-tolerance", "0.25"], backend=paced(0.002))
    assert code == 0
    search = read_run_record(out).peak_search
    rates = [probe.target_qps for probe in search.probes]
    assert rates[:2] == [250, 500]
    assert search.probes[0].valid, search.probes[0].result
    valid = [probe.target_qps for probe in search.probes if probe.valid]
    assert search.peak_qps == max(valid) and 250 <= search.peak_qps < 1000
    assert not any(probe.valid for probe in search.probes if probe.target_qps >= 1000)
    for probe in search.probes:
        assert (out / probe.folder / "mlperf_log_detail.txt").is_file()
        assert probe.result.percentile.name == "p99 latency" and probe.result.headline.value > 0
    printed = capsys.readouterr().out
    assert f"Peak       : {search.peak_qps:,.1f} queries/s, the highest rate LoadGen judged VALID" in printed
    assert printed.count("qps") >= len(search.probes)
    assert read_run_record(out).result == search.peak_probe.result


@pytest.mark.slow
def test_find_peak_says_plainly_when_no_rate_is_valid(dataset_path, tmp_path, capsys, paced):
    """Each review takes 60 ms, over the 50 ms bound at any rate: the search stops at its first probe, exit 1."""
    out = tmp_path / "none"
    assert run.main(server_probe_args(out, dataset_path, 5, 1), backend=paced(0.06)) == 1
    search = read_run_record(out).peak_search
    assert search.peak_qps is None and len(search.probes) == 1 and not search.probes[0].valid
    assert "Peak       : none: no rate was VALID" in capsys.readouterr().out

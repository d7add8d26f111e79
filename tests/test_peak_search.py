"""The Server peak search's logic, on probes whose verdict the test decides (no LoadGen: that is test_compliance's)."""

from __future__ import annotations

import pytest

from readback.loadgen_log import LoadGenResult
from readback.peak_search import Probe
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
    import run
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

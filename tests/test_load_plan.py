"""sut.load_plan: the query set LoadGen will build, estimated and bounded before LoadGen builds it.

The estimates are checked against what LoadGen itself logs it generated
(``generated_query_count``), over a real LoadGen run with a SUT that answers
at once; the refusals through ``run.main``, before any data is loaded.
"""

from __future__ import annotations

import math

import mlperf_loadgen as lg
import pytest

import run
from readback.loadgen_log import detail_values
from sut.load_plan import (
    MAX_DURATION_MS,
    MAX_SCHEDULE_S,
    bound_server_backlog,
    check_run_settings,
    plan_load,
)
from sut.settings import ConfigError, load_run_settings


def generated_by_loadgen(run_settings, loaded: int, log_dir) -> tuple[int, int]:
    """``(queries, samples per query)`` LoadGen generates for ``run_settings`` over ``loaded`` samples."""

    def issue(samples):
        lg.QuerySamplesComplete([lg.QuerySampleResponse(sample.id, 0, 0) for sample in samples])

    sut = lg.ConstructSUT(issue, lambda: None)
    qsl = lg.ConstructQSL(loaded, loaded, lambda indices: None, lambda indices: None)
    log_settings = lg.LogSettings()
    log_settings.log_output.outdir = str(log_dir)
    try:
        lg.StartTestWithLogSettings(sut, qsl, run_settings.test_settings, log_settings)
    finally:
        lg.DestroyQSL(qsl)
        lg.DestroySUT(sut)
    logged = detail_values(log_dir / "mlperf_log_detail.txt")
    return logged["generated_query_count"], logged["generated_samples_per_query"]


@pytest.mark.parametrize(("scenario", "quick"), [
    ("SingleStream", {"duration_s": 0.2, "target_latency_ms": 0.5}),
    ("MultiStream", {"duration_s": 0.2, "target_latency_ms": 2.0}),
    ("Server", {"duration_s": 0.3, "target_qps": 3000.0}),
    ("Offline", {"duration_s": 0.3, "target_qps": 5000.0}),
])
def test_the_plan_is_what_loadgen_generates(scenario, quick, tmp_path):
    run_settings = load_run_settings(scenario, "performance", **quick)
    plan = plan_load(run_settings, 100)
    queries, per_query = generated_by_loadgen(run_settings, 100, tmp_path)
    assert plan.samples == pytest.approx(queries * per_query, rel=0.1)
    assert plan.queries == pytest.approx(queries, rel=0.1)
    assert 0 < plan.memory_bytes <= plan.memory_bound_bytes


@pytest.mark.parametrize(("scenario", "quick", "message"), [
    ("Server", {"target_qps": 1e9}, "GiB bound"),
    ("Offline", {"target_qps": 1e9}, "GiB bound"),
    ("SingleStream", {"target_latency_ms": 1e-6}, "GiB bound"),
    ("Server", {"target_qps": 1e-9}, r"more than the 86,400 s \(a day\)"),
    # LoadGen sleeps until the next arrival (1e9 s away) before it checks max_duration (4 s): not bounded by it
    ("Server", {"duration_s": 2, "target_qps": 1e-9}, r"would last about 1e\+09 s, past its max_duration. Raise the "
                                                      r"rate to at least 0.5 queries/s"),
    ("Server", {"duration_s": 2, "target_qps": 0.1}, r"would last about 12 s, past its max_duration"),
    ("SingleStream", {"duration_s": 1e7}, f"at most {MAX_DURATION_MS:,} ms"),
])
def test_a_query_set_too_large_or_too_long_is_refused_with_the_bound(scenario, quick, message):
    run_settings = load_run_settings(scenario, "performance", **quick)
    with pytest.raises(ConfigError, match=message):
        check_run_settings(run_settings, 25_000)


def test_a_slow_server_rate_that_still_ends_within_max_duration_is_accepted():
    plan = check_run_settings(load_run_settings("Server", "performance", duration_s=2, target_qps=0.5), 25_000)
    assert plan.schedule_s == pytest.approx(4.0)  # min_duration plus one mean gap: max_duration exactly


def test_the_shipped_configs_plan_full_runs_within_the_bounds():
    for scenario in ("SingleStream", "MultiStream", "Offline", "Server"):
        plan = check_run_settings(load_run_settings(scenario, "performance"), 25_000)
        assert plan.memory_bytes < plan.memory_bound_bytes
        assert plan.schedule_s is None or plan.schedule_s < MAX_SCHEDULE_S


def test_the_server_backlog_bound_is_the_share_of_queries_that_may_be_late():
    run_settings = load_run_settings("Server", "performance")  # 600 s at the shipped rate, p99
    plan = check_run_settings(run_settings, 25_000)
    bound = bound_server_backlog(run_settings, plan)
    assert bound == math.ceil(0.01 * plan.queries) == run_settings.test_settings.server_max_async_queries
    assert run_settings.record().effective["server_max_async_queries"] == bound
    accuracy = load_run_settings("Server", "accuracy")
    assert bound_server_backlog(accuracy, check_run_settings(accuracy, 25_000)) is None


@pytest.mark.parametrize(("scenario", "line", "message"), [
    ("Server", "seq2cnn.*.min_duration = 99999999999999999999999", "too large for 'min_duration'"),
    ("Server", "seq2cnn.Server.target_qps = 0", "positive finite number"),
    ("Offline", "seq2cnn.Offline.target_qps = 1000000000", "GiB bound"),
    ("SingleStream", "seq2cnn.*.min_duration = 999999999999", f"at most {MAX_DURATION_MS:,} ms"),
    # finite, yet the query count it gives is not: refused naming the setting and its file, not an OverflowError
    ("Offline", "seq2cnn.Offline.target_qps = 1e308", "Offline offline_expected_qps is 1e+308 (from "),
    ("Server", "seq2cnn.Server.target_qps = 1e308", "Server server_target_qps is 1e+308 (from "),
])
def test_a_run_with_such_settings_stops_before_loading_anything(scenario, line, message, tmp_path, capsys):
    user_conf = tmp_path / "user.conf"
    user_conf.write_text(f"seq2cnn.SingleStream.target_latency = 0.5\n{line}\n")
    code = run.main(["--scenario", scenario, "--user-conf", str(user_conf), "--output-dir", str(tmp_path / "out"),
                     "--dataset-path", str(tmp_path / "not-needed")])
    error = capsys.readouterr().err
    assert code == 2 and message in error and "Traceback" not in error
    if "1e+308" in message:  # the file that set it is named
        assert str(user_conf) in error
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("flags", "message"), [
    (["--scenario", "Server", "--qps", "1e9"], "GiB bound"),
    (["--scenario", "SingleStream", "--time", "1e7"], f"at most {MAX_DURATION_MS:,} ms"),
    (["--scenario", "Server", "--qps", "1e-9"], "the 86,400 s (a day)"),
    (["--scenario", "Server", "--time", "2", "--qps", "1e-9"], "checks max_duration (4 s, set by --time) only after"),
    (["--scenario", "Server", "--qps", "nan"], "positive number"),
])
def test_quick_run_flags_are_checked_the_same_way(flags, message, tmp_path, capsys):
    code = run.main([*flags, "--output-dir", str(tmp_path / "out"), "--dataset-path", str(tmp_path / "not-needed")])
    error = capsys.readouterr().err
    assert code == 2 and message in error
    assert not (tmp_path / "out").exists()


def test_an_overflowing_value_set_on_the_settings_is_caught_before_loadgen():
    run_settings = load_run_settings("Server", "performance")
    run_settings.test_settings.min_duration_ms = 2**64 - 1  # what LoadGen's strtoull makes of a too-large value
    with pytest.raises(ConfigError, match="min_duration_ms is 18446744073709551615"):
        check_run_settings(run_settings, 25_000)

"""LoadGen settings: the benchmark's rules and a system's tuning take effect, read back from ``TestSettings``
and from LoadGen's own log.

The rules (``configs/mlperf.conf``) define the benchmark, so their values are
asserted; the shipped ``configs/user.conf`` is one machine's tuning, so its
loading is tested with a tuning file written here, never its numbers.
"""

from __future__ import annotations

import array
import json
import logging
import re

import mlperf_loadgen as lg
import pytest

from sut.settings import (
    DEFAULT_MLPERF_CONF,
    DEFAULT_USER_CONF,
    MODEL_NAME,
    SCENARIOS,
    USER_CONF_BY_PRECISION,
    ConfigError,
    default_user_conf,
    load_run_settings,
)

MS = 1_000_000  # nanoseconds

# What configs/mlperf.conf promises, in TestSettings' units (ms, ns, fractions).
MLPERF_CONF = {
    "SingleStream": {"single_stream_target_latency_percentile": 0.90, "min_query_count": 100},
    "MultiStream": {
        "multi_stream_samples_per_query": 8,
        "multi_stream_target_latency_percentile": 0.99,
        "min_query_count": 662,
    },
    "Server": {
        "server_target_latency_ns": 15 * MS,
        "server_target_latency_percentile": 0.99,
        "min_query_count": 100,
    },
    "Offline": {"min_query_count": 24576},
}
MLPERF_CONF_ALL_SCENARIOS = {"min_duration_ms": 600_000, "performance_sample_count_override": 25_000}

# A system's tuning, written by the tests, and what it must set.
TUNING = """# a tuning file as a system would write it
seq2cnn.SingleStream.target_latency = 0.125
seq2cnn.MultiStream.target_latency = 2.5
seq2cnn.Offline.target_qps = 1234.5
seq2cnn.Server.target_qps = 321
"""
TUNED = {
    "SingleStream": {"single_stream_expected_latency_ns": 0.125 * MS},
    "MultiStream": {"multi_stream_expected_latency_ns": 2.5 * MS},
    "Server": {"server_target_qps": 321.0},
    "Offline": {"offline_expected_qps": 1234.5},
}


@pytest.fixture
def tuning(tmp_path):
    path = tmp_path / "user.conf"
    path.write_text(TUNING)
    return path


def load_test_settings(*args, **kwargs):
    return load_run_settings(*args, **kwargs).test_settings


def built_in(scenario: str) -> lg.TestSettings:
    settings = lg.TestSettings()
    settings.FromConfig("", MODEL_NAME, scenario, 0)
    return settings


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_both_config_files_take_effect(scenario, tuning):
    settings = load_test_settings(scenario, "performance", DEFAULT_MLPERF_CONF, tuning)

    expected = {**MLPERF_CONF_ALL_SCENARIOS, **MLPERF_CONF[scenario], **TUNED[scenario]}
    for name, value in expected.items():
        assert getattr(settings, name) == pytest.approx(value), name
    assert settings.scenario == SCENARIOS[scenario]
    assert settings.mode == lg.TestMode.PerformanceOnly


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_seeds_come_from_loadgen_built_in_rules_on_every_load(scenario):
    reference = built_in(scenario)
    assert reference.qsl_rng_seed != 0
    for _ in range(2):  # FromConfig(conf_type=1) would load them only once per process
        settings = load_test_settings(scenario, "accuracy")
        assert settings.mode == lg.TestMode.AccuracyOnly
        for name in ("qsl_rng_seed", "sample_index_rng_seed", "schedule_rng_seed"):
            assert getattr(settings, name) == getattr(reference, name), name


@pytest.mark.parametrize("precision", sorted(USER_CONF_BY_PRECISION))
def test_shipped_configs_load_and_use_only_keys_loadgen_reads(precision, caplog):
    """mlperf.conf with each precision's user.conf: every line is one LoadGen reads, and each sets all four
    scenarios' expectations (a conf that left one to LoadGen's defaults would size that scenario's runs wrong)."""
    user_conf = default_user_conf(precision)
    with caplog.at_level(logging.WARNING, logger="sut.settings"):
        for scenario in SCENARIOS:
            load_test_settings(scenario, "performance", DEFAULT_MLPERF_CONF, user_conf)
    assert caplog.records == []
    tuned = {line.split("=")[0].strip() for line in user_conf.read_text().splitlines()
             if line.strip() and not line.startswith("#")}
    assert tuned == {"seq2cnn.SingleStream.target_latency", "seq2cnn.MultiStream.target_latency",
                     "seq2cnn.Offline.target_qps", "seq2cnn.Server.target_qps"}


def test_each_precision_runs_with_its_own_shipped_tuning_unless_one_is_given(tmp_path):
    from sut.config import RunConfig

    assert RunConfig().user_conf == DEFAULT_USER_CONF
    assert RunConfig(precision="int8").user_conf == USER_CONF_BY_PRECISION["int8"] != DEFAULT_USER_CONF
    assert RunConfig(precision="bf16").user_conf.name == "user-bf16.conf"
    assert RunConfig(precision="int8", user_conf=tmp_path / "mine.conf").user_conf == tmp_path / "mine.conf"


def test_user_conf_is_read_after_mlperf_conf(tmp_path):
    user_conf = tmp_path / "user.conf"
    user_conf.write_text("# shorter runs on this system\nseq2cnn.*.min_duration = 1000\nseq2cnn.Offline.target_qps = 2.5\n")

    settings = load_test_settings("Offline", "performance", DEFAULT_MLPERF_CONF, user_conf)

    assert settings.min_duration_ms == 1000
    assert settings.offline_expected_qps == 2.5
    assert settings.performance_sample_count_override == 25_000


@pytest.mark.parametrize("which", ["mlperf_conf", "user_conf"])
def test_missing_file_is_named(tmp_path, which):
    missing = tmp_path / "nowhere" / f"{which}.conf"
    files = {"mlperf_conf": DEFAULT_MLPERF_CONF, "user_conf": DEFAULT_USER_CONF, which: missing}

    with pytest.raises(ConfigError, match="cannot read LoadGen config") as raised:
        load_test_settings("Offline", "performance", **files)
    assert str(missing) in str(raised.value)


def test_comment_after_a_value_is_rejected_with_its_line(tmp_path):
    user_conf = tmp_path / "user.conf"
    user_conf.write_text("# tuning\nseq2cnn.Offline.target_qps = 13  # measured\n")

    with pytest.raises(ConfigError) as raised:
        load_test_settings("Offline", "performance", DEFAULT_MLPERF_CONF, user_conf)
    message = str(raised.value)
    assert str(user_conf) in message and "line 2" in message and "'#'" in message


def test_lines_loadgen_would_ignore_are_warned_about_or_refused(tmp_path, caplog):
    """A line meant for seq2cnn that LoadGen would ignore is an error; a '*' line of an unknown key (MLPerf's
    own mlperf.conf has '*.Server.target_duration') and a built-in-only key are warnings; other models pass."""
    user_conf = tmp_path / "user.conf"
    user_conf.write_text(
        "seq2cnn.Offline.target_qps = 13\n"
        "*.Server.target_duration = 0\n"
        "*.*.qsl_rng_seed = 1\n"
        "resnet50.Offline.anything = 1\n"
        "wan-2.2-t2v-a14b.Offline.min_query_count = 1\n"
    )
    with caplog.at_level(logging.WARNING, logger="sut.settings"):
        settings = load_test_settings("Offline", "performance", DEFAULT_MLPERF_CONF, user_conf)
    warnings = [record.getMessage() for record in caplog.records]
    assert len(warnings) == 2
    assert "line 2" in warnings[0] and "'target_duration'" in warnings[0]
    assert "line 3" in warnings[1] and "built-in" in warnings[1]
    assert settings.qsl_rng_seed == built_in("Offline").qsl_rng_seed and settings.offline_expected_qps == 13


@pytest.mark.parametrize(("line", "explains"), [
    ("seq2cnn.Offline.target_qsp = 13", "no setting 'target_qsp'"),
    ("seq2cnn.Ofline.target_qps = 13", "unknown scenario 'Ofline'"),
    ("seq2ccn.Offline.target_qps = 13", "model 'seq2ccn' is not 'seq2cnn'"),
    ("Seq2CNN.Offline.target_qps = 13", "model 'Seq2CNN' is not 'seq2cnn'"),
    ("seq2cnn.target_qps = 13", "is not 'model.scenario.key'"),
    ("seq2cnn.*.min_duration = 99999999999999999999999", "too large for 'min_duration'"),
    ("seq2cnn.*.min_duration = 6e5", "as a whole number"),
    ("seq2cnn.*.min_duration = 0600000", "as a whole number"),
    ("seq2cnn.*.min_query_count = -5", "as a whole number"),
    ("seq2cnn.Server.target_latency = 0.5", "as a whole number"),
    ("seq2cnn.Offline.target_qps = -5", "positive finite number"),
    ("seq2cnn.Offline.target_qps = 0", "positive finite number"),
    ("seq2cnn.Server.target_qps = nan", "positive finite number"),
    ("seq2cnn.Server.target_qps = inf", "positive finite number"),
])
def test_a_line_loadgen_would_ignore_or_misread_is_refused_with_its_number(tmp_path, line, explains):
    user_conf = tmp_path / "user.conf"
    user_conf.write_text(f"# tuning\nseq2cnn.SingleStream.target_latency = 0.5\n{line}\n")
    with pytest.raises(ConfigError, match=re.escape(explains)) as raised:
        load_test_settings("Offline", "performance", DEFAULT_MLPERF_CONF, user_conf)
    assert str(user_conf) in str(raised.value) and "line 3" in str(raised.value)


@pytest.mark.parametrize("content", ["", "# only a comment\n", "resnet50.Offline.target_qps = 100\n"])
@pytest.mark.parametrize("which", ["mlperf", "user"])
def test_a_config_that_sets_nothing_for_seq2cnn_is_refused(tmp_path, content, which):
    """An empty rules or tuning file would silently leave LoadGen's built-in defaults in force."""
    empty = tmp_path / f"{which}.conf"
    empty.write_text(content)
    files = (empty, DEFAULT_USER_CONF) if which == "mlperf" else (DEFAULT_MLPERF_CONF, empty)
    with pytest.raises(ConfigError, match=rf"{re.escape(str(empty))} sets nothing for seq2cnn"):
        load_test_settings("Offline", "performance", *files)


@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "folder"])
def test_a_config_that_is_not_a_regular_file_is_refused_without_reading_it(tmp_path, kind):
    import os

    path = tmp_path / "user.conf"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "dev-zero":
        path.symlink_to("/dev/zero")
    else:
        path.mkdir()
    with pytest.raises(ConfigError, match=r"user\.conf is a (FIFO|folder).*regular text file"):
        load_test_settings("Offline", "performance", DEFAULT_MLPERF_CONF, path)


def test_unknown_scenario_lists_the_valid_ones():
    with pytest.raises(ConfigError, match="SingleStream, MultiStream, Offline, Server"):
        load_test_settings("Singlestream", "performance")


def test_unknown_mode_lists_the_valid_ones():
    with pytest.raises(ConfigError, match="performance, accuracy"):
        load_test_settings("Offline", "submission")


def test_duration_override_allows_a_short_run_with_the_queries_early_stopping_needs():
    queries = {"SingleStream": 64, "MultiStream": 662}  # LoadGen: "Need to process at least N queries"
    for scenario in SCENARIOS:
        settings = load_test_settings(scenario, "performance", duration_s=2.5)
        assert (settings.min_duration_ms, settings.max_duration_ms, settings.min_query_count) == (
            2500, 5000, queries.get(scenario, 1))


@pytest.mark.parametrize(
    "scenario, attribute", [("Offline", "offline_expected_qps"), ("Server", "server_target_qps")]
)
def test_target_qps_override(scenario, attribute):
    assert getattr(load_test_settings(scenario, "performance", target_qps=42.5), attribute) == 42.5


@pytest.mark.parametrize(
    "scenario, attribute",
    [
        ("SingleStream", "single_stream_expected_latency_ns"),
        ("MultiStream", "multi_stream_expected_latency_ns"),
        ("Server", "server_target_latency_ns"),
    ],
)
def test_target_latency_override(scenario, attribute):
    assert getattr(load_test_settings(scenario, "performance", target_latency_ms=12.5), attribute) == 12_500_000


@pytest.mark.parametrize(
    "scenario, overrides",
    [
        ("SingleStream", {"target_qps": 10.0}),
        ("Offline", {"target_latency_ms": 10.0}),
        ("Offline", {"duration_s": 0.0}),
        ("Server", {"target_qps": -1.0}),
    ],
)
def test_override_that_cannot_apply_is_an_error(scenario, overrides):
    with pytest.raises(ConfigError):
        load_test_settings(scenario, "performance", **overrides)


def test_record_lists_files_overrides_and_effective_values():
    plain = load_run_settings("Server", "performance").record()
    assert plain.overrides == [] and plain.quick_run is False
    assert [entry.path for entry in plain.config_files] == [DEFAULT_MLPERF_CONF, DEFAULT_USER_CONF]
    assert plain.effective["server_target_latency_ns"] == 15 * MS
    assert plain.effective["performance_sample_count_override"] == 25_000

    quick = load_run_settings("Server", "performance", duration_s=3, target_qps=7).record()
    assert quick.quick_run is True
    assert [override.option for override in quick.overrides] == ["duration_s", "target_qps"]
    assert quick.effective["min_duration_ms"] == 3000 and quick.effective["server_target_qps"] == 7.0


def test_loadgen_runs_with_the_loaded_settings(tmp_path, tuning):
    """A real LoadGen run (instant stub SUT) logs the settings it was given."""
    responses = []

    def issue_queries(samples):
        for sample in samples:
            data = array.array("B", (1).to_bytes(8, "little"))
            responses.append(data)
            address, length = data.buffer_info()
            lg.QuerySamplesComplete([lg.QuerySampleResponse(sample.id, address, length)])

    sut = lg.ConstructSUT(issue_queries, lambda: None)
    qsl = lg.ConstructQSL(64, 64, lambda indices: None, lambda indices: None)
    log_settings = lg.LogSettings()
    log_settings.log_output.outdir = str(tmp_path)
    log_settings.enable_trace = False
    try:
        settings = load_test_settings("SingleStream", "performance", DEFAULT_MLPERF_CONF, tuning, duration_s=0.2)
        lg.StartTestWithLogSettings(sut, qsl, settings, log_settings)
    finally:
        lg.DestroyQSL(qsl)
        lg.DestroySUT(sut)

    logged = {}
    for line in (tmp_path / "mlperf_log_detail.txt").read_text().splitlines():
        if line.startswith(":::MLLOG "):
            record = json.loads(line[len(":::MLLOG "):])
            logged[record["key"]] = record["value"]
    assert logged["requested_scenario"] == "SingleStream"
    assert logged["requested_single_stream_expected_latency_ns"] == 0.125 * MS
    assert logged["requested_single_stream_target_latency_percentile"] == pytest.approx(0.9)
    assert logged["requested_performance_sample_count_override"] == 25_000
    assert logged["requested_min_duration_ms"] == 200


def test_a_loadgen_of_another_rounds_seeds_is_warned_of_before_the_run(monkeypatch, caplog, tmp_path):
    """The installed LoadGen writes the rules' seeds: no warning. Were the rules' seeds others (as for a LoadGen of
    another round), run.py's plan says so before anything loads."""
    import importlib.metadata

    from readback.rules import RULES_SEEDS
    from sut.config import RunConfig
    from sut.runner import plan_run

    config = RunConfig(scenario="Offline", output_dir=tmp_path / "run")
    with caplog.at_level(logging.WARNING):
        plan_run(config)
    assert not [record for record in caplog.records if "random seeds" in record.getMessage()]
    monkeypatch.setitem(RULES_SEEDS, "qsl_rng_seed", 1)
    with caplog.at_level(logging.WARNING):
        plan_run(config)
    [warning] = [record.getMessage() for record in caplog.records if "random seeds" in record.getMessage()]
    installed = importlib.metadata.version("mlcommons-loadgen")
    assert warning.startswith(f"the installed LoadGen {installed} runs with other random seeds than the MLPerf "
                              "Inference v6.1 rules' (qsl_rng_seed 2085463073848966840, the rules' 1)")
    assert warning.endswith("pip install 'mlcommons-loadgen>=6.0.16,<6.1'")

"""The benchmark's names: the model as MLPerf knows it, and per scenario the LoadGen settings it uses.

One table, read by the settings loader (which settings a scenario records and which a quick-run flag sets),
the load plan (the setting that drives the query count), LoadGen's log reader (the headline figure) and the
report.
"""

from __future__ import annotations

from dataclasses import dataclass

#: the model's name in LoadGen's config files and MLPerf's submission tree
MODEL_NAME = "seq2cnn"

#: ``TestSettings`` attributes every run records
COMMON_SETTINGS = (
    "min_duration_ms", "max_duration_ms", "min_query_count", "max_query_count",
    "performance_sample_count_override", "accuracy_sample_count_override",
    "qsl_rng_seed", "sample_index_rng_seed", "schedule_rng_seed",
    "accuracy_log_rng_seed", "accuracy_log_probability", "accuracy_log_sampling_target",
    "sample_concatenate_permutation", "performance_issue_unique", "performance_issue_same",
    "performance_issue_same_index", "print_timestamps",
)


@dataclass(frozen=True)
class Scenario:
    """One LoadGen scenario as this project uses it.

    ``settings``: the scenario's own ``TestSettings`` attributes, recorded in ``run.json``;
    ``rate_setting``: the queries/s ``--qps`` sets (Offline, Server), else None;
    ``expected_latency_setting``: the expected latency (ns) of a single-query scenario, else None;
    ``latency_setting``: what ``--target-latency`` sets (the expected latency, or Server's bound), else None;
    ``headline``: the detail-log key of the headline figure and its unit, as MLPerf's tools read it;
    ``early_stopping_queries``: the fewest queries for which LoadGen gives the early-stopping estimate of a
    single-query scenario's latency percentile (it logs "Need to process at least N queries for early
    stopping"; fewer make the run INVALID), else 0.
    """

    name: str
    settings: tuple[str, ...]
    rate_setting: str | None
    expected_latency_setting: str | None
    latency_setting: str | None
    headline: tuple[str, str]
    early_stopping_queries: int = 0

    @property
    def latency_bound(self) -> bool:
        """Whether LoadGen judges the run by a latency percentile (every scenario but Offline)."""
        return self.name != "Offline"


SCENARIOS = {scenario.name: scenario for scenario in (
    Scenario("SingleStream", ("single_stream_expected_latency_ns", "single_stream_target_latency_percentile"),
             None, "single_stream_expected_latency_ns", "single_stream_expected_latency_ns",
             ("early_stopping_latency_ss", "ns"), early_stopping_queries=64),
    Scenario("MultiStream", ("multi_stream_expected_latency_ns", "multi_stream_samples_per_query",
                             "multi_stream_target_latency_percentile"),
             None, "multi_stream_expected_latency_ns", "multi_stream_expected_latency_ns",
             ("early_stopping_latency_ms", "ns"), early_stopping_queries=662),
    Scenario("Offline", ("offline_expected_qps",), "offline_expected_qps", None, None,
             ("result_samples_per_second", "samples/s")),
    Scenario("Server", ("server_target_qps", "server_target_latency_ns", "server_target_latency_percentile",
                        "server_coalesce_queries", "server_max_async_queries", "server_num_issue_query_threads"),
             "server_target_qps", None, "server_target_latency_ns",
             ("result_completed_samples_per_sec", "samples/s")),
)}
#: the scenarios' names, in MLPerf's order
SCENARIO_NAMES = tuple(SCENARIOS)

"""What LoadGen will build for a run, checked before it builds it: every value in range, memory and time bounded.

LoadGen generates the whole query set of a performance run before the first
query is issued (``GenerateQueries`` in its ``loadgen.cc``), from the settings
alone:

- Server: arrivals at exponential gaps (mean ``1 / target_qps``) from time 0
  until both an arrival at or after ``min_duration`` and ``min_query_count``
  queries are reached: ``max(min_query_count, target_qps x min_duration +
  1)`` queries. LoadGen sleeps until each arrival and checks
  ``max_duration`` only after it has issued one, so the run lasts until the
  last arrival (``max(min_duration + 1 / target_qps, (min_query_count - 1)
  / target_qps)`` on average) or the first arrival after ``max_duration``,
  whichever comes first: at 1e-9 queries/s, about 1e9 s whatever
  ``max_duration`` says;
- SingleStream and MultiStream: queries for twice ``min_duration`` at the
  expected latency: ``max(min_query_count, 2 x min_duration / expected
  latency)`` queries (of ``samples_per_query`` samples in MultiStream);
- Offline: one query of ``max(min_query_count, 1.1 x min_duration x
  expected_qps)`` samples;
- accuracy mode: every loaded sample once.

A target rate of 0 makes that loop endless (a Server run at 0 queries/s filled
15.7 GB before the kernel killed it), and a rate or duration that is merely
large fills memory in seconds. :func:`check_run_settings` refuses, with the
setting named, any effective value that is not finite and in range, a query
set whose memory estimate (:data:`BYTES_PER_QUERY`, :data:`BYTES_PER_SAMPLE`,
measured with LoadGen 6.0 and rounded up) is over :func:`memory_bound_bytes`,
and a Server schedule longer than its ``max_duration`` (when one is set) or
:data:`MAX_SCHEDULE_S`.

A Server SUT that cannot keep up with the arrival rate would otherwise hold an
ever longer backlog, and the run would last until every generated query is
served (at 20 times its capacity, 20 times its duration).
:func:`bound_server_backlog` sets LoadGen's own ``server_max_async_queries``
so that LoadGen ends such a run early, INVALID, with the error "Too many
outstanding queries", once more queries are outstanding than the latency
percentile allows to be late over the whole run.
"""

from __future__ import annotations

import logging
import math
import os

from readback.benchmark import SCENARIOS
from readback.settings_record import LoadPlan
from sut.settings import ConfigError, RunSettings

log = logging.getLogger(__name__)

#: memory LoadGen and the SUT hold per generated query and per sample in it (bytes; measured
#: per scenario with LoadGen 6.0: 640 B per Server query, 945 per SingleStream query, 1,915 per
#: MultiStream query of 8 samples, 489 per Offline sample; rounded up)
BYTES_PER_QUERY = {"SingleStream": 1024, "MultiStream": 1024, "Server": 1024, "Offline": 0}
BYTES_PER_SAMPLE = {"SingleStream": 0, "MultiStream": 256, "Server": 0, "Offline": 768}
#: the same per Offline sample when queries and responses cross as arrays (sut.loadgen_c_api): 155 B measured
#: (616 MB peak for a query of 1.1M samples, 1,296 MB for 5.5M), 123 B besides the ledger, rounded up
BYTES_PER_OFFLINE_SAMPLE_ARRAYS = 160
#: what the SUT's own ledger keeps per sample (:class:`sut.ledger.SampleLedger`: two ids, two times)
LEDGER_BYTES_PER_SAMPLE = 32
#: the share of the machine's memory a run's query set may take
MEMORY_SHARE = 0.5
#: the longest Server arrival schedule (s): one day
MAX_SCHEDULE_S = 24 * 3600.0
#: the longest min_duration or max_duration (ms): one week
MAX_DURATION_MS = 7 * 24 * 3600 * 1000
#: LoadGen generates SingleStream and MultiStream queries for this many times min_duration, Offline samples for 1.1
SEQUENTIAL_SLACK, OFFLINE_SLACK = 2.0, 1.1
#: the most queries or samples a plan may count before its memory estimate is even made (LoadGen counts in 64 bits)
MAX_PLANNED = float(2**62)
#: the fewest outstanding queries before a Server run is ended early (LoadGen needs at least 2)
MIN_SERVER_BACKLOG = 64


def plan_bytes_per_query(scenario: str, samples_per_query: int) -> int:
    """The memory estimate of one prepared SingleStream or MultiStream query of ``samples_per_query`` samples."""
    return BYTES_PER_QUERY[scenario] + samples_per_query * (BYTES_PER_SAMPLE[scenario] + LEDGER_BYTES_PER_SAMPLE)


def memory_bound_bytes() -> int:
    """The most memory a run's query set may take: :data:`MEMORY_SHARE` of this machine's memory."""
    try:
        total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        total = 16 << 30
    return int(MEMORY_SHARE * total)


def plan_load(run_settings: RunSettings, loaded_samples: int) -> LoadPlan:
    """The query set LoadGen will generate for ``run_settings`` with ``loaded_samples`` samples loaded."""
    settings, scenario = run_settings.test_settings, run_settings.scenario
    spq = settings.multi_stream_samples_per_query if scenario == "MultiStream" else 1
    duration_s = settings.min_duration_ms / 1e3
    schedule_s = None
    if run_settings.mode == "accuracy" or settings.performance_issue_unique:
        samples = settings.accuracy_sample_count_override or loaded_samples
        queries = 1 if scenario == "Offline" else max(1, samples // spq)
    elif scenario == "Offline":
        queries, samples = 1, max(settings.min_query_count, _planned(
            OFFLINE_SLACK * duration_s * settings.offline_expected_qps, "offline_expected_qps", run_settings))
    elif scenario == "Server":
        queries = max(settings.min_query_count, _planned(duration_s * settings.server_target_qps, "server_target_qps",
                                                         run_settings) + 1)
        samples = queries
        schedule_s = server_run_seconds(settings.server_target_qps, duration_s, settings.min_query_count,
                                        settings.max_duration_ms / 1e3)
    else:
        expected_ns = (settings.single_stream_expected_latency_ns if scenario == "SingleStream"
                       else settings.multi_stream_expected_latency_ns)
        queries = max(settings.min_query_count, math.ceil(SEQUENTIAL_SLACK * duration_s * 1e9 / max(expected_ns, 1)))
        samples = queries * spq
    per_sample = BYTES_PER_SAMPLE[scenario]
    if scenario == "Offline":
        from sut.loadgen_c_api import c_api  # LoadGen's C API reached: no Python object per sample

        per_sample = BYTES_PER_OFFLINE_SAMPLE_ARRAYS if c_api() is not None else per_sample
    memory = queries * BYTES_PER_QUERY[scenario] + samples * (per_sample + LEDGER_BYTES_PER_SAMPLE)
    return LoadPlan(queries, samples, memory, memory_bound_bytes(), schedule_s)


def server_run_seconds(target_qps: float, min_duration_s: float, min_query_count: int, max_duration_s: float) -> float:
    """How long LoadGen's Server issue loop lasts on average (s): until its last scheduled arrival, or the first
    arrival after ``max_duration_s`` (0: none) when that comes sooner; see the module docstring."""
    gap_s = 1.0 / target_qps
    last_arrival_s = max(min_duration_s + gap_s, (min_query_count - 1) * gap_s)
    return min(last_arrival_s, max_duration_s + gap_s) if max_duration_s > 0 else last_arrival_s


def _planned(count: float, setting: str, run_settings: RunSettings) -> int:
    """``count`` (queries or samples LoadGen would generate) as a whole number, or :class:`ConfigError` naming
    the ``setting`` behind it when it is too large to count (a rate of 1e308 makes it infinite)."""
    if not math.isfinite(count) or count > MAX_PLANNED:
        value = getattr(run_settings.test_settings, setting)
        raise ConfigError(f"{run_settings.scenario} {setting} is {value:g} ({_source(run_settings, setting)}): LoadGen "
                          f"would generate {count:g} samples for it, more than any run can hold. Lower the rate "
                          "and run again")
    return math.ceil(count)


#: how each override is given on run.py's command line
OVERRIDE_FLAGS = {"duration_s": "--time", "target_qps": "--qps", "target_latency_ms": "--target-latency",
                  "count": "--count", "calibrated_qps": "the Offline quick run's calibration",
                  "calibrated_latency_ms": "the quick run's calibration",
                  "calibrated_max_duration_s": "the quick run's calibration"}


def _source(run_settings: RunSettings, attribute: str) -> str:
    """Where an effective value came from: the flag that set it, else the config files."""
    flags = [override.option for override in run_settings.overrides if attribute in override.sets]
    files = " or ".join(str(file.path) for file in run_settings.config_files)
    return f"set by {OVERRIDE_FLAGS.get(flags[-1], flags[-1])}" if flags else f"from {files}"


def _check_values(run_settings: RunSettings) -> None:
    """Every effective value the run's scenario uses, finite and in range, or :class:`ConfigError` naming it."""
    settings, scenario = run_settings.test_settings, run_settings.scenario
    checks: list[tuple[str, float, bool, str]] = [
        ("min_duration_ms", settings.min_duration_ms, settings.min_duration_ms <= MAX_DURATION_MS,
         f"at most {MAX_DURATION_MS:,} ms (a week)"),
        ("max_duration_ms", settings.max_duration_ms, settings.max_duration_ms <= MAX_DURATION_MS,
         f"0 (no bound) or at most {MAX_DURATION_MS:,} ms (a week)"),
    ]
    if scenario == "Offline":
        checks.append(("offline_expected_qps", settings.offline_expected_qps,
                       math.isfinite(settings.offline_expected_qps) and settings.offline_expected_qps > 0,
                       "a positive finite number of samples per second"))
    elif scenario == "Server":
        checks += [
            ("server_target_qps", settings.server_target_qps,
             math.isfinite(settings.server_target_qps) and settings.server_target_qps > 0,
             "a positive finite number of queries per second"),
            ("server_target_latency_ns", settings.server_target_latency_ns, settings.server_target_latency_ns > 0,
             "a positive latency bound"),
            ("server_target_latency_percentile", settings.server_target_latency_percentile,
             0 < settings.server_target_latency_percentile < 1, "a percentile between 0 and 100 %"),
        ]
    else:
        prefix = "single_stream" if scenario == "SingleStream" else "multi_stream"
        expected = getattr(settings, f"{prefix}_expected_latency_ns")
        percentile = getattr(settings, f"{prefix}_target_latency_percentile")
        checks += [
            (f"{prefix}_expected_latency_ns", expected, expected > 0, "a positive latency of at least 1 ns"),
            (f"{prefix}_target_latency_percentile", percentile, 0 < percentile < 1, "a percentile between 0 and 100 %"),
        ]
        if scenario == "MultiStream":
            checks.append(("multi_stream_samples_per_query", settings.multi_stream_samples_per_query,
                           settings.multi_stream_samples_per_query >= 1, "at least 1"))
    for attribute, value, in_range, expected in checks:
        if not in_range:
            raise ConfigError(f"{scenario} {attribute} is {value!r} ({_source(run_settings, attribute)}): it must be "
                              f"{expected}. Fix the value and run again")


def check_run_settings(run_settings: RunSettings, loaded_samples: int) -> LoadPlan:
    """The run's :class:`LoadPlan`, once every value is in range and the plan within its bounds; else
    :class:`ConfigError` that names the setting, the estimate and the bound."""
    _check_values(run_settings)
    plan = plan_load(run_settings, loaded_samples)
    settings = run_settings.test_settings
    scenario = SCENARIOS[run_settings.scenario]
    driver = scenario.rate_setting or scenario.expected_latency_setting
    if plan.memory_bytes > plan.memory_bound_bytes:
        raise ConfigError(
            f"LoadGen would generate {plan.queries:,} queries of {plan.samples:,} samples in all for this "
            f"{run_settings.scenario} run before issuing the first, about {plan.memory_bytes / 2**30:,.1f} GiB: more than "
            f"the {plan.memory_bound_bytes / 2**30:,.1f} GiB bound ({MEMORY_SHARE:.0%} of this machine's memory). It comes "
            f"from min_duration {settings.min_duration_ms:,} ms ({_source(run_settings, 'min_duration_ms')}), "
            f"min_query_count {settings.min_query_count:,} and {driver} {getattr(settings, driver):g} "
            f"({_source(run_settings, driver)}): lower them (--time, --qps or --target-latency for a quick run)")
    duration_s, max_duration_s = settings.min_duration_ms / 1e3, settings.max_duration_ms / 1e3
    if plan.schedule_s is not None and max_duration_s > 0 and plan.schedule_s > max_duration_s * (1 + 1e-9):
        least_qps = max(1 / (max_duration_s - duration_s) if max_duration_s > duration_s else math.inf,
                        (settings.min_query_count - 1) / max_duration_s)
        advice = (f"raise the rate to at least {least_qps:.3g} queries/s" if math.isfinite(least_qps)
                  else "set max_duration above min_duration")
        raise ConfigError(
            f"at server_target_qps {settings.server_target_qps:g} ({_source(run_settings, 'server_target_qps')}) "
            f"LoadGen's queries arrive {1 / settings.server_target_qps:,.3g} s apart on average. It issues them until "
            f"min_duration {duration_s:g} s and min_query_count {settings.min_query_count:,} are both reached, sleeping "
            f"until each arrival, and checks max_duration ({max_duration_s:g} s, "
            f"{_source(run_settings, 'max_duration_ms')}) only after issuing one: this run would last about "
            f"{plan.schedule_s:,.3g} s, past its max_duration. {advice[0].upper() + advice[1:]} (--qps), or run longer "
            "(--time)")
    if plan.schedule_s is not None and plan.schedule_s > MAX_SCHEDULE_S:
        raise ConfigError(
            f"at server_target_qps {settings.server_target_qps:g} ({_source(run_settings, 'server_target_qps')}) the "
            f"{plan.queries:,} queries LoadGen needs would arrive over {plan.schedule_s:,.0f} s, more than the "
            f"{MAX_SCHEDULE_S:,.0f} s (a day) a run may last: raise the rate, or lower min_query_count")
    return plan


def bound_server_backlog(run_settings: RunSettings, plan: LoadPlan) -> int | None:
    """Set ``server_max_async_queries`` of a Server performance run (unless a config file set it) so that
    LoadGen ends a run early once more queries are outstanding than may be late in the whole run
    (``(1 - percentile) x queries``, at least the arrivals of one latency bound and :data:`MIN_SERVER_BACKLOG`);
    returns the bound, or None when none applies."""
    settings = run_settings.test_settings
    if run_settings.scenario != "Server" or run_settings.mode != "performance":
        return None
    if settings.server_max_async_queries and not run_settings.backlog_bound_set:
        return settings.server_max_async_queries
    late = round((1 - settings.server_target_latency_percentile) * plan.queries, 6)  # 1 - 0.99 is 0.010000000000000009
    in_flight = settings.server_target_qps * settings.server_target_latency_ns / 1e9
    bound = max(MIN_SERVER_BACKLOG, math.ceil(late), math.ceil(in_flight))
    settings.server_max_async_queries = bound
    run_settings.backlog_bound_set = True
    log.info("a Server run ends early (INVALID) once more than %s queries are outstanding", f"{bound:,}")
    return bound


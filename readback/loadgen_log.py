"""Reading LoadGen's own logs back: the headline figure, its validity, LoadGen's errors and hints.

Figures are read from ``mlperf_log_detail.txt`` (``:::MLLOG {json}`` lines)
under the keys MLPerf's own tools read (the submission checker's
``RESULT_FIELD_NEW``, TEST01's ``verify_performance.py``), so that a figure
printed here means what it means there:

- SingleStream: ``early_stopping_latency_ss``, the early-stopping estimate of
  the 90th-percentile latency (ns); the plain percentile is reported beside it;
- MultiStream: ``early_stopping_latency_ms``, the same for the 99th percentile
  of a query's latency;
- Offline: ``result_samples_per_second``;
- Server: ``result_completed_samples_per_sec``, with the latency at the
  target percentile (p99) and p99.9.

``mlperf_log_summary.txt`` is LoadGen's text for people; it is kept and shown,
never parsed for figures.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common.errors import BadInputError
from readback.benchmark import SCENARIOS

SUMMARY_FILE = "mlperf_log_summary.txt"
DETAIL_FILE = "mlperf_log_detail.txt"
ACCURACY_FILE = "mlperf_log_accuracy.json"
TRACE_FILE = "mlperf_log_trace.json"

MLLOG_PREFIX = ":::MLLOG "
#: what LoadGen logs when it found and applied an ``audit.config`` (a compliance run)
AUDIT_FOUND_MESSAGE = "Found Audit Config file"
#: the LoadGen checks behind VALID, by detail-log key, named as the summary names them
VALIDITY_CHECKS = {
    "result_perf_constraints_met": "performance constraints satisfied",
    "result_min_duration_met": "min duration satisfied",
    "result_min_queries_met": "min queries satisfied",
    "early_stopping_met": "early stopping satisfied",
}
PERCENTILE_KEY = re.compile(r"^result_(?P<percentile>\d+\.\d+)_percentile_latency_ns$")
MORE_QUERIES = re.compile(r"Would need to run at least (?P<count>\d+) more queries", re.IGNORECASE)
#: LoadGen's error when a Server run had more outstanding queries than ``server_max_async_queries``
BACKLOG_ERROR = "Too many outstanding queries"
#: detail-log keys kept in :attr:`LoadGenResult.used_settings` besides the ``effective_*`` ones
USED_KEYS = ("generated_query_count", "generated_samples_per_query", "generated_query_duration")
LOADGEN_MODES = {"PerformanceOnly": "performance", "AccuracyOnly": "accuracy", "FindPeakPerformance": "find_peak"}


class LoadGenLogError(BadInputError):
    """A LoadGen log that is missing or cannot be read."""


@dataclass(frozen=True)
class Figure:
    """One figure of a run: what it is, the detail-log key it was read from, its value and unit (``ns`` or ``samples/s``)."""

    name: str
    key: str
    value: float
    unit: str

    def text(self) -> str:
        """The value for people: latencies in ms, rates with thousands separators."""
        if self.unit == "ns":
            return f"{self.value / 1e6:.3f} ms"
        return f"{self.value:,.2f} {self.unit}"


def detail_entries(path: Path) -> list[dict]:
    """The JSON entries of a detail log, in order; lines that are not LoadGen JSON are skipped."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError as error:
        raise LoadGenLogError(f"cannot read LoadGen's detail log {path}: {error.strerror or error}") from None
    entries = []
    for line in text.splitlines():
        if line.startswith(MLLOG_PREFIX):
            try:
                entries.append(json.loads(line[len(MLLOG_PREFIX):]))
            except json.JSONDecodeError:
                continue
    return entries


def detail_values(path: Path) -> dict[str, object]:
    """The last value logged for each key of a detail log."""
    return {entry["key"]: entry.get("value") for entry in detail_entries(path) if "key" in entry}


def percentile_name(percentile: float) -> str:
    """``0.9`` -> ``"p90"``, ``0.999`` -> ``"p99.9"``."""
    return f"p{100 * percentile:.10g}"


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


@dataclass
class LoadGenResult:
    """What LoadGen concluded about one run, read from its detail log.

    ``valid`` is None for accuracy runs (LoadGen judges only performance).
    ``used_settings`` are the values LoadGen ran with, which the record keeps
    beside the values it was given.
    ``headline`` is the scenario's MLPerf figure (see the module docstring);
    ``percentile`` the plain latency at the target percentile (SingleStream,
    MultiStream, Server) and ``tail`` Server's p99.9. ``latencies_ns`` maps
    each percentile LoadGen logged (in %, e.g. ``99.9``) to its latency.
    """

    scenario: str
    mode: str
    valid: bool | None
    headline: Figure | None = None
    percentile: Figure | None = None
    tail: Figure | None = None
    failed_checks: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    early_stopping: str | None = None
    latencies_ns: dict[float, float] = field(default_factory=dict)
    #: what LoadGen used, as it logged it: its ``effective_*`` settings (prefix dropped) and ``generated_query_count``
    used_settings: dict[str, Any] = field(default_factory=dict)
    #: LoadGen's mean latency (``result_mean_latency_ns``), of a query in SingleStream and MultiStream
    mean_latency_ns: float | None = None
    #: the errors LoadGen counted (``num_errors``, logged from LoadGen 5.0.16 on; None in older logs)
    num_errors: int | None = None

    def error_count_mismatch(self) -> str | None:
        """What is wrong when the errors LoadGen counted (``num_errors``) are not the error entries of its log
        (``errors``): a log cut short or edited; None when they agree, or when LoadGen logged no count."""
        return error_count_mismatch(self.num_errors, len(self.errors))

    @property
    def validity(self) -> str:
        return {True: "VALID", False: "INVALID", None: "n/a"}[self.valid]

    def failed_checks_text(self) -> str:
        """The checks LoadGen's summary answers NO, each with its own NO, as one text:
        ``performance constraints satisfied: NO; early stopping satisfied: NO`` (empty when none failed)."""
        return "; ".join(f"{check}: NO" for check in self.failed_checks)

    @property
    def missed_latency_bound(self) -> bool:
        """Whether LoadGen found the latency at the target percentile over the bound (Server)."""
        return VALIDITY_CHECKS["result_perf_constraints_met"] in self.failed_checks

    @property
    def ended_for_backlog(self) -> bool:
        """Whether LoadGen ended a Server run early because too many queries were outstanding
        (``server_max_async_queries``, see :mod:`sut.load_plan`)."""
        return any(BACKLOG_ERROR in error for error in self.errors)

    def ran_out_of_queries(self, user_conf: str = "the user.conf") -> str | None:
        """Why the queries LoadGen prepared ran out before ``min_duration``, and what to set instead, when that
        failed a SingleStream, MultiStream or Offline run: the machine is faster than the config's expected
        latency or rate (LoadGen prepares the minimum duration's queries at that pace). None otherwise."""
        if VALIDITY_CHECKS["result_min_duration_met"] not in self.failed_checks:
            return None
        queries = self.used_settings.get("generated_query_count")
        prepared = f"the {queries:,} queries LoadGen prepared" if isinstance(queries, int) else "LoadGen's queries"
        target_qps = _number(self.used_settings.get("target_qps"))  # LoadGen's pace: 1 / the expected latency
        if self.scenario in ("SingleStream", "MultiStream"):
            expected = 1e9 / target_qps if target_qps else None
            mean = self.mean_latency_ns
            if expected is None or mean is None or mean >= expected:
                return None
            return (f"{prepared} for an expected latency of {expected / 1e6:.3f} ms ran out before min_duration: "
                    f"this machine answered in {mean / 1e6:.3f} ms on average. Set {self.scenario}'s target_latency "
                    f"below that in {user_conf} (e.g. {mean / 2e6:.3f} ms; a quick run: --target-latency)")
        if self.scenario == "Offline":
            expected, rate = target_qps, self.headline.value if self.headline is not None else None
            if expected is None or rate is None or rate <= expected:
                return None
            return (f"the query LoadGen prepared for {expected:,.0f} samples/s ran out before min_duration: this "
                    f"machine did {rate:,.0f} samples/s. Set Offline's target_qps above that in {user_conf} "
                    f"(e.g. {1.5 * rate:,.0f}; a quick run: --qps)")
        return None

    def more_queries_needed(self) -> int | None:
        """How many more queries LoadGen's early stopping asked for, when that, not the latency bound, failed
        the run (so that a longer run may pass); None otherwise."""
        if self.missed_latency_bound:
            return None
        match = MORE_QUERIES.search(self.early_stopping or "")
        return int(match["count"]) if match else None


def error_count_mismatch(counted: object, entries: int) -> str | None:
    """What is wrong when the errors LoadGen counted (its ``num_errors``) are not the ``entries`` its detail log
    marks as errors; None when they agree, or when the log holds no count (LoadGen before 5.0.16)."""
    if not isinstance(counted, int) or counted == entries:
        return None
    return (f"LoadGen counted {counted} error(s) (num_errors) but its detail log holds {entries} error entries: "
            "the log is incomplete or was changed")


def read_result(log_dir: Path) -> LoadGenResult:
    """The result of the LoadGen run whose logs are in ``log_dir``."""
    detail_path = Path(log_dir) / DETAIL_FILE
    entries = detail_entries(detail_path)
    values = {entry["key"]: entry.get("value") for entry in entries if "key" in entry}
    scenario = str(values.get("effective_scenario") or values.get("requested_scenario") or "?")
    mode = LOADGEN_MODES.get(str(values.get("effective_test_mode")), str(values.get("effective_test_mode")))
    errors = [f"{entry['key']}: {entry.get('value')}" for entry in entries
              if entry.get("metadata", {}).get("is_error")]
    latencies = {float(m["percentile"]): float(value) for key, value in values.items()
                 if (m := PERCENTILE_KEY.match(key)) and _number(value) is not None}
    validity = values.get("result_validity")
    used = {key.removeprefix("effective_"): value for key, value in values.items()
            if key.startswith("effective_") or key in USED_KEYS}
    result = LoadGenResult(scenario, mode, None if validity is None else validity == "VALID", errors=errors,
                           latencies_ns=latencies, used_settings=used,
                           mean_latency_ns=_number(values.get("result_mean_latency_ns")),
                           num_errors=values["num_errors"] if isinstance(values.get("num_errors"), int) else None)
    if validity is None:
        return result
    result.failed_checks = [name for key, name in VALIDITY_CHECKS.items() if values.get(key) is False]
    if values.get("early_stopping_met") is False:
        result.early_stopping = " ".join(str(values.get("early_stopping_result", "")).split()) or None
    key, unit = SCENARIOS[scenario].headline if scenario in SCENARIOS else (None, None)
    if key is not None and (value := _number(values.get(key))) is not None:
        result.headline = Figure(_headline_name(scenario, values), key, value, unit)
    target = _number(values.get("effective_target_latency_percentile"))
    if scenario in SCENARIOS and SCENARIOS[scenario].latency_bound and target is not None:
        percentile_key = f"result_{100 * target:.2f}_percentile_latency_ns"
        if (value := _number(values.get(percentile_key))) is not None:
            result.percentile = Figure(f"{percentile_name(target)} latency", percentile_key, value, "ns")
    if scenario == "Server" and 99.9 in latencies:
        result.tail = Figure("p99.9 latency", "result_99.90_percentile_latency_ns", latencies[99.9], "ns")
    return result


def _headline_name(scenario: str, values: dict[str, object]) -> str:
    if scenario in ("SingleStream", "MultiStream"):
        target = _number(values.get("effective_target_latency_percentile"))
        percentile = percentile_name(target) if target is not None else "target percentile"
        return f"early-stopping {percentile} latency estimate"
    return "samples per second" if scenario == "Offline" else "completed samples per second"

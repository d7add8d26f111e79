"""Reading LoadGen's own logs back: the result, its validity and LoadGen's errors.

``mlperf_log_summary.txt`` gives the headline figure and ``VALID``/``INVALID``
with the checks behind it; ``mlperf_log_detail.txt`` (``:::MLLOG {json}``
lines) gives every setting LoadGen used and every error it logged.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

SUMMARY_FILE = "mlperf_log_summary.txt"
DETAIL_FILE = "mlperf_log_detail.txt"
ACCURACY_FILE = "mlperf_log_accuracy.json"

#: The headline metric of each scenario, as LoadGen names it in the summary.
HEADLINE_PATTERNS = {
    "SingleStream": r"^\d+(\.\d+)?th percentile latency \(ns\)$",
    "MultiStream": r"^\d+(\.\d+)?th percentile latency \(ns\)$",
    "Server": r"^Completed samples per second$",
    "Offline": r"^Samples per second$",
}
SUMMARY_LINE = re.compile(r"^\s*\*?\s*(?P<key>[^:*][^:]*?)\s*:\s*(?P<value>.*?)\s*$")


@dataclass
class LoadGenResult:
    """What LoadGen concluded about one run."""

    scenario: str
    mode: str
    valid: bool | None
    metric: str | None = None
    value: float | None = None
    failed_checks: list[str] = field(default_factory=list)
    summary: dict[str, str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    @property
    def validity(self) -> str:
        return {True: "VALID", False: "INVALID", None: "n/a"}[self.valid]


def parse_summary(text: str) -> dict[str, str]:
    """``key : value`` lines of a summary, first occurrence of each key."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        match = SUMMARY_LINE.match(line)
        if match and match["value"]:
            fields.setdefault(match["key"], match["value"])
    return fields


def detail_entries(path: Path) -> list[dict]:
    """The JSON entries of a detail log, in order."""
    entries = []
    for line in Path(path).read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith(":::MLLOG "):
            try:
                entries.append(json.loads(line[len(":::MLLOG "):]))
            except json.JSONDecodeError:
                continue
    return entries


def detail_values(path: Path) -> dict[str, object]:
    """Last value logged for each key of a detail log."""
    return {entry["key"]: entry.get("value") for entry in detail_entries(path)}


def read_result(log_dir: Path) -> LoadGenResult:
    """The result of the LoadGen run whose logs are in ``log_dir``."""
    summary_text = (log_dir / SUMMARY_FILE).read_text(encoding="utf-8", errors="replace")
    fields = parse_summary(summary_text)
    scenario, mode = fields.get("Scenario", "?"), fields.get("Mode", "?")
    errors = [
        f"{entry['key']}: {entry.get('value')}"
        for entry in detail_entries(log_dir / DETAIL_FILE)
        if entry.get("metadata", {}).get("is_error")
    ]
    if mode != "PerformanceOnly":
        return LoadGenResult(scenario, mode, None, summary=fields, errors=errors)
    metric, value = None, None
    pattern = HEADLINE_PATTERNS.get(scenario)
    for key, raw in fields.items():
        if pattern and re.match(pattern, key):
            metric, value = key, float(raw)
            break
    failed = [key for key, raw in fields.items() if raw.upper() == "NO" and "satisfied" in key.lower()]
    return LoadGenResult(scenario, mode, fields.get("Result is") == "VALID", metric, value, failed, fields, errors)


PEAK_FOUND = re.compile(r"Found peak performance field: (?P<qps>[0-9.]+)")
PEAK_PROBE = re.compile(r"(Check validity of the base settings field: |Checking fields \[[0-9.]+, |Testing the mid value of bounds \[[0-9.]+, [0-9.]+\): )(?P<qps>[0-9.]+)")


@dataclass
class PeakSearch:
    """LoadGen's find-peak-performance search in a Server run: the rates it tried and the peak it found (queries/s)."""

    peak_qps: float | None
    probed_qps: list[float] = field(default_factory=list)


def read_peak_search(log_dir: Path) -> PeakSearch:
    """The find-peak search logged in ``log_dir``'s detail log (``peak_qps`` None when no peak was found)."""
    search = PeakSearch(None)
    for entry in detail_entries(Path(log_dir) / DETAIL_FILE):
        message = str(entry.get("value"))
        if found := PEAK_FOUND.search(message):
            search.peak_qps = float(found["qps"])
        elif probe := PEAK_PROBE.search(message):
            search.probed_qps.append(float(probe["qps"]))
    return search

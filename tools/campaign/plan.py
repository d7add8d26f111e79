"""What a campaign runs: the runs a system type's submission needs, in order, with each one's expected time and disk.

For each scenario the system type requires (:data:`tools.submission.layout.REQUIRED_SCENARIOS`; the optional
ones too with ``--optional``), three runs, one after the other: the accuracy run, the performance run, then the
TEST01 run pointed at those two. TEST01's performance part is held against the performance run (within 10 %),
so it runs right after it, on the machine in the same state.

Expected durations come from the settings LoadGen will be given (:func:`sut.settings.load_run_settings`, the
query set of :func:`sut.load_plan.plan_load`) plus :data:`STARTUP_S` per run; they are what the settings
imply, not a promise: a system faster or slower than its ``user.conf`` expects runs shorter or longer.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from qsl.reviews import TEST_SPLIT_REVIEWS
from sut.load_plan import plan_load
from sut.settings import load_run_settings
from tools.submission import layout

#: the kinds of run each scenario of a submission needs, in the order a campaign makes them
KINDS = ("accuracy", "performance", "TEST01")
#: seconds the plan adds to each run's LoadGen time for the run.py process before LoadGen starts and after it
#: ends (imports, cached tables and tokens, the checks and the record)
STARTUP_S = 15.0
#: bytes a run writes per sample it completes (``sut_timings.npz``: two int64) and per accuracy-log entry
TIMING_BYTES_PER_SAMPLE = 16
ACCURACY_LOG_BYTES_PER_SAMPLE = 100
#: LoadGen's summary, detail and trace-free logs, run.json, the report: at most this per run
LOG_BYTES_PER_RUN = 4 << 20
#: the submission tree and its report beside the runs (code, truncated logs, figures)
TREE_BYTES = 64 << 20
#: min_duration of a ``--quick`` campaign (ms): every other rule stays as in mlperf.conf
QUICK_MIN_DURATION_MS = 10_000


@dataclass(frozen=True)
class PlannedRun:
    """One run of the campaign: ``scenario``'s ``kind`` run, expected to take ``expected_s`` seconds and write
    ``expected_bytes`` bytes."""

    scenario: str
    kind: str
    expected_s: float
    expected_bytes: int

    @property
    def name(self) -> str:
        """The run's name in the manifest and its folders: ``<scenario>-<kind>``."""
        return f"{self.scenario}-{self.kind}"


def campaign_scenarios(system_type: str, optional: bool) -> tuple[str, ...]:
    """The scenarios a ``system_type`` submission holds: the required ones, and the optional ones if asked."""
    canonical = layout.SYSTEM_TYPES[system_type]
    return layout.REQUIRED_SCENARIOS[canonical] + (layout.OPTIONAL_SCENARIOS[canonical] if optional else ())


def _seconds_per_sample(settings, scenario: str) -> float:
    """How long one sample takes, as the settings expect it."""
    if scenario == "SingleStream":
        return settings.single_stream_expected_latency_ns / 1e9
    if scenario == "MultiStream":
        return settings.multi_stream_expected_latency_ns / 1e9 / settings.multi_stream_samples_per_query
    if scenario == "Offline":
        return 1 / settings.offline_expected_qps
    return 1 / settings.server_target_qps


def planned_run(scenario: str, kind: str, mlperf_conf: Path, user_conf: Path) -> PlannedRun:
    """``scenario``'s ``kind`` run under these config files, with its expected time and bytes."""
    mode = "accuracy" if kind == "accuracy" else "performance"
    run_settings = load_run_settings(scenario, mode, mlperf_conf, user_conf)
    settings = run_settings.test_settings
    load = plan_load(run_settings, TEST_SPLIT_REVIEWS)
    per_sample = _seconds_per_sample(settings, scenario)
    if mode == "accuracy":
        seconds = load.samples * per_sample
        written = load.samples * (TIMING_BYTES_PER_SAMPLE + ACCURACY_LOG_BYTES_PER_SAMPLE)
    else:
        seconds = max(settings.min_duration_ms / 1e3, load.samples * per_sample if scenario == "Offline" else 0.0)
        written = load.samples * TIMING_BYTES_PER_SAMPLE
        if kind == "TEST01":  # its accuracy part logs a share of the responses; count every review once
            written += TEST_SPLIT_REVIEWS * ACCURACY_LOG_BYTES_PER_SAMPLE
    return PlannedRun(scenario, kind, seconds + STARTUP_S, written + LOG_BYTES_PER_RUN)


def plan_campaign(scenarios: tuple[str, ...], mlperf_conf: Path, user_conf: Path) -> list[PlannedRun]:
    """Every run of the campaign, in the order it makes them."""
    return [planned_run(scenario, kind, mlperf_conf, user_conf) for scenario in scenarios for kind in KINDS]


def needed_bytes(plan: list[PlannedRun]) -> int:
    """The disk the plan's runs and the tree need."""
    return sum(run.expected_bytes for run in plan) + TREE_BYTES


def quick_rules_text(mlperf_conf: Path) -> str:
    """``mlperf_conf`` with every scenario's ``min_duration`` at :data:`QUICK_MIN_DURATION_MS`, headed by a
    comment that says what it is."""
    lines = Path(mlperf_conf).read_text(encoding="utf-8").splitlines()
    head = [f"# A quick campaign's rules: {mlperf_conf} with min_duration {QUICK_MIN_DURATION_MS} ms, so that a",
            "# whole campaign takes minutes. Runs under these rules are NOT valid for submission."]
    kept = [line for line in lines if not line.replace(" ", "").startswith("seq2cnn.*.min_duration=")]
    return "\n".join(head + kept + [f"seq2cnn.*.min_duration = {QUICK_MIN_DURATION_MS}"]) + "\n"

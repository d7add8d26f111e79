"""What a run's record keeps of its LoadGen settings: the config files, the quick-run overrides, the values
LoadGen was given, and the query set LoadGen was expected to build (plain data, no LoadGen)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ConfigFile:
    """One config file as it was loaded."""

    path: Path
    sha256: str


@dataclass(frozen=True)
class Override:
    """One option that changed the rules' settings for a quick run, and the ``TestSettings`` attributes it set.

    ``option`` is a quick-run flag (``duration_s``, ``target_qps``,
    ``target_latency_ms``), ``count`` (a part of the test split), ``calibrated_qps`` (an Offline quick run
    sized from a measured rate), ``calibrated_latency_ms`` (a SingleStream or MultiStream quick run's expected
    latency, measured) or ``calibrated_max_duration_s`` (room for the queries their early-stopping estimate
    needs, at the measured latency).
    """

    option: str
    value: float
    sets: dict[str, int | float]


@dataclass(frozen=True)
class SettingsRecord:
    """What a run's record keeps of its settings: files, overrides and the values LoadGen was given."""

    model: str
    scenario: str
    mode: str
    loadgen_version: str
    config_files: list[ConfigFile]
    overrides: list[Override]
    effective: dict[str, int | float]

    @property
    def quick_run(self) -> bool:
        """Whether anything overrode the config files: such a run is not valid for submission."""
        return bool(self.overrides)



@dataclass(frozen=True)
class LoadPlan:
    """The query set LoadGen will generate for a run: queries, samples in all, their memory estimate and its
    bound (bytes), and for Server the length of the arrival schedule (s) and the most queries that may be
    outstanding before LoadGen ends the run (:func:`bound_server_backlog`)."""

    queries: int
    samples: int
    memory_bytes: int
    memory_bound_bytes: int
    schedule_s: float | None = None
    max_outstanding_queries: int | None = None


"""A find-peak search as ``run.json`` records it: each probe (a full LoadGen run) and the peak found."""

from __future__ import annotations

from dataclasses import dataclass, field

from readback.loadgen_log import LoadGenResult
from readback.timings import SampleCounts


@dataclass(frozen=True)
class Probe:
    """One probe of the search: the arrival rate tried (queries/s), where its logs are, and LoadGen's verdict."""

    target_qps: float
    folder: str
    result: LoadGenResult
    samples: SampleCounts
    wall_seconds: float

    @property
    def valid(self) -> bool:
        return self.result.valid is True


@dataclass
class PeakSearch:
    """A finished search: every probe in the order run, and the peak (None when no rate was VALID)."""

    start_qps: float
    tolerance: float
    probes: list[Probe] = field(default_factory=list)
    peak_qps: float | None = None
    conclusion: str = ""

    @property
    def peak_probe(self) -> Probe | None:
        """The VALID probe at the peak rate."""
        return next((probe for probe in self.probes if probe.valid and probe.target_qps == self.peak_qps), None)


"""MLPerf compliance tests: the ``audit.config`` a compliance run hands to LoadGen.

LoadGen looks for an audit file when a test starts and, if the file exists,
overrides the run's ``TestSettings`` with it (read like a config file, model
``*``). The official flow copies ``audit.config`` into the working directory;
here every run instead passes LoadGen a path inside its own new folder:

- a compliance run writes the test's ``audit.config`` there, so the file that
  changed the run stays beside the logs it changed and nowhere else;
- any other run passes the same path without writing it, so a stray
  ``audit.config`` in the working directory can never change a normal run.

Tests kept by this benchmark:

- TEST01 (accuracy in performance mode): a performance run that also logs a
  random sample of its responses; :mod:`readback.test01` compares them with
  the accuracy run's responses and the run's performance with the plain
  performance run's.
- TEST04 does not apply, as for BERT, the other benchmark with inputs of
  varying length: it issues one sample repeatedly and expects the same speed
  as for distinct samples, but a review of another length runs at another
  speed by nature.
- TEST05 (other random seeds) is not kept: LoadGen's seeds are read from its
  built-in rules (see :mod:`sut.settings`).

TEST01 compares the two runs' figures as they are, so a compliance run made
with other settings than its performance run is worth a warning before it
starts: :func:`settings_unlike` says how the two differ.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from common.errors import BadInputError
from common.files import write_text_atomically
from readback.run_record import RunRecord
from sut.load_plan import OVERRIDE_FLAGS
from sut.settings import RunSettings

log = logging.getLogger(__name__)

AUDIT_CONFIG_FILE = "audit.config"


@dataclass(frozen=True)
class ComplianceTest:
    """One compliance test: its name, what it proves, and the settings its audit file sets."""

    name: str
    purpose: str
    settings: dict[str, int]

    def audit_config_text(self) -> str:
        """The ``audit.config`` content: one ``*.*.key = value`` line per setting."""
        lines = [f"# MLPerf compliance {self.name}: {self.purpose}", "# Read by LoadGen at the start of the run; keys apply to every model and scenario."]
        lines += [f"*.*.{key} = {value}" for key, value in self.settings.items()]
        return "\n".join(lines) + "\n"


#: LoadGen's TestMode value for PerformanceOnly, as config files write it
PERFORMANCE_ONLY = 2

COMPLIANCE_TESTS = {
    "TEST01": ComplianceTest(
        "TEST01",
        "responses logged in performance mode must match the accuracy run's",
        {
            "mode": PERFORMANCE_ONLY,
            # MLPerf's TEST01 seed, so that the logged sample is the one other submitters' tools expect.
            "accuracy_log_rng_seed": 720381539243781796,
            # About this many responses are logged (8 bytes each: cheap for this benchmark).
            "accuracy_log_sampling_target": 4096,
        },
    ),
}


class ComplianceError(BadInputError):
    """A compliance test that does not exist or cannot be staged."""


def compliance_test(name: str) -> ComplianceTest:
    """The test called ``name`` (e.g. ``TEST01``)."""
    try:
        return COMPLIANCE_TESTS[name]
    except KeyError:
        raise ComplianceError(
            f"unknown compliance test {name!r}: this benchmark runs {', '.join(COMPLIANCE_TESTS)} "
            "(TEST04 does not apply to reviews of varying length)"
        ) from None


def stage_audit_config(run_dir: Path, test: ComplianceTest | None) -> Path:
    """The audit file path LoadGen gets for a run in ``run_dir``; written there only for a compliance ``test``."""
    path = Path(run_dir) / AUDIT_CONFIG_FILE
    if test is not None:
        write_text_atomically(path, test.audit_config_text())
        log.info("%s: staged %s for LoadGen", test.name, path)
    return path


#: the options a compliance run and its performance run must share: the quick-run flags set by hand
SHARED_OVERRIDES = ("duration_s", "target_qps", "target_latency_ms", "count")


def settings_unlike(performance: RunRecord, run_settings: RunSettings, count: int | None) -> list[str]:
    """How a compliance run's settings (``run_settings``, and ``--count``) differ from those of its performance
    run: a quick-run flag set in one and not the other or to another value, other config files. Values each run
    measured for itself (a quick run's calibration) are not compared."""
    def chosen(overrides) -> dict[str, float]:
        return {o.option: o.value for o in overrides if o.option in SHARED_OVERRIDES}

    theirs, ours = chosen(performance.settings.overrides), chosen(run_settings.overrides)
    if count is not None:
        ours["count"] = count

    def described(values: dict[str, float], option: str) -> str:
        return f"{OVERRIDE_FLAGS[option]} {values[option]:g}" if option in values else f"no {OVERRIDE_FLAGS[option]}"

    differences = [f"{described(theirs, option)} there, {described(ours, option)} here"
                   for option in SHARED_OVERRIDES if theirs.get(option) != ours.get(option)]
    their_files = [(Path(file.path).name, file.sha256) for file in performance.settings.config_files]
    our_files = [(Path(file.path).name, file.sha256) for file in run_settings.config_files]
    if their_files != our_files:
        differences.append(f"config files {', '.join(name for name, _ in their_files)} there, "
                           f"{', '.join(name for name, _ in our_files)} here (or their contents differ)")
    return differences

"""The MLPerf Inference round whose rules this project's runs and submission trees follow, and the random seeds
those rules require LoadGen to run with.

LoadGen draws the samples of every query, and the Server arrival times, from three seeds built into each
release. MLPerf's submission checker holds each round's seeds (its ``constants.py``) and refuses a log of any
other, saying ``qsl_rng_seed is wrong, expected=...``. mlcommons-loadgen writes the v6.1 seeds from 6.0.16
on; 6.0.15 writes v6.0's, earlier 6.0.x releases earlier rounds'. A run made with such a release is a fine
measurement and an unusable result: the packer (:mod:`tools.submission.runs`) and the project's checker
(:mod:`tools.submission.scenario_checks`) compare each detail log's seeds with :data:`RULES_SEEDS`, and
``run.py`` warns at its start when the installed LoadGen (or a config file) sets others
(:func:`sut.settings.warn_of_seeds_other_than_the_rules`).
"""

from __future__ import annotations

from collections.abc import Mapping

#: The MLPerf Inference round whose submission layout and rules this project follows.
RULES_VERSION = "v6.1"
#: The random seeds of :data:`RULES_VERSION` (MLPerf's submission checker), by LoadGen setting name.
RULES_SEEDS = {
    "qsl_rng_seed": 2085463073848966840,
    "sample_index_rng_seed": 2747215439041700203,
    "schedule_rng_seed": 16159082839903944936,
}
#: The mlcommons-loadgen releases that run with :data:`RULES_SEEDS` (setup.py pins the same).
LOADGEN_REQUIREMENT = "mlcommons-loadgen>=6.0.16,<6.1"


def wrong_seeds(logged: Mapping[str, object]) -> list[str]:
    """MLPerf's checker's words for each seed of a detail log (``logged``: its values by key, as
    :func:`readback.loadgen_log.detail_values` reads them) that is not the rules': ``qsl_rng_seed is wrong,
    expected=2085463073848966840 (logged 2465351861681999779)``; empty when all three are the rules'."""
    problems = []
    for name, expected in RULES_SEEDS.items():
        value = logged.get(f"effective_{name}")
        if value != expected:
            problems.append(f"{name} is wrong, expected={expected} (logged {value})")
    return problems


def seed_advice(loadgen_version: object) -> str:
    """What to do about a run whose seeds are wrong, naming the LoadGen that made it."""
    return (f"LoadGen {loadgen_version} made the run with the seeds of another round than MLPerf Inference "
            f"{RULES_VERSION}'s: pip install '{LOADGEN_REQUIREMENT}' and make the run again")

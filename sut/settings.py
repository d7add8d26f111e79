"""LoadGen ``TestSettings`` of one run: built-in rules, mlperf.conf, user.conf, then quick-run overrides.

Load order, each step overriding the one before:

1. LoadGen's built-in rules (its embedded mlperf.conf, ``conf_type`` 0). They
   are the only source LoadGen reads the RNG seeds and
   ``accuracy_log_probability`` from; their ``*`` rules also apply to
   ``seq2cnn``.
2. ``configs/mlperf.conf``: this benchmark's rules.
3. ``configs/user.conf``: one system's tuning.
4. Overrides for a quick run (``duration_s``, ``target_qps``,
   ``target_latency_ms``); a run with any of them does not follow the
   benchmark's rules, and its record says so.

How ``TestSettings.FromConfig(path, model, scenario, conf_type)`` behaves
(LoadGen 6.0): ``conf_type`` 0 parses the embedded rules and ignores ``path``;
any other value parses the file at ``path`` and returns ``-ENOENT`` when it
cannot open it, ``-EINVAL`` when a line is not ``key = number`` (in both cases
nothing changes). ``conf_type`` 1 also loads the embedded rules first, but only
on its first call in a process; later calls with 1 skip them (a fresh
``TestSettings`` then keeps seeds of 0) and log the error "Multiple conf files
are used. This is not valid for official submission." So both files are loaded
here with ``conf_type`` 2, after an explicit ``conf_type`` 0: every call gives
the same settings however many runs a process makes. ``FromConfig`` sets
neither the scenario nor the mode; they are set here after the files.

Values are read per scenario: a file's ``seq2cnn.Server.target_latency`` is
read even for an Offline run, but only the run's scenario uses it.
"""

from __future__ import annotations

import errno
import hashlib
import importlib.metadata
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import mlperf_loadgen as lg

log = logging.getLogger(__name__)

MODEL_NAME = "seq2cnn"
CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
DEFAULT_MLPERF_CONF = CONFIG_DIR / "mlperf.conf"
DEFAULT_USER_CONF = CONFIG_DIR / "user.conf"

SCENARIOS = {
    "SingleStream": lg.TestScenario.SingleStream,
    "MultiStream": lg.TestScenario.MultiStream,
    "Offline": lg.TestScenario.Offline,
    "Server": lg.TestScenario.Server,
}
MODES = {
    "performance": lg.TestMode.PerformanceOnly,
    "accuracy": lg.TestMode.AccuracyOnly,
}

BUILT_IN_RULES, FILE = 0, 2  # FromConfig's conf_type (see the module docstring)

# Keys FromConfig reads from a file (LoadGen 6.0), besides "mode" (set by the caller here);
# it ignores any other key silently.
FILE_KEYS = frozenset({
    "min_duration", "max_duration", "min_query_count", "max_query_count",
    "performance_sample_count_override", "accuracy_sample_count_override",
    "target_latency", "target_latency_percentile", "target_qps", "samples_per_query",
    "coalesce_queries", "max_async_queries", "sample_concatenate_permutation",
    "performance_issue_unique", "performance_issue_same", "performance_issue_same_index",
    "print_timestamps", "accuracy_log_rng_seed", "accuracy_log_sampling_target",
    "use_token_latencies", "ttft_latency", "tpot_latency", "infer_token_latencies",
    "token_latency_scaling_factor",
})
# Keys FromConfig reads only from its built-in rules, never from a file.
BUILT_IN_ONLY_KEYS = frozenset({
    "qsl_rng_seed", "sample_index_rng_seed", "schedule_rng_seed", "accuracy_log_probability",
    "test05", "test05_qsl_rng_seed", "test05_sample_index_rng_seed", "test05_schedule_rng_seed",
})

# TestSettings attributes recorded for every run, then those of the run's scenario.
COMMON_ATTRIBUTES = (
    "min_duration_ms", "max_duration_ms", "min_query_count", "max_query_count",
    "performance_sample_count_override", "accuracy_sample_count_override",
    "qsl_rng_seed", "sample_index_rng_seed", "schedule_rng_seed",
    "accuracy_log_rng_seed", "accuracy_log_probability", "accuracy_log_sampling_target",
    "sample_concatenate_permutation", "performance_issue_unique", "performance_issue_same",
    "performance_issue_same_index", "print_timestamps",
)
SCENARIO_ATTRIBUTES = {
    "SingleStream": ("single_stream_expected_latency_ns", "single_stream_target_latency_percentile"),
    "MultiStream": (
        "multi_stream_expected_latency_ns", "multi_stream_samples_per_query",
        "multi_stream_target_latency_percentile",
    ),
    "Offline": ("offline_expected_qps",),
    "Server": (
        "server_target_qps", "server_target_latency_ns", "server_target_latency_percentile",
        "server_coalesce_queries", "server_max_async_queries", "server_num_issue_query_threads",
    ),
}

class ConfigError(RuntimeError):
    """A LoadGen config file, scenario, mode or override that cannot be used."""


@dataclass(frozen=True)
class ConfigFile:
    """One config file as it was loaded."""

    path: Path
    sha256: str


@dataclass(frozen=True)
class Override:
    """One option that changed the rules' settings for a quick run, and the ``TestSettings`` attributes it set.

    ``option`` is a quick-run flag (``duration_s``, ``target_qps``,
    ``target_latency_ms``), ``count`` (a part of the test split), or
    ``calibrated_qps`` (an Offline quick run sized from a measured rate).
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


@dataclass
class RunSettings:
    """The ``TestSettings`` of one run and where their values came from."""

    test_settings: lg.TestSettings
    scenario: str
    mode: str
    config_files: list[ConfigFile]
    overrides: list[Override] = field(default_factory=list)

    def add_override(self, override: Override) -> None:
        """Apply ``override`` to the ``TestSettings`` and keep it in the record."""
        for name, value in override.sets.items():
            setattr(self.test_settings, name, value)
        self.overrides.append(override)
        log.info("override %s = %g sets %s", override.option, override.value, override.sets)

    def record(self) -> SettingsRecord:
        """Files, overrides and the effective values LoadGen will use, for the run's record."""
        attributes = COMMON_ATTRIBUTES + SCENARIO_ATTRIBUTES[self.scenario]
        return SettingsRecord(
            model=MODEL_NAME, scenario=self.scenario, mode=self.mode,
            loadgen_version=importlib.metadata.version("mlcommons-loadgen"),
            config_files=list(self.config_files), overrides=list(self.overrides),
            effective={name: getattr(self.test_settings, name) for name in attributes},
        )


def load_run_settings(
    scenario: str,
    mode: str,
    mlperf_conf: Path = DEFAULT_MLPERF_CONF,
    user_conf: Path = DEFAULT_USER_CONF,
    *,
    duration_s: float | None = None,
    target_qps: float | None = None,
    target_latency_ms: float | None = None,
) -> RunSettings:
    """``TestSettings`` for ``scenario`` in ``mode`` ("performance" or "accuracy"), and where they came from.

    ``duration_s`` sets the minimum duration (seconds), twice that as the maximum, and lowers
    the minimum query count to 1, so that a short run is possible.
    ``target_qps`` (queries per second) sets the expected Offline throughput or
    the Server arrival rate. ``target_latency_ms`` sets the expected
    SingleStream or MultiStream latency, or the Server latency bound.
    """
    if scenario not in SCENARIOS:
        raise ConfigError(f"unknown scenario {scenario!r}: expected one of {', '.join(SCENARIOS)}")
    if mode not in MODES:
        raise ConfigError(f"unknown mode {mode!r}: expected one of {', '.join(MODES)}")
    settings = lg.TestSettings()
    status = settings.FromConfig("", MODEL_NAME, scenario, BUILT_IN_RULES)
    if status != 0:
        raise ConfigError(f"LoadGen could not parse its own built-in rules (FromConfig returned {status}); reinstall mlcommons-loadgen")
    config_files = [_load_file(settings, Path(path), scenario) for path in (mlperf_conf, user_conf)]
    settings.scenario = SCENARIOS[scenario]
    settings.mode = MODES[mode]
    run_settings = RunSettings(settings, scenario, mode, config_files)
    for override in _quick_run_overrides(scenario, duration_s, target_qps, target_latency_ms):
        run_settings.add_override(override)
    return run_settings


def _load_file(settings: lg.TestSettings, path: Path, scenario: str) -> ConfigFile:
    try:
        content = path.read_bytes()
    except OSError as error:
        raise ConfigError(
            f"cannot read LoadGen config {path}: {error.strerror or error}. "
            f"Pass an existing file, or restore it from {CONFIG_DIR}"
        ) from None
    text = content.decode("utf-8", errors="replace")
    for warning in _ignored_settings(text):
        log.warning("%s: %s", path, warning)
    status = settings.FromConfig(str(path), MODEL_NAME, scenario, FILE)
    if status == -errno.EINVAL:
        syntax_errors = _settings_lines(text)[1] or ["a line is not 'key = number'"]
        raise ConfigError(
            f"LoadGen rejected {path}: " + "; ".join(syntax_errors)
            + ". Each line must be 'model.scenario.key = number' or a comment line starting with '# '"
        )
    if status != 0:
        raise ConfigError(f"LoadGen could not load {path} (FromConfig returned {status}); check that the file is readable")
    return ConfigFile(path, hashlib.sha256(content).hexdigest())  # of the bytes LoadGen parsed, read once


def _is_number(token: str) -> bool:
    """Whether LoadGen accepts ``token`` as a value (an integer in any C base, or a decimal)."""
    if "_" in token:
        return False
    try:
        int(token, 0)
        return True
    except ValueError:
        pass
    try:
        float(token)
        return True
    except ValueError:
        return False


def _settings_lines(text: str) -> tuple[list[tuple[int, str]], list[str]]:
    """``(line number, key)`` of each setting and the errors, tokenized the way LoadGen does."""
    settings, errors = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        tokens = line.split()
        if not tokens or tokens[0] == "#" or len(tokens) == 1 or tokens[1] == "#":
            continue
        if tokens[1] != "=":
            errors.append(f"line {number}: expected 'key = value', found {line.strip()!r}")
            continue
        bad_values = [token for token in tokens[2:] if not _is_number(token)]
        if bad_values:
            errors.append(
                f"line {number}: {bad_values[0]!r} is not a number (a comment must be on a line of its own)"
            )
        elif len(tokens) > 2:
            settings.append((number, tokens[0]))
    return settings, errors


def _ignored_settings(text: str) -> list[str]:
    """Settings of this model that LoadGen would ignore without a word (typos, built-in-only keys)."""
    warnings = []
    for number, key in _settings_lines(text)[0]:
        parts = key.split(".")
        if len(parts) != 3:
            warnings.append(f"line {number}: {key!r} is not 'model.scenario.key'; LoadGen ignores it")
            continue
        model, scenario, name = parts
        if model not in (MODEL_NAME, "*"):
            continue
        if scenario != "*" and scenario not in SCENARIOS:
            warnings.append(
                f"line {number}: unknown scenario {scenario!r} in {key!r} (expected * or {', '.join(SCENARIOS)}); "
                "LoadGen ignores it"
            )
        elif name == "mode":
            warnings.append(f"line {number}: the run's mode is chosen by the caller; this line has no effect")
        elif name in BUILT_IN_ONLY_KEYS:
            warnings.append(f"line {number}: LoadGen reads {name!r} only from its built-in rules; this line has no effect")
        elif name not in FILE_KEYS:
            warnings.append(f"line {number}: LoadGen has no setting {name!r}; this line has no effect")
    return warnings


def _quick_run_overrides(
    scenario: str, duration_s: float | None, target_qps: float | None, target_latency_ms: float | None
) -> list[Override]:
    for option, value in (("duration_s", duration_s), ("target_qps", target_qps), ("target_latency_ms", target_latency_ms)):
        if value is not None and not (math.isfinite(value) and value > 0):
            raise ConfigError(f"{option} must be a positive number, got {value!r}")
    overrides = []
    if duration_s is not None:
        duration_ms = max(1, round(duration_s * 1000))
        # LoadGen stops issuing at max_duration: twice the minimum bounds the run
        # yet leaves a Server run room to meet its own minimum duration.
        overrides.append(Override("duration_s", duration_s, {
            "min_duration_ms": duration_ms, "max_duration_ms": 2 * duration_ms, "min_query_count": 1,
        }))
    if target_qps is not None:
        attribute = {"Offline": "offline_expected_qps", "Server": "server_target_qps"}.get(scenario)
        if attribute is None:
            raise ConfigError(
                f"--qps (target_qps) applies to Offline and Server only; for {scenario} use --target-latency (target_latency_ms) instead"
            )
        overrides.append(Override("target_qps", target_qps, {attribute: float(target_qps)}))
    if target_latency_ms is not None:
        attribute = {
            "SingleStream": "single_stream_expected_latency_ns",
            "MultiStream": "multi_stream_expected_latency_ns",
            "Server": "server_target_latency_ns",
        }.get(scenario)
        if attribute is None:
            raise ConfigError("--target-latency (target_latency_ms) does not apply to Offline, which has no latency bound; use --qps (target_qps) instead")
        overrides.append(Override("target_latency_ms", target_latency_ms, {attribute: round(target_latency_ms * 1e6)}))
    return overrides

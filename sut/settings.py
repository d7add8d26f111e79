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

import difflib
import errno
import hashlib
import importlib.metadata
import logging
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import mlperf_loadgen as lg

from common.errors import BadInputError
from common.files import read_regular_file
from readback.benchmark import COMMON_SETTINGS, MODEL_NAME
from readback.benchmark import SCENARIOS as BENCHMARK_SCENARIOS
from readback.rules import LOADGEN_REQUIREMENT, RULES_SEEDS, RULES_VERSION
from readback.settings_record import ConfigFile, Override, SettingsRecord

log = logging.getLogger(__name__)

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
DEFAULT_MLPERF_CONF = CONFIG_DIR / "mlperf.conf"
DEFAULT_USER_CONF = CONFIG_DIR / "user.conf"
#: the tuning shipped for each table precision of the folded backend: fp32's in ``user.conf``; bf16 and int8
#: tables run several times faster, so LoadGen must expect more of them (a SingleStream ``target_latency``
#: above the mean latency runs out of prepared queries before ``min_duration``: INVALID)
USER_CONF_BY_PRECISION = {"fp32": DEFAULT_USER_CONF, "bf16": CONFIG_DIR / "user-bf16.conf",
                          "int8": CONFIG_DIR / "user-int8.conf"}


def default_user_conf(precision: str) -> Path:
    """The shipped ``user.conf`` for ``precision`` (:data:`USER_CONF_BY_PRECISION`), fp32's for any other."""
    return USER_CONF_BY_PRECISION.get(precision, DEFAULT_USER_CONF)

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
# Keys FromConfig reads with strtod (any other key with strtoull, Server's target_latency too).
FLOAT_KEYS = frozenset({"target_qps", "target_latency_percentile", "target_latency"})
#: the largest whole number a file may give (LoadGen logs larger ones as negative)
MAX_INTEGER_VALUE = 2**63 - 1
DECIMAL_INTEGER = re.compile(r"^(0|[1-9][0-9]*)$")
HEX_INTEGER = re.compile(r"^0[xX][0-9a-fA-F]+$")
#: the largest config file read (bytes)
MAX_CONFIG_BYTES = 1 << 20
# Keys FromConfig reads only from its built-in rules, never from a file.
BUILT_IN_ONLY_KEYS = frozenset({
    "qsl_rng_seed", "sample_index_rng_seed", "schedule_rng_seed", "accuracy_log_probability",
    "test05", "test05_qsl_rng_seed", "test05_sample_index_rng_seed", "test05_schedule_rng_seed",
})

# TestSettings attributes recorded for every run, then those of the run's scenario.
class ConfigError(BadInputError):
    """A LoadGen config file, scenario, mode or override that cannot be used."""


@dataclass
class RunSettings:
    """The ``TestSettings`` of one run and where their values came from."""

    test_settings: lg.TestSettings
    scenario: str
    mode: str
    config_files: list[ConfigFile]
    overrides: list[Override] = field(default_factory=list)
    #: whether ``server_max_async_queries`` was set by :func:`sut.load_plan.bound_server_backlog`, not a file
    backlog_bound_set: bool = False

    def add_override(self, override: Override) -> None:
        """Apply ``override`` to the ``TestSettings`` and keep it in the record."""
        for name, value in override.sets.items():
            setattr(self.test_settings, name, value)
        self.overrides.append(override)
        log.info("override %s = %g sets %s", override.option, override.value, override.sets)

    def record(self) -> SettingsRecord:
        """Files, overrides and the effective values LoadGen will use, for the run's record."""
        attributes = COMMON_SETTINGS + BENCHMARK_SCENARIOS[self.scenario].settings
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
    the minimum query count, so that a short run is possible: to 1, or in SingleStream and MultiStream to
    the queries LoadGen's early-stopping estimate needs (64 and 662), without which the run is INVALID.
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
        content = read_regular_file(path, MAX_CONFIG_BYTES)
    except OSError as error:
        reason = f"LoadGen config {error}" if error.strerror is None else f"cannot read LoadGen config {path}: {error.strerror}"
        raise ConfigError(
            f"{reason}. Pass a regular text file of at most {MAX_CONFIG_BYTES // 1024} KiB, "
            f"or restore it from {CONFIG_DIR}"
        ) from None
    text = content.decode("utf-8", errors="replace")
    lines, syntax_errors = _settings_lines(text)
    warnings, errors = _check_lines(lines)
    for warning in warnings:
        log.warning("%s: %s", path, warning)
    if not syntax_errors and errors:
        raise ConfigError(f"{path}: " + "; ".join(errors))
    if not syntax_errors and not any(line.model in (MODEL_NAME, "*") for line in lines):
        raise ConfigError(
            f"{path} sets nothing for {MODEL_NAME} (no line 'seq2cnn.<scenario>.<key> = value' or '*.<scenario>.<key> = "
            "value'): LoadGen would fall back to its built-in defaults without a word. Restore the file from "
            f"{CONFIG_DIR}, or pass the right one")
    status = settings.FromConfig(str(path), MODEL_NAME, scenario, FILE)
    if status == -errno.EINVAL:
        raise ConfigError(
            f"LoadGen rejected {path}: " + "; ".join(syntax_errors or ["a line is not 'key = number'"])
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


@dataclass(frozen=True)
class SettingLine:
    """One ``model.scenario.key = value`` line of a config file (``model``, ``scenario``, ``name`` are
    empty when the key does not have three parts)."""

    number: int
    key: str
    value: str

    @property
    def parts(self) -> list[str]:
        """``[model, scenario, key]``; a model name may hold dots (``wan-2.2-t2v-a14b`` does)."""
        parts = self.key.rsplit(".", 2)
        return parts if len(parts) == 3 else ["", "", ""]

    @property
    def model(self) -> str:
        return self.parts[0]

    @property
    def scenario(self) -> str:
        return self.parts[1]

    @property
    def name(self) -> str:
        return self.parts[2]


def _settings_lines(text: str) -> tuple[list[SettingLine], list[str]]:
    """Each setting line and the syntax errors, tokenized the way LoadGen does."""
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
            settings.append(SettingLine(number, tokens[0], tokens[-1]))  # LoadGen keeps the last value
    return settings, errors


def _reads_as_integer(line: SettingLine) -> bool:
    """Whether LoadGen reads the line's value with ``strtoull`` (a whole number), not ``strtod``."""
    if line.name == "target_latency":  # Server's bound is whole milliseconds; SingleStream's and MultiStream's not
        return line.scenario in ("Server", "*")
    return line.name not in FLOAT_KEYS


def _value_error(line: SettingLine) -> str | None:
    """Why LoadGen would not read the line's value as written (truncated, wrapped, overflowed), or None."""
    token = line.value.lstrip("+")
    if _reads_as_integer(line):
        if not (DECIMAL_INTEGER.match(token) or HEX_INTEGER.match(token)):
            return (f"line {line.number}: LoadGen reads {line.name!r} as a whole number: {line.value!r} would be read as "
                    f"something else (it stops at the first character that is not a digit, reads a leading 0 as "
                    f"octal and wraps a minus sign around); write a plain whole number")
        if int(token, 0) > MAX_INTEGER_VALUE:
            return (f"line {line.number}: {line.value} is too large for {line.name!r}: LoadGen would overflow it "
                    f"(at most {MAX_INTEGER_VALUE:,})")
        return None
    value = float(int(token, 0)) if HEX_INTEGER.match(token) else float(token)
    if not math.isfinite(value) or value <= 0:
        return f"line {line.number}: {line.name!r} must be a positive finite number, not {line.value}"
    return None


def _check_lines(lines: list[SettingLine]) -> tuple[list[str], list[str]]:
    """Warnings and errors about the lines of one file that apply to this model.

    Errors: a line meant for this model that LoadGen would ignore or misread (a
    misspelt model name, scenario or key; a value it would truncate, wrap or
    overflow). Warnings: a ``*`` line of a key LoadGen does not read (MLPerf's
    own mlperf.conf has one), or a key it reads only from its built-in rules.
    """
    warnings, errors = [], []
    for line in lines:
        if not line.model:
            meant_here = line.key.split(".")[0] in (MODEL_NAME, "*")
            (errors if meant_here else warnings).append(
                f"line {line.number}: {line.key!r} is not 'model.scenario.key'; LoadGen would ignore it")
            continue
        if line.model not in (MODEL_NAME, "*"):
            if line.model.lower() == MODEL_NAME or difflib.get_close_matches(line.model.lower(), [MODEL_NAME], cutoff=0.7):
                errors.append(f"line {line.number}: model {line.model!r} is not {MODEL_NAME!r}; LoadGen would ignore "
                              "the line (model names are case-sensitive)")
            continue
        problems = errors if line.model == MODEL_NAME else warnings
        if line.scenario != "*" and line.scenario not in SCENARIOS:
            problems.append(f"line {line.number}: unknown scenario {line.scenario!r} in {line.key!r} (expected * or "
                            f"{', '.join(SCENARIOS)}); LoadGen would ignore it")
        elif line.name == "mode":
            warnings.append(f"line {line.number}: the run's mode is chosen by the caller; this line has no effect")
        elif line.name in BUILT_IN_ONLY_KEYS:
            warnings.append(f"line {line.number}: LoadGen reads {line.name!r} only from its built-in rules; "
                            "this line has no effect")
        elif line.name not in FILE_KEYS:
            problems.append(f"line {line.number}: LoadGen has no setting {line.name!r}; the line would have no effect")
        elif (problem := _value_error(line)) is not None:
            errors.append(problem)
    return warnings, errors


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
            "min_duration_ms": duration_ms, "max_duration_ms": 2 * duration_ms,
            "min_query_count": max(1, BENCHMARK_SCENARIOS[scenario].early_stopping_queries),
        }))
    if target_qps is not None:
        attribute = BENCHMARK_SCENARIOS[scenario].rate_setting
        if attribute is None:
            raise ConfigError(
                f"--qps (target_qps) applies to Offline and Server only; for {scenario} use --target-latency (target_latency_ms) instead"
            )
        overrides.append(Override("target_qps", target_qps, {attribute: float(target_qps)}))
    if target_latency_ms is not None:
        attribute = BENCHMARK_SCENARIOS[scenario].latency_setting
        if attribute is None:
            raise ConfigError("--target-latency (target_latency_ms) does not apply to Offline, which has no latency bound; use --qps (target_qps) instead")
        overrides.append(Override("target_latency_ms", target_latency_ms, {attribute: round(target_latency_ms * 1e6)}))
    return overrides


def warn_of_seeds_other_than_the_rules(run_settings: RunSettings) -> None:
    """Warn, before the run, when LoadGen will run with other random seeds than the MLPerf rules this project
    packs for (:mod:`readback.rules`): those built into an mlcommons-loadgen of another round (LoadGen reads
    no seed from the config files)."""
    settings = run_settings.test_settings
    other = {name: getattr(settings, name) for name, value in RULES_SEEDS.items() if getattr(settings, name) != value}
    if other:
        log.warning("the installed LoadGen %s runs with other random seeds than the MLPerf Inference %s rules' (%s): "
                    "MLPerf's checker, the packer and tools.check_submission refuse its logs, whose figures are "
                    "still a measurement. For a submission: pip install '%s'",
                    importlib.metadata.version("mlcommons-loadgen"), RULES_VERSION,
                    ", ".join(f"{name} {value}, the rules' {RULES_SEEDS[name]}" for name, value in other.items()),
                    LOADGEN_REQUIREMENT)


#: settings given to LoadGen (``TestSettings`` attribute) and the name LoadGen logs what it used under
USED_SETTING_NAMES = {
    "offline_expected_qps": "target_qps", "server_target_qps": "target_qps",
    "min_duration_ms": "min_duration_ms", "server_max_async_queries": "max_async_queries",
}


def warn_of_settings_used_otherwise(given: dict[str, int | float], used: dict[str, object]) -> None:
    """Warn when LoadGen logged (``used``, by its log names) that it used another value than the one it was
    ``given`` (by ``TestSettings`` attribute)."""
    for attribute, name in USED_SETTING_NAMES.items():
        value, logged = given.get(attribute), used.get(name)
        if value is None or isinstance(logged, bool) or not isinstance(logged, (int, float)):
            continue
        if abs(float(logged) - float(value)) > 1e-6 * max(1.0, abs(float(value))):
            log.warning("LoadGen used %s = %s, not the %s it was given: see its detail log", name, logged, value)

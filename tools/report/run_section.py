"""One run's section of the report: its verdict and key facts, latency and throughput figures, accuracy,
compliance verdicts and settings (LoadGen's, and where ``run.json`` says they came from)."""

from __future__ import annotations

import dataclasses
import shlex
from collections.abc import Iterable, Mapping

from common.text import ordinal
from readback.accuracy import AccuracyCheckError, read_accuracy_report, verdict_word
from readback.benchmark import SCENARIOS
from readback.cluster import ClusterInfo
from readback.loadgen_log import DETAIL_FILE, SUMMARY_FILE, LoadGenResult
from readback.run_files import ACCURACY_REPORT_FILE, RUN_RECORD_FILE, SUT_TIMINGS_FILE
from readback.run_record import RunRecord
from readback.test01 import ComplianceVerdicts
from tools.report.figures import (
    Marker,
    latency_distribution_png,
    percentile_points_png,
    throughput_png,
)
from tools.report.folders import RunFolder
from tools.report.markup import (
    Page,
    badge,
    collapsible,
    esc,
    mapping_table,
    note,
    table,
    verdict_text,
)


def latency_markers(run: RunFolder) -> list[Marker]:
    """LoadGen's percentiles, the scenario's result when it is a latency, and its latency target, in ms."""
    result = run.result
    target_fraction = run.setting("target_latency_percentile")
    target_percent = 100 * float(target_fraction) if target_fraction else None
    markers = []
    for percent, ns in sorted(result.latencies_ns.items()):
        judged = run.scenario == "Server" and target_percent is not None and abs(percent - target_percent) < 1e-6
        label = f"LoadGen p{percent:g}" + (" (judged against the bound)" if judged else "")
        markers.append(Marker(label, ns / 1e6, "headline" if judged else "percentile"))
    if result.headline is not None and result.headline.unit == "ns":
        markers.append(Marker(f"LoadGen {result.headline.name} (the result)", result.headline.value / 1e6, "headline"))
    if run.scenario == "Server":
        bound_ns = run.setting("target_latency_ns") or run.setting("server_target_latency_ns")
        if bound_ns:
            at = f" at p{target_percent:g}" if target_percent is not None else ""
            markers.append(Marker(f"latency bound{at}", float(bound_ns) / 1e6, "target"))
    elif run.scenario in SCENARIOS and (setting := SCENARIOS[run.scenario].expected_latency_setting) is not None:
        expected_ns = run.setting(setting)  # the expected latency (ns) of a single-query scenario
        if expected_ns:
            markers.append(Marker("expected latency (settings)", float(expected_ns) / 1e6, "expectation"))
    return markers


def throughput_reference(run: RunFolder) -> tuple[str, float] | None:
    """The rate (samples/s) to compare throughput over time with: the Server target rate, or Offline's result."""
    if run.scenario == "Server" and run.setting("target_qps"):
        return "Server target rate", float(run.setting("target_qps"))
    if run.scenario == "Offline" and run.result.headline is not None:
        return "LoadGen result", run.result.headline.value
    return None


def render_latency(run: RunFolder, page: Page, name: str) -> str:
    """The latency distribution and throughput over time, or notes saying why they are missing."""
    if run.mode == "accuracy":
        return note("Accuracy mode: LoadGen measures no latency, so there are no latency or throughput figures.")
    parts = ["<h4>Latency and throughput</h4>"]
    markers = latency_markers(run)
    title = f"{run.scenario} {run.mode}"
    if run.timings is not None and run.timings.issued_ns.size:
        what = "latency as timed by the SUT"
        if run.timings.stride > 1:
            what += f" (every {ordinal(run.timings.stride)} sample, as the submission keeps them)"
        parts.append(page.figure(f"{name}-latency", latency_distribution_png(run.timings.latencies_ms, markers, title, what),
                                 f"{title}: per-sample {what} ({SUT_TIMINGS_FILE}), with LoadGen's percentiles, "
                                 "its result and the latency target"))
        if run.scenario == "MultiStream":
            parts.append(note("MultiStream: the histogram counts samples; LoadGen's percentiles are over queries of "
                              f"{run.setting('samples_per_query') or 8} samples."))
        parts.append(page.figure(f"{name}-throughput", throughput_png(run.timings.completed_ns, throughput_reference(run), title,
                                                                      run.timings.stride),
                                 f"{title}: completed samples per second over the run, as timed by the SUT"))
        return "".join(parts)
    points = [(percent, ns / 1e6) for percent, ns in sorted(run.result.latencies_ns.items())]
    missing = f"No {SUT_TIMINGS_FILE} in this run folder (or it is empty): per-sample latencies are unknown"
    if not points:
        return "".join(parts) + note(f"{missing}, and LoadGen's detail log lists no percentile latencies.")
    parts.append(note(f"{missing}, so this shows LoadGen's percentile latencies from its detail log instead of a "
                      "histogram, and throughput over time is omitted."))
    targets = [m for m in markers if m.kind in ("target", "expectation")]
    parts.append(page.figure(f"{name}-latency-percentiles", percentile_points_png(points, targets, title),
                             f"{title}: LoadGen's percentile latencies and the latency target"))
    return "".join(parts)


def format_result(result: LoadGenResult) -> str:
    """The result as MLPerf defines it, with the plain percentile and Server's tail beside it."""
    if result.headline is None:
        return "n/a"
    extras = [f"{figure.name} {figure.text()}" for figure in (result.percentile, result.tail) if figure is not None]
    return f"{result.headline.name}: {result.headline.text()}" + (f" ({'; '.join(extras)})" if extras else "")


def accuracy_verdict(run: RunFolder) -> tuple[bool | None, str]:
    """Whether the run's accuracy meets the 99% target (None: not judged or unknown), and the accuracy as a short text."""
    if run.record is not None and run.record.accuracy is not None:
        accuracy = run.record.accuracy
        why = f" ({accuracy.not_judged_reason})" if accuracy.passed is None and accuracy.not_judged_reason else ""
        return accuracy.passed, (f"{100 * accuracy.accuracy:.3f}% ({accuracy.correct}/{accuracy.samples}), "
                                 f"{accuracy.verdict}{why}")
    if run.accuracy_text is not None:
        try:
            stated = read_accuracy_report(run.path / ACCURACY_REPORT_FILE)
        except AccuracyCheckError as error:
            return None, str(error)
        return stated.passed, f"{100 * stated.accuracy:.3f}% ({stated.correct}/{stated.total}), {verdict_word(stated.passed)}"
    return None, f"no {ACCURACY_REPORT_FILE}"


def invalid_reasons(run: RunFolder) -> list[str]:
    """Why the run is not VALID: failed checks, what to set when the queries ran out before min_duration, the
    early-stopping hint, LoadGen's errors, a run that did not finish."""
    reasons = [run.result.failed_checks_text()] if run.result.failed_checks else []
    if (advice := run.result.ran_out_of_queries()) is not None:
        reasons.append(advice)
    if run.result.early_stopping:
        reasons.append(f"early stopping: {run.result.early_stopping}")
    reasons += [f"LoadGen error: {error}" for error in run.result.errors]
    if mismatch := run.result.error_count_mismatch():
        reasons.append(mismatch)
    if run.record is not None and run.record.status != "finished":
        reasons.append(f"run.json {run.record.unfinished_reason()}")
    return reasons


def overrides_note(record: RunRecord | None) -> str:
    """Whether the run followed the config files, or was a quick run (with its overrides)."""
    if record is None:
        return note(f"No {RUN_RECORD_FILE}: whether this was a quick run (with overrides) is unknown.")
    if record.settings.overrides:
        listed = ", ".join(f"{override.option}={override.value:g}" for override in record.settings.overrides)
        return f'<p class="quick">Quick run ({esc(listed)}): not valid for submission.</p>'
    return note("No overrides: settings as the config files give them.")


def render_header(run: RunFolder) -> str:
    """The verdict (big, coloured) with its reasons, the quick-run flag and the run's key facts."""
    if run.mode == "accuracy":
        passed, text = accuracy_verdict(run)
        verdict = badge(f"ACCURACY {verdict_word(passed)}", passed) + note(
            f"Accuracy mode: LoadGen does not judge validity; accuracy {text} against the 99% target.")
    else:
        verdict = badge(run.result.validity, run.result.valid)
    if run.compliance is not None:
        verdict += " " + badge(f"{run.compliance.test} {verdict_text(run.compliance.passed)}", run.compliance.passed)
    reasons = invalid_reasons(run)
    parts = [f'<div class="verdict">{verdict}</div>']
    if reasons:
        parts.append('<ul class="reasons">' + "".join(f"<li>{esc(r)}</li>" for r in reasons) + "</ul>")
    parts.append(overrides_note(run.record))
    record = run.record
    facts = {
        "scenario": run.scenario,
        "kind": record.kind if record is not None else run.mode,
        "backend": (f"{record.backend.name} on {record.backend.device}"
                    + (f" ({record.backend.framework})" if record.backend.framework else "")
                    if record is not None else "unknown (no run.json)"),
        **({"cluster": record.cluster.summary() + record.cluster.faults()}
           if record is not None and record.cluster is not None else {}),
        "result": format_result(run.result) if run.mode != "accuracy" else accuracy_verdict(run)[1],
        "samples issued / completed": f"{record.samples.issued} / {record.samples.completed}"
        if record is not None and record.samples is not None else "n/a",
        "started (UTC)": record.started_utc if record is not None else "n/a",
        "wall time": f"{record.wall_seconds} s" if record is not None and record.wall_seconds is not None else "n/a",
        "folder": run.path,
    }
    return "".join(parts) + mapping_table(facts)


def render_cluster(cluster: ClusterInfo) -> str:
    """The Ray cluster of a run: its nodes, and each backend actor's node, process, device and resources."""
    nodes = table(((node.address, node.node_id[:12], f"{node.cpus:g}", f"{node.gpus:g}",
                    f"{node.memory_bytes / 2**30:.1f} GiB") for node in cluster.nodes),
                  ("node", "Ray node id", "CPUs", "GPUs", "memory"))
    actors = table(((actor.index, actor.node_address, actor.pid, actor.device, ", ".join(actor.gpu_ids) or "-",
                     f"{actor.cpus:g}", actor.threads if actor.threads is not None else "-",
                     actor.tables_source or "-") for actor in cluster.actors),
                   ("actor", "node", "pid", "device", "GPU ids", "CPUs", "threads", "tables"))
    return (f"<p>Ray cluster ({esc(cluster.summary() + cluster.faults())}; {cluster.in_flight_per_actor} "
            f"batches in flight per actor):</p>" + nodes + actors)


def render_accuracy(run: RunFolder) -> str:
    accuracy = run.record.accuracy if run.record is not None else None
    if accuracy is None and run.accuracy_text is None:
        return ""
    parts = ["<h4>Accuracy</h4>"]
    if accuracy is not None:
        rows = {
            "accuracy": f"{100 * accuracy.accuracy:.3f}% ({accuracy.correct} of {accuracy.samples} reviews)",
            "fp32 reference accuracy (whole test split)": accuracy.reference_accuracy,
        }
        rows |= {f"{target} of the reference": verdict_word(met) for target, met in accuracy.targets.items()}
        rows["problems in the log"] = "; ".join(accuracy.problems) or "none"
        parts.append(mapping_table(rows))
    if run.accuracy_text is not None:
        parts.append(f"<pre>{esc(run.accuracy_text)}</pre>")
    return "".join(parts)


def render_compliance(results: Iterable[ComplianceVerdicts]) -> str:
    parts = []
    for result in results:
        parts.append(f"<h4>Compliance {esc(result.test)}: {badge(verdict_text(result.passed), result.passed)}</h4>")
        parts.append(table(((check, verdict_text(passed)) for check, passed in result.checks.items()), ("check", "verdict")))
        parts += [collapsible(name, text) for name, text in result.texts.items()]
    return "".join(parts)


def detail_settings(detail: Mapping[str, object], prefix: str) -> dict[str, object]:
    """The detail log's settings logged under ``prefix`` (``effective_`` or ``requested_``), without it."""
    return {key.removeprefix(prefix): value for key, value in detail.items() if key.startswith(prefix)}


def render_record(record: RunRecord) -> str:
    """What ``run.json`` says of where the run's settings came from, the backend, versions and machine."""
    settings = record.settings
    parts = ["<p>Config files, in loading order:</p>",
             table(((str(f.path), f.sha256) for f in settings.config_files), ("file", "sha256"))]
    if settings.overrides:
        parts.append("<p>Overrides:</p>" + table(((o.option, o.value, o.sets) for o in settings.overrides),
                                                 ("option", "value", "sets")))
    sections = {
        "Backend": dataclasses.asdict(record.backend),
        "SUT batching": dataclasses.asdict(record.sut),
        "Dataset": dataclasses.asdict(record.dataset),
        "Samples (SUT bookkeeping)": dataclasses.asdict(record.samples) if record.samples is not None else None,
        "Versions": record.versions,
        "Git": record.git,
        "Machine": record.machine,
    }
    for title, values in sections.items():
        if values:
            parts.append(f"<p>{esc(title)}:</p>" + mapping_table(values))
        if title == "SUT batching" and record.cluster is not None:
            parts.append(render_cluster(record.cluster))
    parts.append(f"<p>Command:</p><pre>{esc(shlex.join(record.command))}</pre>")
    return "".join(parts)


def render_settings(run: RunFolder) -> str:
    parts = ["<h4>Settings</h4>"]
    effective = detail_settings(run.detail, "effective_")
    if effective:
        parts.append(f"<p>Effective LoadGen settings, as LoadGen logged them ({esc(DETAIL_FILE)}):</p>")
        parts.append(mapping_table(effective))
        parts.append(collapsible("requested settings (TestSettings as passed to LoadGen)",
                                 "\n".join(f"{k} = {v}" for k, v in detail_settings(run.detail, "requested_").items())))
    elif run.record is not None:
        parts.append(f"<p>Settings passed to LoadGen ({esc(RUN_RECORD_FILE)}):</p>" + mapping_table(run.record.settings.effective))
    if run.record is not None:
        parts.append(render_record(run.record))
    if (run.path / SUMMARY_FILE).is_file():
        parts.append(collapsible(SUMMARY_FILE, (run.path / SUMMARY_FILE).read_text(encoding="utf-8", errors="replace")))
    return "".join(parts)


def render_run(run: RunFolder, page: Page, name: str, heading: str, level: int = 2) -> str:
    """One run's section: header, latency and throughput, accuracy, compliance, settings."""
    body = [render_header(run), render_latency(run, page, name), render_accuracy(run),
            render_compliance([run.compliance] if run.compliance else []), render_settings(run)]
    return f'<section id="{esc(name)}"><h{level}>{esc(heading)}</h{level}>{"".join(body)}</section>'

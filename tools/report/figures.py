"""The run report's figures, drawn with matplotlib's Agg canvas and returned as PNG bytes.

Used by :mod:`tools.report`; each function draws one figure and returns it as
PNG bytes, so the report can both save the file and embed it in the page.
No pyplot state is used (``Figure`` + ``FigureCanvasAgg``), so nothing needs a
display and nothing leaks between figures.

- :func:`latency_distribution_png`: histogram and CDF of per-sample latencies
  (ms) with vertical lines at given latencies (LoadGen's percentiles, the
  latency target);
- :func:`percentile_points_png`: the fallback when there are no per-sample
  timings: LoadGen's percentile latencies (ms) as points;
- :func:`throughput_png`: completed samples per second in time bins.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

#: How each kind of marker is drawn: colour and line style.
MARKER_STYLES = {
    "percentile": {"color": "0.35", "linestyle": "--", "linewidth": 1.0},
    "headline": {"color": "tab:blue", "linestyle": "-", "linewidth": 1.8},
    "target": {"color": "tab:red", "linestyle": "-", "linewidth": 2.0},
    "expectation": {"color": "tab:orange", "linestyle": ":", "linewidth": 2.0},
}
#: The throughput figure has at most this many time bins ...
THROUGHPUT_BINS = 60
#: ... and at least this many completed samples per bin on average.
SAMPLES_PER_BIN = 100
HISTOGRAM_BINS = 80
#: The histogram's count axis is logarithmic when its fullest bin holds this many times its emptiest non-empty one.
LOG_SCALE_SPREAD = 20
#: Shares of samples marked on the CDF's logit axis.
CDF_TICKS = (0.001, 0.01, 0.1, 0.5, 0.9, 0.99, 0.999, 0.9999)
DPI = 100


@dataclass(frozen=True)
class Marker:
    """A vertical line on a latency axis.

    ``kind`` is a key of :data:`MARKER_STYLES`: ``percentile`` (one of
    LoadGen's), ``headline`` (LoadGen's percentile at the target percentile),
    ``target`` (a latency bound) or ``expectation`` (an expected latency).
    """

    label: str
    ms: float
    kind: str = "percentile"


def _png(figure: Figure) -> bytes:
    """The figure rendered as PNG bytes (no software metadata, so the bytes hold no URL)."""
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    return buffer.getvalue()


def _draw_markers(axes, markers: Sequence[Marker]) -> None:
    for marker in markers:
        axes.axvline(marker.ms, label=f"{marker.label}: {marker.ms:.3f} ms", **MARKER_STYLES[marker.kind])


def latency_distribution_png(latencies_ms: np.ndarray, markers: Sequence[Marker], title: str, what: str) -> bytes:
    """Histogram (left) and CDF (right) of ``latencies_ms`` (ms, one per sample), with ``markers``.

    ``what`` names the latencies on the x axis (e.g. "latency as timed by the
    SUT"). The x range covers every sample and every marker; the CDF's y axis
    is a logit scale, so that the tail (p99, p99.9) is as readable as the median.
    """
    figure = Figure(figsize=(12, 4.4))
    histogram, cdf = figure.subplots(1, 2)
    values = np.sort(np.asarray(latencies_ms, dtype=np.float64))
    high = max([float(values[-1])] + [m.ms for m in markers]) * 1.03
    counts, _, _ = histogram.hist(values, bins=HISTOGRAM_BINS, range=(0.0, high), color="tab:cyan",
                                  edgecolor="white", linewidth=0.3)
    if counts.max() > LOG_SCALE_SPREAD * counts[counts > 0].min():
        histogram.set_yscale("log")  # a long tail of rare slow samples stays visible
    histogram.set_xlabel(f"{what} (ms)")
    histogram.set_ylabel("samples per bin")
    histogram.set_title(f"histogram of {values.size:,} samples")
    ranks = (np.arange(values.size) + 0.5) / values.size  # midpoint ranks stay inside (0, 1) for the logit scale
    cdf.plot(values, ranks, color="tab:cyan", linewidth=1.6, label="samples")
    cdf.set_yscale("logit")
    ticks = [share for share in CDF_TICKS if ranks[0] <= share <= ranks[-1]]
    cdf.set_yticks(ticks, [f"{100 * share:g}%" for share in ticks])
    cdf.minorticks_off()
    cdf.set_xlim(0.0, high)
    cdf.set_xlabel(f"{what} (ms)")
    cdf.set_ylabel("share of samples at or below")
    cdf.set_title("cumulative distribution")
    for axes in (histogram, cdf):
        _draw_markers(axes, markers)
        axes.grid(alpha=0.3)
    cdf.legend(fontsize=7, loc="lower right")
    figure.suptitle(title)
    figure.tight_layout()
    return _png(figure)


def percentile_points_png(points: Sequence[tuple[float, float]], markers: Sequence[Marker], title: str) -> bytes:
    """LoadGen's percentile latencies as points: ``points`` are ``(percentile in %, latency in ms)``.

    ``markers`` (the latency target, an expected latency) become horizontal lines here,
    since latency is on the y axis.
    """
    figure = Figure(figsize=(8, 4.4))
    axes = figure.subplots()
    positions = np.arange(len(points))
    latencies = [ms for _, ms in points]
    axes.plot(positions, latencies, marker="o", color="tab:blue", label="LoadGen percentile latency")
    for position, ms in zip(positions, latencies):
        axes.annotate(f"{ms:.3f}", (position, ms), textcoords="offset points", xytext=(0, 6), ha="center", fontsize=8)
    for marker in markers:
        axes.axhline(marker.ms, label=f"{marker.label}: {marker.ms:.3f} ms", **MARKER_STYLES[marker.kind])
    axes.set_xticks(positions, [f"p{percentile:g}" for percentile, _ in points])
    axes.set_ylim(0.0, max(latencies + [m.ms for m in markers]) * 1.15)
    axes.set_xlabel("percentile (LoadGen summary)")
    axes.set_ylabel("latency (ms)")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8, loc="upper left")
    axes.set_title(title)
    figure.tight_layout()
    return _png(figure)


def nice_bin_width_s(span_s: float, bins: int) -> float:
    """A bin width in seconds of 1, 2 or 5 times a power of ten, giving about ``bins`` bins over ``span_s``."""
    raw = max(span_s, 1e-6) / bins
    power = 10.0 ** math.floor(math.log10(raw))
    return next(step * power for step in (1, 2, 5, 10) if step * power >= raw)


def throughput_bin_edges_s(completed_s: np.ndarray) -> np.ndarray:
    """Bin edges (s) from 0 to the last completion, of :func:`nice_bin_width_s` width.

    There are at most :data:`THROUGHPUT_BINS` bins and at least
    :data:`SAMPLES_PER_BIN` samples per bin on average, so that the batches of a
    short run do not show as spikes; a last bin shorter than half a width joins
    the one before it.
    """
    end_s = max(float(completed_s.max()), 1e-6)
    bins = max(1, min(THROUGHPUT_BINS, completed_s.size // SAMPLES_PER_BIN))
    width = nice_bin_width_s(end_s, bins)
    edges = np.arange(0.0, end_s, width)
    if len(edges) > 1 and end_s - edges[-1] < width / 2:
        edges[-1] = end_s
        return edges
    return np.append(edges, end_s)


def throughput_png(completed_ns: np.ndarray, reference: tuple[str, float] | None, title: str, stride: int = 1
                   ) -> bytes:
    """Completed samples per second over the run, in the bins of :func:`throughput_bin_edges_s`.

    ``completed_ns`` holds each sample's completion time (ns since the run's
    first issue), or every ``stride``-th sample's (each then counts ``stride``
    times); ``reference`` is an optional ``(label, samples/s)`` drawn as a
    horizontal line (e.g. LoadGen's result or the Server target rate).
    """
    seconds = np.asarray(completed_ns, dtype=np.float64) / 1e9
    edges = throughput_bin_edges_s(seconds)
    counts, _ = np.histogram(seconds, bins=edges)
    rates = counts * stride / np.diff(edges)
    mean_rate = seconds.size * stride / edges[-1]
    figure = Figure(figsize=(12, 4.2))
    axes = figure.subplots()
    axes.stairs(rates, edges, fill=True, color="tab:green", alpha=0.55,
                label=f"completed samples/s (bins of {edges[1] - edges[0]:g} s)")
    axes.axhline(mean_rate, color="tab:green", linestyle="--", linewidth=1.2,
                 label=f"mean over the run: {mean_rate:,.1f} samples/s")
    if reference is not None:
        label, rate = reference
        axes.axhline(rate, color="tab:red", linestyle=":", linewidth=2.0, label=f"{label}: {rate:,.1f} samples/s")
    axes.set_xlabel("time since the first query was issued (s)")
    axes.set_ylabel("samples/s")
    axes.set_xlim(0.0, edges[-1])
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=3)
    axes.set_title(title)
    figure.tight_layout()
    return _png(figure)

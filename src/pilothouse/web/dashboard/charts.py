"""Charts drawn on the server as inline SVG: no front-end library, nothing fetched, works
with no internet. Values in, markup out (autoescaped callers mark it safe)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup


@dataclass(frozen=True, slots=True)
class Marker:
    """Something that happened on the time axis (drift detected): from `start` to `end`
    (None: still going), both in steps of the chart's labels (fractions allowed), with a
    short `label` drawn by the line and a `title` shown on hover."""

    start: float
    end: float | None
    label: str
    title: str


def sparkline(values: Sequence[float | None], *, width: int = 120, height: int = 24) -> Markup:
    """A small line for a table cell; gaps (None) break the line."""
    points = [v for v in values if v is not None]
    if not points:
        return Markup('<span class="muted">no data</span>')
    low, high = min(points), max(points)
    span = (high - low) or 1.0
    step = width / max(len(values) - 1, 1)
    segments: list[list[str]] = [[]]
    for i, value in enumerate(values):
        if value is None:
            segments.append([])
            continue
        y = height - 2 - (value - low) / span * (height - 4)
        segments[-1].append(f"{i * step:.1f},{y:.1f}")
    lines = "".join(
        f'<polyline fill="none" stroke="currentColor" stroke-width="1.5" points="{" ".join(s)}"/>'
        for s in segments
        if s
    )
    return Markup(
        f'<svg class="spark" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="trend">{lines}</svg>'
    )


def line_chart(
    series: dict[str, Sequence[float | None]],
    labels: Sequence[str],
    *,
    threshold: float | None = None,
    unit: str = "",
    markers: Sequence[Marker] = (),
    width: int = 720,
    height: int = 200,
) -> Markup:
    """One or more lines over shared x labels, with an optional horizontal threshold line
    (an SLO target), vertical markers with a shaded span (drift detected, until it
    cleared), axis ticks at the extremes."""
    # A series with no value in the range (say TTFT of plain calls only) is no line.
    series = {name: line for name, line in series.items() if any(v is not None for v in line)}
    values = [v for line in series.values() for v in line if v is not None]
    if not values:
        slo = "" if threshold is None else f" (objective: {threshold:g}{unit})"
        return Markup('<p class="muted">no data in this range{}</p>').format(slo)
    if threshold is not None:
        values.append(threshold)
    unit = Markup.escape(unit)
    labels = [Markup.escape(label) for label in labels]
    low, high = 0.0, max(values) * 1.1 or 1.0
    left, bottom = 48, 20
    plot_w, plot_h = width - left - 8, height - bottom - 8
    count = max(len(labels) - 1, 1)

    def xy(i: int, v: float) -> str:
        return (
            f"{left + i * plot_w / count:.1f},{8 + plot_h - (v - low) / (high - low) * plot_h:.1f}"
        )

    palette = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c"]
    parts = [
        f'<line x1="{left}" y1="{8 + plot_h}" x2="{width - 8}" y2="{8 + plot_h}" stroke="#999"/>',
        f'<text x="4" y="14" class="tick">{high:.0f}{unit}</text>',
        f'<text x="4" y="{8 + plot_h}" class="tick">0{unit}</text>',
    ]
    if labels:
        parts.append(f'<text x="{left}" y="{height - 4}" class="tick">{labels[0]}</text>')
        parts.append(
            f'<text x="{width - 8}" y="{height - 4}" class="tick" text-anchor="end">{labels[-1]}</text>'
        )
    if threshold is not None:
        y = xy(0, threshold).split(",")[1]
        parts.append(
            f'<line x1="{left}" y1="{y}" x2="{width - 8}" y2="{y}" stroke="#dc2626" '
            f'stroke-dasharray="4 3"/><text x="{width - 10}" y="{float(y) - 3}" class="tick" '
            f'text-anchor="end">SLO {threshold:g}{unit}</text>'
        )
    for n, marker in enumerate(markers):
        x0 = left + min(max(marker.start, 0.0), count) * plot_w / count
        x1 = (
            left
            + min(max(count if marker.end is None else marker.end, 0.0), count) * plot_w / count
        )
        title = f"<title>{Markup.escape(marker.title)}</title>"
        parts.append(
            f'<g class="marker"><rect x="{x0:.1f}" y="8" width="{max(x1 - x0, 1.0):.1f}" '
            f'height="{plot_h}" fill="#f59e0b" fill-opacity="0.12"/>'
            f'<line x1="{x0:.1f}" y1="8" x2="{x0:.1f}" y2="{8 + plot_h}" stroke="#d97706" '
            f'stroke-width="1.5" stroke-dasharray="3 2"/>'
            f'<text x="{x0 + 3:.1f}" y="{20 + 11 * (n % 4)}" class="tick" fill="#b45309">'
            f"{Markup.escape(marker.label)}</text>{title}</g>"
        )
    legend = []
    for n, (name, line) in enumerate(series.items()):
        color = palette[n % len(palette)]
        points = " ".join(xy(i, v) for i, v in enumerate(line) if v is not None)
        parts.append(
            f'<polyline fill="none" stroke="{color}" stroke-width="1.5" points="{points}"/>'
        )
        legend.append(f'<span style="color:{color}">&#9632; {Markup.escape(name)}</span>')
    svg = (
        f'<svg class="chart" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'role="img">{"".join(parts)}</svg>'
    )
    return Markup(f"<figure>{svg}<figcaption>{' '.join(legend)}</figcaption></figure>")

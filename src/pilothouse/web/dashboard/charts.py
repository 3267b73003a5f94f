"""Charts drawn on the server as inline SVG: no front-end library, nothing fetched, works
with no internet. Values in, markup out (autoescaped callers mark it safe)."""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup


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
    width: int = 720,
    height: int = 200,
) -> Markup:
    """One or more lines over shared x labels, with an optional horizontal threshold line
    (an SLO target), axis ticks at the extremes."""
    values = [v for line in series.values() for v in line if v is not None]
    if threshold is not None:
        values.append(threshold)
    if not values:
        return Markup('<p class="muted">no data in this range</p>')
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

"""Line charts as inline SVG, drawn on the server: no JavaScript library, no CDN.

Each point is a `<circle>` carrying its series, step and value (`data-*` attributes), so the
page is testable and the numbers are one hover away (`<title>`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection
from html import escape

COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf")
WIDTH, HEIGHT = 640, 260
# Beyond this a value is not drawn: the axis span of -1e308..1e308 overflows to infinity.
MAX_PLOTTED = 1e300


def _plottable(point: tuple[float, float]) -> bool:
    return all(math.isfinite(v) and abs(v) <= MAX_PLOTTED for v in point)


LEFT, RIGHT, TOP, BOTTOM = 64, 16, 28, 36
# The legend sits in rows under the title, above the plot: it never covers a line.
LEGEND_Y, LEGEND_LINE, LEGEND_CHAR, LEGEND_GAP = 30, 14, 6.2, 18


def _legend_places(names: Collection[str]) -> dict[str, tuple[int, float]]:
    """Each legend entry's (row, x): left to right, wrapped at the chart's width."""
    places: dict[str, tuple[int, float]] = {}
    row, x = 0, float(LEFT)
    for name in names:
        width = len(name) * LEGEND_CHAR
        if x > LEFT and x + width > WIDTH - RIGHT:
            row, x = row + 1, float(LEFT)
        places[name] = (row, x)
        x += width + LEGEND_GAP
    return places


def _ticks(low: float, high: float, count: int = 5) -> list[float]:
    if high <= low:
        return [low]
    raw = (high - low) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.ceil(low / step) * step
    ticks, value = [], first
    while value <= high + step * 1e-9:
        ticks.append(round(value, 12))
        value += step
    return ticks


def _label(value: float) -> str:
    return f"{value:.4g}"


def line_chart(
    title: str,
    series: dict[str, list[tuple[float, float]]],
    css_class: str = "point",
    *,
    x_label: str = "global step",
    x_format: Callable[[float], str] | None = None,
    markers: Collection[str] = (),
    x_ticks: list[float] | None = None,
    colors: dict[str, str] | None = None,
) -> str:
    """An SVG chart of `{series name: [(x, value), ...]}` (x: the global step by default;
    `x_format` labels the x ticks and points otherwise, e.g. as dates); series named in
    `markers` are drawn as points only, marking points of the others; `x_ticks` places the
    x ticks (e.g. at midnights), `colors` fixes a series' color. An empty chart says so."""
    x_text = x_format or (lambda x: f"{x:g}")
    points = [p for values in series.values() for p in values if _plottable(p)]
    skipped = sum(len(values) for values in series.values()) - len(points)
    legend = _legend_places(series) if points else {}
    rows = max((row for row, _ in legend.values()), default=-1) + 1
    top = LEGEND_Y + LEGEND_LINE * (rows - 1) + 12 if rows else TOP
    height = HEIGHT + top - TOP
    head = (
        f'<svg class="chart" role="img" aria-label="{escape(title)}" width="{WIDTH}" '
        f'height="{height}" viewBox="0 0 {WIDTH} {height}" xmlns="http://www.w3.org/2000/svg">'
        f'<text x="{LEFT}" y="16" class="chart-title">{escape(title)}</text>'
    )
    if not points:
        return head + f'<text x="{LEFT}" y="{HEIGHT // 2}">no data yet</text></svg>'
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x_low, x_high = min(xs), max(xs)
    y_low, y_high = min(ys), max(ys)
    if x_high == x_low:
        x_low, x_high = x_low - 1, x_high + 1
    if y_high == y_low:
        y_low, y_high = y_low - abs(y_low) * 0.1 - 1e-3, y_high + abs(y_high) * 0.1 + 1e-3
    # a little room around the data, so points on the edges are not cut
    x_pad, y_pad = (x_high - x_low) * 0.03, (y_high - y_low) * 0.06
    x_low, x_high, y_low, y_high = x_low - x_pad, x_high + x_pad, y_low - y_pad, y_high + y_pad
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def sx(x: float) -> float:
        return LEFT + (x - x_low) / (x_high - x_low) * plot_w

    def sy(y: float) -> float:
        return top + (1 - (y - y_low) / (y_high - y_low)) * plot_h

    parts = [head, '<g class="axes" stroke="#999" stroke-width="1">']
    parts.append(
        f'<line x1="{LEFT}" y1="{top + plot_h}" x2="{LEFT + plot_w}" y2="{top + plot_h}"/>'
    )
    parts.append(f'<line x1="{LEFT}" y1="{top}" x2="{LEFT}" y2="{top + plot_h}"/></g>')
    for tick in _ticks(y_low, y_high):
        y = sy(tick)
        parts.append(
            f'<line x1="{LEFT}" y1="{y:.1f}" x2="{LEFT + plot_w}" y2="{y:.1f}" stroke="#eee"/>'
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11">'
            f"{_label(tick)}</text>"
        )
    ticks = [t for t in x_ticks if x_low <= t <= x_high] if x_ticks else None
    for tick in ticks or _ticks(x_low, x_high):
        x = sx(tick)
        parts.append(
            f'<text x="{x:.1f}" y="{top + plot_h + 16}" text-anchor="middle" font-size="11">'
            f"{escape(x_format(tick)) if x_format else _label(tick)}</text>"
        )
    parts.append(
        f'<text x="{LEFT + plot_w / 2:.0f}" y="{height - 4}" text-anchor="middle" '
        f'font-size="11">{escape(x_label)}</text>'
    )
    for index, (name, values) in enumerate(series.items()):
        color = (colors or {}).get(name) or COLORS[index % len(COLORS)]
        finite = sorted(p for p in values if _plottable(p))
        marker = name in markers
        if len(finite) > 1 and not marker:
            path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in finite)
            parts.append(
                f'<polyline fill="none" stroke="{color}" stroke-width="1.5" points="{path}"/>'
            )
        for x, y in finite:
            at = escape(x_text(x)) if x_format else f"step {x:g}"
            parts.append(
                f'<circle class="{css_class}" data-series="{escape(name)}" data-step="{x:g}" '
                f'data-value="{y!r}" cx="{sx(x):.1f}" cy="{sy(y):.1f}" '
                f'r="{6 if marker else 3}" fill="{"none" if marker else color}" '
                f'stroke="{color}" stroke-width="{2 if marker else 0}">'
                f"<title>{escape(name)} at {at}: {_label(y)}</title></circle>"
            )
        row, legend_x = legend[name]
        parts.append(
            f'<text x="{legend_x:.0f}" y="{LEGEND_Y + LEGEND_LINE * row}" class="legend" '
            f'font-size="11" fill="{color}">{escape(name)}</text>'
        )
    if skipped:
        parts.append(
            f'<text x="{LEFT + 4}" y="{top + plot_h - 4}" font-size="11" class="not-drawn">'
            f"{skipped} point(s) not drawn (NaN, infinite or beyond ±1e300)</text>"
        )
    parts.append("</svg>")
    return "".join(parts)

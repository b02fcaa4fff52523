"""Plots as inline SVG, drawn on the server: no script, no library in the browser.

Readable without colour: each series has its own line style (solid, dashed) and is named
in a legend written out in words and in the SVG's title; the axes carry numbers. The
markup is built with :mod:`markupsafe` (Jinja2's), so every text in it is escaped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from markupsafe import Markup, escape

if TYPE_CHECKING:
    from callgate.engine.guardrails import BreakerPolicy

WIDTH, HEIGHT = 720, 220
LEFT, RIGHT, TOP, BOTTOM = 48, 12, 12, 28


@dataclass(frozen=True)
class Series:
    name: str
    points: Sequence[tuple[float, float]]  # (x, y)
    dashed: bool = False


def _nice(top: float) -> float:
    """A round number at least ``top`` for the y axis's end."""
    if top <= 0:
        return 1.0
    step = 10.0 ** len(str(int(top))) / 10
    for m in (1.0, 2.0, 2.5, 5.0, 10.0):
        if m * step >= top:
            return float(m * step)
    return 10.0 * step  # pragma: no cover (the loop ends at 10 x step)


def _fmt(v: float) -> str:
    return f"{v:.0f}" if v == int(v) else f"{v:.2f}".rstrip("0").rstrip(".")


def line_plot(
    series: Sequence[Series],
    *,
    title: str,
    x_label: str,
    y_label: str,
    x_ticks: Sequence[tuple[float, str]],
    x_range: tuple[float, float],
) -> Markup:
    """An SVG line plot of ``series`` (the first solid, the others as they say)."""
    x0, x1 = x_range
    y_top = _nice(max((y for s in series for _, y in s.points), default=0.0))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def px(x: float) -> float:
        return LEFT + (x - x0) / ((x1 - x0) or 1) * plot_w

    def py(y: float) -> float:
        return TOP + plot_h - min(y, y_top) / y_top * plot_h

    legend = "; ".join(f"{s.name} ({'dashed' if s.dashed else 'solid'} line)" for s in series)
    parts = [
        f'<svg class="plot" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(title)}: {escape(legend)}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(title)}</title>",
        f'<line class="axis" x1="{LEFT}" y1="{TOP + plot_h}" x2="{WIDTH - RIGHT}" '
        f'y2="{TOP + plot_h}"/>',
        f'<line class="axis" x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{TOP + plot_h}"/>',
    ]
    for frac in (0, 0.5, 1):
        y = y_top * frac
        parts.append(
            f'<text class="tick" x="{LEFT - 4}" y="{py(y) + 4:.1f}" text-anchor="end">'
            f"{_fmt(y)}</text>"
        )
    for x, label in x_ticks:
        parts.append(
            f'<text class="tick" x="{px(x):.1f}" y="{HEIGHT - 8}" text-anchor="middle">'
            f"{escape(label)}</text>"
        )
    parts.append(
        f'<text class="tick" x="{LEFT + 4}" y="{TOP + 10}">{escape(y_label)}</text>'
        f'<text class="tick" x="{WIDTH - RIGHT}" y="{TOP + 10}" text-anchor="end">'
        f"x: {escape(x_label)}</text>"
    )
    for s in series:
        if not s.points:
            continue
        path = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in s.points)
        style = ' stroke-dasharray="6 4"' if s.dashed else ""
        cls = "series dashed" if s.dashed else "series"
        parts.append(
            f'<polyline class="{cls}" fill="none" points="{path}"{style}>'
            f"<title>{escape(s.name)}</title></polyline>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def breaker_threshold(sends: Sequence[int], policy: BreakerPolicy) -> list[float]:
    """Per minute, about where the anomaly breaker trips: its trip level over the mean of
    the ``baseline_minutes`` before. (The breaker weighs only sends outside batches; the
    plot shows every send, so this is the line to stay under.)"""
    out = []
    for i in range(len(sends)):
        window = sends[max(0, i - policy.baseline_minutes) : i]
        out.append(policy.trip_level(sum(window) / len(window) if window else 0.0))
    return out

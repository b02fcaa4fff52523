"""The dashboard's server-side plots: the breaker's threshold line and the SVG itself."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import replace

from callgate.dashboard.plots import Series, breaker_threshold, line_plot
from callgate.engine.guardrails import BreakerPolicy

SVG = "{http://www.w3.org/2000/svg}"


def test_the_threshold_follows_the_trailing_baseline_with_its_floor_and_ceiling() -> None:
    sends = [0] * 5 + [100] * 5
    policy = BreakerPolicy(factor=10, baseline_minutes=5, min_per_minute=60, baseline_floor=30)
    line = breaker_threshold(sends, policy)
    assert line[0] == 300  # a quiet start: 10x the floor of 30
    assert line[5] == 300  # the five minutes before were empty
    assert line[9] == 10 * (100 * 4 / 5)  # four minutes of 100 in the window of five
    capped = breaker_threshold(sends, replace(policy, ceiling=120))
    assert max(capped) == 120
    floor = breaker_threshold([0], replace(policy, factor=1, baseline_floor=1))
    assert floor == [60]  # never below the minimum that can trip it


def test_a_plot_is_valid_svg_with_named_line_styles_and_escaped_text() -> None:
    svg = line_plot(
        [Series("sends", [(0, 1), (1, 4.5)]), Series("<threshold>", [(0, 3), (1, 3)], dashed=True)],
        title="Sends & more",
        x_label="time",
        y_label="n",
        x_ticks=[(0, "start"), (1, "now")],
        x_range=(0, 1),
    )
    root = ET.fromstring(str(svg))  # well-formed: the texts were escaped
    assert root.get("role") == "img"
    label = root.get("aria-label") or ""
    assert "sends (solid line)" in label
    assert "<threshold> (dashed line)" in label
    lines = root.findall(f"{SVG}polyline")
    assert [p.get("stroke-dasharray") for p in lines] == [None, "6 4"]
    assert root.findtext(f"{SVG}title") == "Sends & more"
    ticks = [t.text for t in root.findall(f"{SVG}text")]
    assert "start" in ticks
    assert "now" in ticks
    assert ticks[:3] == ["0", "2.5", "5"]  # the y axis: 0 to a round number at the top

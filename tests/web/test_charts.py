"""The dashboard's SVG charts: what they draw from the series they are given."""

from __future__ import annotations

from pilothouse.web.dashboard.charts import Marker, line_chart


def test_a_series_without_values_draws_no_line_and_no_legend() -> None:
    chart = line_chart(
        {"route:a": [120.0, None, 180.0], "(none)": [None, None, None]},
        ["10:00", "10:01", "10:02"],
        threshold=1500,
        unit=" ms",
    )
    assert chart.count("<polyline") == 1
    assert "route:a" in chart and "(none)" not in chart
    assert "SLO 1500 ms" in chart


def test_no_value_at_all_is_said_not_drawn_even_with_an_objective() -> None:
    # Plain calls only: no TTFT in the window. An empty plot with its SLO line looked like
    # a chart of nothing at 0 ms.
    chart = line_chart({"(none)": [None, None]}, ["10:00", "10:01"], threshold=1500, unit=" ms")
    assert "<svg" not in chart
    assert chart == '<p class="muted">no data in this range (objective: 1500 ms)</p>'
    assert "objective" not in line_chart({}, [])


def test_every_text_in_a_chart_is_escaped() -> None:
    marker = Marker(start=0, end=None, label="<b>drift</b>", title="<i>t</i>")
    html = str(line_chart({"<s>": [1.0, 2.0]}, ["<x>", "<y>"], unit="<u>", markers=[marker]))
    for raw in ("<s>", "<x>", "<y>", "<u>", "<b>", "<i>"):
        assert raw not in html, raw
    assert "&lt;x&gt;" in html and "&lt;u&gt;" in html

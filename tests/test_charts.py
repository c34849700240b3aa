"""The dashboard's SVG charts (web/charts.py), parsed back with lxml: valid XML, the right
number of bars and points, every label escaped, the same bytes for the same data, a short
"no data yet" for no data, the limit line where it belongs, bounded whatever the input."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from digest.web.charts import (
    MAX_BARS,
    MAX_GROUPS,
    MAX_POINTS,
    Chart,
    Series,
    Threshold,
    bar_chart,
    figure,
    grouped_bars,
    line_chart,
    nice_ticks,
    number,
)

SVG = "{http://www.w3.org/2000/svg}"
WEEKS = ["6 Oct", "13 Oct", "20 Oct", "27 Oct"]
HOSTILE = '<script>alert("x")</script> & "quoted" \'single\''


def tree(chart: Chart) -> etree._Element:
    """The chart's SVG parsed as XML: fails on anything not well-formed."""
    return etree.fromstring(str(chart.svg).encode())


def by_class(root: etree._Element, tag: str, cls: str) -> list[etree._Element]:
    return [e for e in root.iter(f"{SVG}{tag}") if cls in (e.get("class") or "").split()]


def text_of(element: etree._Element) -> str:
    return "".join(str(t) for t in element.itertext())


def texts(root: etree._Element) -> list[str]:
    return [text_of(e) for e in root.iter(f"{SVG}text")]


def test_a_line_chart_has_a_point_per_value_and_a_line_per_series() -> None:
    chart = line_chart("Subscribers", WEEKS, [Series("file", [3, 3, 4, 4]),
                                               Series("signup", [0, 1, 5, 9])], x_name="Week")
    root = tree(chart)
    assert root.tag == f"{SVG}svg" and root.get("role") == "img"
    assert root.get("aria-label") == "Subscribers"
    assert root.find(f"{SVG}title") is not None and root.find(f"{SVG}desc") is not None
    assert len(by_class(root, "polyline", "line")) == 2
    assert len(by_class(root, "circle", "point")) == 8
    assert chart.headers == ("Week", "file", "signup")
    assert chart.rows == [("6 Oct", "3", "0"), ("13 Oct", "3", "1"), ("20 Oct", "4", "5"),
                          ("27 Oct", "4", "9")]
    ticks = [text_of(t) for t in by_class(root, "text", "tick")]
    assert ticks == ["0", "5", "10"]  # round, whole steps covering 0..9
    assert "file" in texts(root) and "signup" in texts(root)  # the legend


def test_grouped_bars_have_a_bar_per_series_per_label() -> None:
    chart = grouped_bars("Sign-ups and unsubscribes", WEEKS,
                         [Series("sign-ups", [4, 0, 2, 7]), Series("unsubscribes", [1, 0, 0, 3])])
    root = tree(chart)
    bars = by_class(root, "rect", "bar")
    assert len(bars) == 8
    heights = [float(b.get("height") or 0) for b in bars]
    # sign-ups of the last week are the tallest; the zeros are flat
    assert max(heights) == heights[6] and heights[2] == heights[3] == 0
    assert [b.findtext(f"{SVG}title") for b in bars][:2] == ["sign-ups, 6 Oct: 4",
                                                             "unsubscribes, 6 Oct: 1"]


def test_a_bar_chart_draws_a_bar_per_label_and_its_value() -> None:
    chart = bar_chart("Per tag", ["every post", "union", "data"], [12, 7, 3],
                      x_name="Tag", value_name="Subscribers")
    root = tree(chart)
    bars = by_class(root, "rect", "bar")
    assert len(bars) == 3
    widths = [float(b.get("width") or 0) for b in bars]
    assert widths[0] > widths[1] > widths[2] > 0
    assert widths[0] / widths[2] == pytest.approx(4, rel=0.05)  # drawn to scale from zero
    assert [t for t in texts(root) if t.isdigit()] == ["12", "7", "3"]
    assert chart.rows == [("every post", "12"), ("union", "7"), ("data", "3")]


def test_every_label_is_escaped() -> None:
    charts = [
        line_chart(HOSTILE, [HOSTILE], [Series(HOSTILE, [1.0])], caption=HOSTILE,
                   threshold=Threshold(0.5, HOSTILE)),
        grouped_bars(HOSTILE, [HOSTILE, "b"], [Series(HOSTILE, [1, 2])]),
        bar_chart(HOSTILE, [HOSTILE], [3], threshold=Threshold(1, HOSTILE)),
    ]
    for chart in charts:
        svg = str(chart.svg)
        assert "<script" not in svg and "&lt;script&gt;" in svg
        root = tree(chart)  # still well-formed: nothing broke out of an attribute
        assert not list(root.iter("script", f"{SVG}script"))
        assert root.get("aria-label", "").startswith('<script>alert("x")')
        html = str(figure(chart))
        assert "<script" not in html and html.count("&lt;script&gt;") >= 2


def test_the_same_data_gives_the_same_bytes() -> None:
    def make() -> list[str]:
        return [str(line_chart("A", WEEKS, [Series("x", [0.1, 0.2, 0.3, 0.35])], percent=True,
                               integer=False, threshold=Threshold(0.3, "limit")).svg),
                str(grouped_bars("B", WEEKS, [Series("y", [1, 2, 3, 4])]).svg),
                str(bar_chart("C", ["a", "b"], [1, 2]).svg)]
    assert make() == make()


def test_no_data_is_a_short_note_not_a_crash() -> None:
    for chart in (line_chart("Empty", [], [Series("x", [])]), line_chart("No series", WEEKS, []),
                  grouped_bars("Empty", [], []), bar_chart("Empty", [], [])):
        root = tree(chart)
        assert texts(root) == ["No data yet"]
        assert chart.rows == []
        assert "<details>" not in str(figure(chart))  # no empty table either


def test_the_limit_line_is_drawn_at_its_value() -> None:
    chart = line_chart("Complaints", WEEKS, [Series("complaints", [0.05, 0.1, 0.0, 0.2])],
                       percent=True, integer=False,
                       threshold=Threshold(0.3, "0.3% complaints: Gmail/Yahoo limit"))
    root = tree(chart)
    (line,) = by_class(root, "line", "threshold")
    grid = {text_of(t): float(t.get("y") or 0) - 4
            for t in by_class(root, "text", "tick")}
    assert float(line.get("y1") or 0) == pytest.approx(grid["0.3%"], abs=0.11)
    assert "0.3% complaints: Gmail/Yahoo limit" in texts(root)
    # the data stay under it, and the axis reaches above it so that it is seen
    assert max(grid, key=lambda t: -grid[t]) != "0.3%"
    assert "Dashed line: 0.3% complaints" in (root.findtext(f"{SVG}desc") or "")
    bars = bar_chart("Rates", ["a"], [1.0], threshold=Threshold(2, "2% bounces"))
    assert len(by_class(tree(bars), "line", "threshold")) == 1
    assert not by_class(tree(line_chart("No limit", WEEKS, [Series("x", [1, 2, 3, 4])])),
                        "line", "threshold")


def test_many_points_are_aggregated_and_many_bars_cut() -> None:
    labels = [f"d{i}" for i in range(1000)]
    chart = line_chart("Long", labels, [Series("n", [1.0] * 1000)], aggregate="sum")
    (line,) = by_class(tree(chart), "polyline", "line")
    points = (line.get("points") or "").split()
    assert len(points) <= MAX_POINTS and len(chart.rows) <= MAX_POINTS
    assert sum(float(row[1]) for row in chart.rows) == 1000  # summed, nothing lost
    bars = grouped_bars("Many", labels, [Series("n", [1.0] * 1000)])
    assert len(by_class(tree(bars), "rect", "bar")) <= MAX_GROUPS
    tags = bar_chart("Tags", labels, list(range(1000)))
    assert len(by_class(tree(tags), "rect", "bar")) == MAX_BARS
    assert len(tags.rows) == 500 and f"first {MAX_BARS} of 1000" in tags.caption
    assert len(str(tags.svg)) < 20_000 and len(str(chart.svg)) < 20_000


def test_long_labels_are_shortened_in_the_svg_and_whole_in_the_table() -> None:
    name = "a-very-long-tag-name-indeed-" * 3
    chart = bar_chart("Tags", [name], [1])
    assert name not in str(chart.svg) and name[:17] + "…" in texts(tree(chart))
    assert chart.rows[0][0] == name.strip()


def test_nice_ticks_and_numbers() -> None:
    assert nice_ticks(0, 0.37) == [0, 0.1, 0.2, 0.3, 0.4]
    assert nice_ticks(0, 9, integer=True) == [0, 5, 10]
    assert nice_ticks(0, 90, integer=True) == [0, 25, 50, 75, 100]
    assert nice_ticks(0, 3, integer=True) == [0, 1, 2, 3]
    assert nice_ticks(0, 0) == [0, 0.25, 0.5, 0.75, 1]
    assert nice_ticks(-5, 5)[0] <= -5 and nice_ticks(-5, 5)[-1] >= 5
    assert number(1234) == "1,234" and number(0.25) == "0.25" and number(0.3, True) == "0.3%"
    assert number(float("nan")) == "0" and number(0.001) == "0.001"


values = st.floats(allow_nan=True, allow_infinity=True) | st.integers(-10**18, 10**18)
labels = st.text(max_size=30)


@settings(max_examples=150, deadline=None)
@given(st.lists(labels, max_size=80),
       st.lists(st.tuples(labels, st.lists(values, max_size=90)), max_size=8),
       st.none() | st.floats(allow_nan=True, allow_infinity=True),
       st.booleans())
def test_any_series_gives_valid_xml(names: list[str], series: list[tuple[str, list[float]]],
                                    limit: float | None, percent: bool) -> None:
    threshold = None if limit is None else Threshold(limit, "limit")
    made = [Series(name, vals) for name, vals in series]
    for chart in (line_chart("t", names, made, percent=percent, threshold=threshold),
                  grouped_bars("t", names, made, percent=percent, threshold=threshold),
                  bar_chart("t", names, made[0].values if made else [], percent=percent,
                            threshold=threshold)):
        root = tree(chart)
        assert root.tag == f"{SVG}svg"
        for e in root.iter():
            for attr in ("x", "y", "width", "height", "cx", "cy", "x1", "y1"):
                if e.get(attr) is not None and e is not root:
                    assert math.isfinite(float(e.get(attr) or 0))
        assert len(str(chart.svg)) < 100_000
        assert all(len(row) == len(chart.headers) for row in chart.rows)


def test_a_series_may_name_its_colour_and_every_colour_is_a_page_variable() -> None:
    chart = grouped_bars("Joins", WEEKS * 20, [Series("in", [1] * 80, "ok"),
                                               Series("out", [1] * 80, "amber")])
    fills = {(b.get("style") or "") for b in by_class(tree(chart), "rect", "bar")}
    assert fills == {"fill:var(--ok, #0f7b3f)", "fill:var(--chart-amber, #b45f00)"}
    plain = str(line_chart("Plain", WEEKS, [Series("a", [1, 2, 3, 4])]).svg)
    assert "var(--link, #1a4fd6)" in plain and 'fill="currentColor"' in plain


def test_a_figure_carries_the_numbers_in_a_table() -> None:
    chart = grouped_bars("Joins", WEEKS, [Series("in", [1, 2, 3, 4]), Series("out", [0, 1, 0, 2])],
                         x_name="Week", caption="Per week.")
    html = etree.fromstring(str(figure(chart)).encode())  # well-formed as XML too
    assert [text_of(th) for th in html.iter("th")][:3] == ["Week", "in", "out"]
    body = [[text_of(cell) for cell in tr] for tr in html.iter("tr")][1:]
    assert body == [list(row) for row in chart.rows] and len(body) == 4
    assert html.find("details/summary") is not None
    assert text_of(html.find("figcaption/h2")) == "Joins"  # type: ignore[arg-type]

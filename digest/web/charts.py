"""Charts for the owner's dashboard, drawn on the server as inline SVG: the page needs no
JavaScript, no image files and no chart library, and the charts follow the page's light or
dark mode because every colour is one of its CSS variables (templates/web/base.html.j2).

Pure functions, no I/O. Every text that reaches the SVG (a tag, a source's name, a label)
is escaped: tags come from posts and sign-ups, that is from strangers. The same data gives
the same bytes (no random ids, no clock, numbers written with fixed precision), and the
size is bounded whatever the input: too many points are aggregated into fewer, too many
bars are cut, every label is shortened. Each chart also comes as rows for an HTML table,
for screen readers and for anyone who wants the exact numbers.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from markupsafe import Markup, escape

MAX_POINTS = 60  # points per line: more are aggregated into this many
MAX_GROUPS = 26  # groups of bars (half a year of weeks)
MAX_BARS = 20  # bars of a bar chart; the rest are only in the table
MAX_SERIES = 6  # lines or bars per group; the rest are only in the table
MAX_ROWS = 500  # rows of the table that goes with a chart
MAX_LABEL = 18  # characters of a label drawn in the SVG (the table has it whole)
MAX_TEXT = 200  # characters of any text kept at all (titles, captions, table cells)
LIMIT = 1e12  # values beyond ± this are drawn at it; NaN is drawn as 0

# The viewBox is small, so that on a phone (about 300 px inside the card) the text is
# drawn at 11-12 px; on a desktop the chart grows to MAX_WIDTH and no further (16-17 px).
WIDTH = 340
HEIGHT = 210
MAX_WIDTH = 440
FONT = 13
CHAR = 7.2  # average width of a character at FONT, to lay out labels without a font
CHAR_SMALL = 6.7  # at FONT - 1

# The page's own colours (base.html.j2), each with its light-mode value for pages that do
# not define it; amber is not one of the page's colours: CSS below gives it a dark-mode value.
COLOURS = {"link": "var(--link, #1a4fd6)", "ok": "var(--ok, #0f7b3f)",
           "amber": "var(--chart-amber, #b45f00)", "bad": "var(--bad, #b42318)",
           "tag": "var(--tag, #33408f)", "muted": "var(--muted, #4b5563)"}
PALETTE = tuple(COLOURS.values())  # in this order unless a series names its colour
DASHES = ("", "6 3", "2 3", "8 3 2 3", "1 2", "4 4")  # a second cue beside the colour
MUTED = "var(--muted, #4b5563)"
LINE = "var(--line, #e3e6eb)"
BAD = "var(--bad, #b42318)"
# a rim of the card's colour around a label drawn over lines, so that it stays readable
HALO = "paint-order:stroke;stroke:var(--card, #ffffff);stroke-width:3px;stroke-linejoin:round"

# What a page showing figure()s adds to its <style>: the amber that is not one of the
# page's colours (lighter in dark mode), and the tables of numbers under the charts.
CSS = """\
:root { --chart-amber: #b45f00; }
@media (prefers-color-scheme: dark) { :root { --chart-amber: #f0a64a; } }
figure.chart { margin: 22px 0 28px; }
figure.chart h2 { font-size: 17px; line-height: 1.3; margin: 0 0 8px; }
figure.chart svg { margin: 4px 0 6px; }
figure.chart p { margin: 6px 0; }
figure.chart details { margin-top: 4px; }
figure.chart summary { color: var(--link); cursor: pointer; font-size: 14px; min-height: 32px; }
.chart-scroll { overflow-x: auto; }
.chart-table { border-collapse: collapse; font-size: 14px; margin: 6px 0; }
.chart-table th, .chart-table td { padding: 4px 10px 4px 0; text-align: right;
  border-bottom: 1px solid var(--line); white-space: nowrap;
  font-variant-numeric: tabular-nums; }
.chart-table thead th { white-space: normal; vertical-align: bottom; font-weight: 600; }
.chart-table th[scope=row], .chart-table thead th:first-child { text-align: left;
  font-weight: normal; white-space: normal; overflow-wrap: break-word; min-width: 6em; }
"""

Aggregate = Literal["sum", "mean", "last", "max"]
Colour = Literal["link", "ok", "amber", "bad", "tag", "muted"]


@dataclass(frozen=True)
class Series:
    """One named line, or one kind of bar, with a value per label of the chart."""

    name: str
    values: Sequence[float]
    colour: Colour | None = None  # one of the page's colours; None: the next of PALETTE


def _colour(series: Series, i: int) -> str:
    return COLOURS.get(series.colour or "", PALETTE[i % len(PALETTE)])


@dataclass(frozen=True)
class Threshold:
    """A limit drawn across the chart as a dashed line, with what it is and whose it is."""

    value: float
    label: str


@dataclass
class Chart:
    """One chart: the SVG to show, and the same numbers as a table (headers and rows)."""

    title: str
    svg: Markup
    caption: str
    headers: tuple[str, ...]
    rows: list[tuple[str, ...]]


# numbers ---------------------------------------------------------------------------------

def _clean(value: float) -> float:
    if not math.isfinite(value):
        return 0.0 if math.isnan(value) else math.copysign(LIMIT, value)
    return max(-LIMIT, min(LIMIT, float(value)))


def _fix(value: float) -> str:
    """A coordinate, with one decimal: the same float always gives the same text."""
    text = f"{value:.1f}"
    return "0.0" if text == "-0.0" else text


def number(value: float, percent: bool = False) -> str:
    """1,234 or 0.25 or 0.3%: at most two decimals, none when the value is whole."""
    value = _clean(value)
    if abs(value - round(value)) < 1e-9:
        text = f"{round(value):,}"
    else:
        text = f"{value:,.2f}".rstrip("0").rstrip(".")
        if text in ("0", "-0"):
            text = f"{value:.2g}"  # a tiny rate still shows as non-zero
    return text + ("%" if percent else "")


def nice_ticks(low: float, high: float, count: int = 4,
               integer: bool = False) -> list[float]:
    """Round tick values covering [low, high]: steps of 1, 2, 2.5 or 5 times a power of ten
    (whole steps only for counts)."""
    low, high = _clean(low), _clean(high)
    if high - low < 1e-6:
        high = low + 1
    raw = (high - low) / max(1, count)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = 10 * magnitude
    for m in (1, 2, 2.5, 5):
        if m * magnitude >= raw and not (integer and m == 2.5 and magnitude < 10):
            step = m * magnitude
            break
    if integer:
        step = max(1.0, float(round(step)))
    start = math.floor(low / step) * step
    end = math.ceil(high / step) * step
    n = min(50, max(1, round((end - start) / step)))
    return [float(f"{start + i * step:.12g}") for i in range(n + 1)]


def _aggregate(values: Sequence[float], how: Aggregate) -> float:
    if how == "sum":
        return sum(values)
    if how == "mean":
        return sum(values) / len(values)
    if how == "max":
        return max(values)
    return values[-1]


def downsample(labels: Sequence[str], series: Sequence[Series], most: int,
               how: Aggregate) -> tuple[list[str], list[Series]]:
    """At most *most* points: consecutive points taken together (summed for counts, the last
    one for levels), each group named by its first label."""
    n = len(labels)
    if n <= most:
        return list(labels), list(series)
    size = math.ceil(n / most)
    starts = range(0, n, size)
    names = [labels[i] if size == 1 else f"{labels[i]} \N{EN DASH}" for i in starts]
    return names, [Series(s.name, [_aggregate(s.values[i:i + size], how) for i in starts],
                          s.colour) for s in series]


# text ------------------------------------------------------------------------------------

# what XML 1.0 does not allow in text at all (escaping cannot help): C0 controls but tab,
# newline and return, lone surrogates, U+FFFE and U+FFFF
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _short(text: str, most: int = MAX_LABEL) -> str:
    """*text* on one line, without what XML cannot carry, cut to *most* characters."""
    text = " ".join(_NOT_XML.sub("\N{REPLACEMENT CHARACTER}", str(text)[:MAX_TEXT * 4]).split())
    return text if len(text) <= most else text[:most - 1] + "…"


def _text(x: float, y: float, text: str, *, anchor: str = "start", size: float = FONT,
          colour: str | None = None, cls: str = "", bold: bool = False) -> str:
    style = f' style="fill:{colour}"' if colour else ""
    weight = ' font-weight="600"' if bold else ""
    klass = f' class="{cls}"' if cls else ""
    return (f'<text x="{_fix(x)}" y="{_fix(y)}" text-anchor="{anchor}" font-size="{size}"'
            f'{weight}{klass}{style}>{escape(text)}</text>')


def _ident(kind: str, title: str) -> str:
    return f"chart-{kind}-" + hashlib.sha256(title.encode("utf-8", "replace")).hexdigest()[:10]


def _frame(kind: str, title: str, desc: str, width: float, height: float,
           body: list[str]) -> Markup:
    """The <svg> element around *body*, labelled for screen readers by its title and desc."""
    ident = _ident(kind, title)
    head = (f'<svg xmlns="http://www.w3.org/2000/svg" class="chart chart-{kind}" '
            f'viewBox="0 0 {_fix(width)} {_fix(height)}" width="100%" role="img" '
            f'aria-label="{escape(_short(title, MAX_TEXT))}" '
            f'aria-describedby="{ident}-desc" '
            f'style="display:block;max-width:{MAX_WIDTH}px;height:auto;overflow:visible" '
            'font-family="inherit" fill="currentColor">'
            f'<title id="{ident}-title">{escape(_short(title, MAX_TEXT))}</title>'
            f'<desc id="{ident}-desc">{escape(_short(desc, MAX_TEXT * 2))}</desc>')
    return Markup(head + "".join(body) + "</svg>")


def _empty(kind: str, title: str, caption: str, headers: tuple[str, ...]) -> Chart:
    svg = _frame(kind, title, "No data yet.", WIDTH, 40, [
        f'<rect x="0.5" y="0.5" width="{WIDTH - 1}" height="39" rx="6" '
        f'style="fill:none;stroke:{LINE}"/>',
        _text(WIDTH / 2, 24, "No data yet", anchor="middle", colour=MUTED, cls="empty")])
    return Chart(_short(title, MAX_TEXT), svg, caption, headers, [])


def _legend(series: Sequence[Series], y: float, line: bool) -> tuple[list[str], float]:
    """Swatches and names in rows across the top; the height they take."""
    parts: list[str] = []
    x, row = 0.0, 0
    for i, one in enumerate(series):
        label = _short(one.name)
        width = 18 + len(label) * CHAR + 14
        if x > 0 and x + width > WIDTH:
            x, row = 0.0, row + 1
        top = y + row * 19
        colour = _colour(one, i)
        if line:
            dash = DASHES[i % len(DASHES)]
            dashed = f";stroke-dasharray:{dash}" if dash else ""
            parts.append(f'<line x1="{_fix(x)}" y1="{_fix(top - 4)}" x2="{_fix(x + 14)}" '
                         f'y2="{_fix(top - 4)}" style="stroke:{colour};stroke-width:2.5'
                         f'{dashed}"/>')
        else:
            parts.append(f'<rect x="{_fix(x)}" y="{_fix(top - 10)}" width="12" height="12" '
                         f'rx="2" style="fill:{colour}"/>')
        parts.append(_text(x + 18, top, label, cls="legend"))
        x += width
    return parts, (row + 1) * 19 + 6 if series else 0


@dataclass(frozen=True)
class _Axis:
    """The value axis of a chart drawn up the left side."""

    ticks: list[float]
    top: float  # y of the highest tick
    bottom: float  # y of the lowest

    def y(self, value: float) -> float:
        low, high = self.ticks[0], self.ticks[-1]
        return self.bottom - (_clean(value) - low) / (high - low) * (self.bottom - self.top)


def _value_axis(values: Sequence[float], threshold: Threshold | None, integer: bool,
                top: float, bottom: float) -> _Axis:
    found = [_clean(v) for v in values]
    if threshold is not None:
        found.append(_clean(threshold.value) * 1.15)
    low, high = min([0.0, *found]), max([0.0, *found])
    return _Axis(nice_ticks(low, high, 4, integer), top, bottom)


def _grid(axis: _Axis, left: float, right: float, percent: bool) -> list[str]:
    parts = []
    for tick in axis.ticks:
        y = axis.y(tick)
        parts.append(f'<line class="grid" x1="{_fix(left)}" y1="{_fix(y)}" x2="{_fix(right)}" '
                     f'y2="{_fix(y)}" style="stroke:{LINE}"/>')
        parts.append(_text(left - 5, y + 4, number(tick, percent), anchor="end",
                           size=FONT - 1, colour=MUTED, cls="tick"))
    return parts


def _threshold(axis: _Axis, threshold: Threshold | None, left: float, right: float) -> list[str]:
    if threshold is None:
        return []
    y = axis.y(threshold.value)
    return [f'<line class="threshold" x1="{_fix(left)}" y1="{_fix(y)}" x2="{_fix(right)}" '
            f'y2="{_fix(y)}" style="stroke:{BAD};stroke-width:1.5;stroke-dasharray:5 3"/>',
            _text(right, y - 4, _short(threshold.label, 40), anchor="end", size=FONT - 1,
                  colour=f"{BAD};{HALO}", cls="threshold-label")]


def _x_labels(labels: Sequence[str], xs: Sequence[float], y: float, room: float) -> list[str]:
    """As many labels under the x axis as fit without overlapping: every k-th."""
    if not labels:
        return []
    widest = max(len(_short(label, 12)) for label in labels) * CHAR_SMALL + 10
    step = max(1, math.ceil(len(labels) * widest / max(room, 1)))
    parts = []
    for i in range(0, len(labels), step):
        label = _short(labels[i], 12)
        half = len(label) * CHAR_SMALL / 2
        x = min(max(xs[i], half), WIDTH - half)  # the first and last stay inside the box
        parts.append(_text(x, y, label, anchor="middle", size=FONT - 1, colour=MUTED,
                           cls="x-label"))
    return parts


def _left(axis: _Axis, percent: bool) -> float:
    return 8 + max(len(number(t, percent)) for t in axis.ticks) * CHAR_SMALL


def _rows(labels: Sequence[str], series: Sequence[Series],
          percent: bool) -> list[tuple[str, ...]]:
    return [(_short(label, MAX_TEXT), *(number(s.values[i], percent) for s in series))
            for i, label in enumerate(labels[:MAX_ROWS])]


def _prepare(labels: Sequence[str], series: Sequence[Series]) -> tuple[list[str], list[Series]]:
    """Every series as long as the labels (missing values are 0), values made finite."""
    names = [str(label) for label in labels]
    return names, [Series(str(s.name), [_clean(s.values[i]) if i < len(s.values) else 0.0
                                        for i in range(len(names))], s.colour)
                   for s in series]


def _description(title: str, labels: Sequence[str], series: Sequence[Series],
                 threshold: Threshold | None, percent: bool) -> str:
    """What the chart shows in one sentence: the span and each series' latest value."""
    latest = "; ".join(f"{_short(s.name)} {number(s.values[-1], percent)}"
                       for s in series[:MAX_SERIES])
    text = f"{_short(labels[0])} to {_short(labels[-1])}. Latest: {latest}."
    if threshold is not None:
        text += f" Dashed line: {_short(threshold.label, 60)}."
    return text


# charts ----------------------------------------------------------------------------------

def line_chart(title: str, labels: Sequence[str], series: Sequence[Series], *,
               caption: str = "", x_name: str = "", percent: bool = False,
               integer: bool = True, threshold: Threshold | None = None,
               aggregate: Aggregate = "last", max_points: int = MAX_POINTS,
               max_series: int = MAX_SERIES) -> Chart:
    """One line per series over *labels* (oldest first), with round ticks up the side and an
    optional dashed limit; more than *max_points* labels are taken together (*aggregate*);
    the first *max_series* series are drawn, the table has them all."""
    labels, series = _prepare(labels, series)
    headers = (x_name or "", *(_short(s.name, MAX_TEXT) for s in series))
    if not labels or not series:
        return _empty("line", title, caption, headers)
    labels, series = downsample(labels, series, max(1, max_points), aggregate)
    shown = series[:max(1, min(max_series, MAX_SERIES))]
    legend, legend_height = _legend(shown, 12, line=True)
    top, bottom = legend_height + 10, HEIGHT - 27
    axis = _value_axis([v for s in shown for v in s.values], threshold, integer and not percent,
                       top, bottom)
    left, right = _left(axis, percent), WIDTH - 6
    n = len(labels)
    xs = [(left + right) / 2] if n == 1 else \
        [left + 6 + i * (right - left - 12) / (n - 1) for i in range(n)]
    body = [*legend, *_grid(axis, left, right, percent)]
    for i, s in enumerate(shown):
        colour, dash = _colour(s, i), DASHES[i % len(DASHES)]
        points = " ".join(f"{_fix(x)},{_fix(axis.y(v))}" for x, v in zip(xs, s.values, strict=True))
        dashed = f";stroke-dasharray:{dash}" if dash else ""
        body.append(f'<polyline class="line" points="{points}" style="fill:none;'
                    f'stroke:{colour};stroke-width:2;stroke-linejoin:round{dashed}"/>')
        if n <= 30:  # dots only while they do not crowd each other
            for x, v, label in zip(xs, s.values, labels, strict=True):
                body.append(f'<circle class="point" cx="{_fix(x)}" cy="{_fix(axis.y(v))}" '
                            f'r="2.5" style="fill:{colour}"><title>{escape(_short(s.name))}, '
                            f'{escape(_short(label))}: {escape(number(v, percent))}</title>'
                            '</circle>')
    body += _threshold(axis, threshold, left, right)
    body += _x_labels(labels, xs, HEIGHT - 8, right - left)
    desc = _description(title, labels, series, threshold, percent)
    return Chart(_short(title, MAX_TEXT), _frame("line", title, desc, WIDTH, HEIGHT, body),
                 caption, headers, _rows(labels, series, percent))


def grouped_bars(title: str, labels: Sequence[str], series: Sequence[Series], *,
                 caption: str = "", x_name: str = "", percent: bool = False,
                 integer: bool = True, threshold: Threshold | None = None,
                 aggregate: Aggregate = "sum", max_groups: int = MAX_GROUPS) -> Chart:
    """Bars side by side per label, one per series (sign-ups beside unsubscribes per week);
    more than *max_groups* labels are taken together (*aggregate*)."""
    labels, series = _prepare(labels, series)
    headers = (x_name or "", *(_short(s.name, MAX_TEXT) for s in series))
    if not labels or not series:
        return _empty("bars", title, caption, headers)
    labels, series = downsample(labels, series, max(1, max_groups), aggregate)
    shown = series[:MAX_SERIES]
    legend, legend_height = _legend(shown, 12, line=False)
    top, bottom = legend_height + 10, HEIGHT - 27
    axis = _value_axis([v for s in shown for v in s.values], threshold, integer and not percent,
                       top, bottom)
    left, right = _left(axis, percent), WIDTH - 6
    group = (right - left) / len(labels)
    width = group * 0.8 / len(shown)
    zero = axis.y(0)
    body = [*legend, *_grid(axis, left, right, percent)]
    for g, label in enumerate(labels):
        for i, s in enumerate(shown):
            v = s.values[g]
            x = left + g * group + group * 0.1 + i * width
            y = min(zero, axis.y(v))
            body.append(f'<rect class="bar" x="{_fix(x)}" y="{_fix(y)}" '
                        f'width="{_fix(max(width - 0.5, 0.5))}" '
                        f'height="{_fix(abs(axis.y(v) - zero))}" '
                        f'style="fill:{_colour(s, i)}"><title>'
                        f'{escape(_short(s.name))}, {escape(_short(label))}: '
                        f'{escape(number(v, percent))}</title></rect>')
    body.append(f'<line x1="{_fix(left)}" y1="{_fix(zero)}" x2="{_fix(right)}" '
                f'y2="{_fix(zero)}" style="stroke:{MUTED}"/>')
    body += _threshold(axis, threshold, left, right)
    centres = [left + (g + 0.5) * group for g in range(len(labels))]
    body += _x_labels(labels, centres, HEIGHT - 8, right - left)
    desc = _description(title, labels, series, threshold, percent)
    return Chart(_short(title, MAX_TEXT), _frame("bars", title, desc, WIDTH, HEIGHT, body),
                 caption, headers, _rows(labels, series, percent))


def bar_chart(title: str, labels: Sequence[str], values: Sequence[float], *,
              caption: str = "", x_name: str = "", value_name: str = "",
              percent: bool = False, threshold: Threshold | None = None,
              max_bars: int = MAX_BARS) -> Chart:
    """One horizontal bar per label, its value at its end: long names (tags) stay readable
    on a phone. The first *max_bars* are drawn (callers sort); the table has them all."""
    names, (only,) = _prepare(labels, [Series(value_name, values)])
    headers = (x_name or "", value_name or "")
    if not names:
        return _empty("hbars", title, caption, headers)
    rows: list[tuple[str, ...]] = [(_short(n, MAX_TEXT), number(v, percent))
                                   for n, v in zip(names[:MAX_ROWS], only.values[:MAX_ROWS],
                                                   strict=True)]
    drawn = list(zip(names, only.values, strict=True))[:max(1, max_bars)]
    label_width = max(len(_short(n)) for n, _ in drawn) * CHAR + 8
    value_width = max(len(number(v, percent)) for _, v in drawn) * CHAR + 8
    left, right = label_width, WIDTH - value_width
    limit = [_clean(threshold.value)] if threshold is not None else []
    high = max([0.0, *(v for _, v in drawn), *limit])
    low = min([0.0, *(v for _, v in drawn), *limit])
    span = high - low if high - low > 1e-9 else 1.0  # a tiny span would blow up to inf

    def x(value: float) -> float:
        return left + (_clean(value) - low) / span * (right - left)

    row, top = 24, 6
    height = top + len(drawn) * row + (18 if threshold is not None else 4)
    body: list[str] = []
    for i, (name, v) in enumerate(drawn):
        y = top + i * row
        start, end = sorted((x(0), x(v)))
        body.append(_text(left - 6, y + 15, _short(name), anchor="end", cls="bar-label"))
        body.append(f'<rect class="bar" x="{_fix(start)}" y="{_fix(y + 3)}" '
                    f'width="{_fix(max(end - start, 0.5))}" height="16" rx="2" '
                    f'style="fill:{PALETTE[0]}"><title>{escape(_short(name))}: '
                    f'{escape(number(v, percent))}</title></rect>')
        body.append(_text(end + 4, y + 15, number(v, percent), colour=MUTED, cls="value"))
    body.append(f'<line x1="{_fix(x(0))}" y1="{top}" x2="{_fix(x(0))}" '
                f'y2="{_fix(top + len(drawn) * row)}" style="stroke:{MUTED}"/>')
    if threshold is not None:
        tx = x(threshold.value)
        body.append(f'<line class="threshold" x1="{_fix(tx)}" y1="{top}" x2="{_fix(tx)}" '
                    f'y2="{_fix(top + len(drawn) * row)}" style="stroke:{BAD};'
                    'stroke-width:1.5;stroke-dasharray:5 3"/>')
        body.append(_text(tx, height - 4, _short(threshold.label, 40), anchor="middle",
                          size=FONT - 1, colour=f"{BAD};{HALO}", cls="threshold-label"))
    more = len(names) - len(drawn)
    if more > 0 and not caption.endswith("table."):
        caption = (caption + " " if caption else "") + \
            f"The first {len(drawn)} of {len(names)} are drawn; all are in the table."
    desc = "; ".join(f"{_short(n)} {number(v, percent)}" for n, v in drawn) + "."
    return Chart(_short(title, MAX_TEXT), _frame("hbars", title, desc, WIDTH, height, body),
                 caption, headers, rows)


def figure(chart: Chart) -> Markup:
    """A chart as a <figure>: its title, the SVG, the caption and the numbers in a <table>
    inside a <details>, every text escaped; for a template to print as it is."""
    head = "".join(f"<th scope=\"col\">{escape(_short(h, MAX_TEXT))}</th>"
                   for h in chart.headers)
    rows = "".join("<tr>" + "".join(
        (f'<th scope="row">{escape(_short(cell, MAX_TEXT))}</th>' if i == 0
         else f"<td>{escape(_short(cell, MAX_TEXT))}</td>")
        for i, cell in enumerate(row)) + "</tr>" for row in chart.rows)
    table = (f'<details><summary>The numbers</summary><div class="chart-scroll">'
             f'<table class="chart-table"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody>'
             "</table></div></details>"
             if chart.rows else "")
    caption = (f'<p class="muted">{escape(_short(chart.caption, MAX_TEXT * 4))}</p>'
               if chart.caption else "")
    title = escape(_short(chart.title, MAX_TEXT))
    return Markup(f'<figure class="chart"><figcaption><h2>{title}</h2></figcaption>'
                  f"{chart.svg}{caption}{table}</figure>")

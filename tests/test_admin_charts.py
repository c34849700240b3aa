"""The dashboard's series (web/admin_charts.py) over a real SQLite state filled through the
SharedState API: members signed up and imported, suppressions, a digest sent with its bounces
and complaints; the numbers are checked in the charts' tables."""

from __future__ import annotations

import os
import random
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from conftest import config_of, make_site
from lxml import etree

from digest.posts.parse import Post
from digest.state.interface import (
    Bounce,
    Member,
    Outcome,
    Recorded,
    Run,
    SharedState,
    Suppression,
)
from digest.state.open import open_state
from digest.subscribers.load import Subscriber
from digest.subscribers.roster import Entry
from digest.web.admin_charts import (
    bounce_rates,
    joins_and_leaves,
    list_over_time,
    overview_charts,
    posts_per_tag,
    tags_wanted,
)
from digest.web.charts import CSS, MAX_WIDTH, Chart, figure
from digest.web.pages import Pages

TZ = ZoneInfo("Europe/Berlin")


@pytest.fixture
def state(tmp_path: Path) -> Iterator[SharedState]:
    opened = open_state(config_of(make_site(tmp_path, {})))
    try:
        yield opened
    finally:
        opened.close()


def post(day: datetime, *tags: str, published: bool = True) -> Post:
    slug = f"p-{day:%Y%m%d%H%M}-{'-'.join(tags)}"
    return Post(path=f"_posts/{slug}.md", date=day, slug=slug, title=slug, tags=tags,
                categories=(), url=f"/{slug}/", ext=".md", excerpt_separator="\n\n",
                published=published)


def member(key: str, since: datetime, source: str = "signup",
           tags: tuple[str, ...] | None = None) -> Member:
    return Member(key, key, None, tags, source, since)  # type: ignore[arg-type]


def fill(state: SharedState, now: datetime) -> list[Subscriber]:
    """Three in the file, three signed up (two this week), two imported; one of the file
    and one signed up unsubscribed, one imported bounced; a digest to six of them."""
    file = [Subscriber("ana@example.org", "Ana", ("union",), line=1),
            Subscriber("ben@example.org", None, None, line=3),
            Subscriber("cy@example.org", None, ("union", "Data"), line=5)]
    state.put_member(member("dee@example.net", now - timedelta(weeks=3), tags=("data",)))
    state.put_member(member("eve@example.net", now - timedelta(minutes=2)))
    state.put_member(member("fay@example.net", now - timedelta(minutes=1), tags=("UNION",)))
    state.put_member(member("gus@example.net", now - timedelta(weeks=5), "import"))
    state.put_member(member("hal@example.net", now - timedelta(weeks=5), "import",
                            tags=("intern", "<script>alert(1)</script>")))
    # in the file and signed up as well: counted once, as the file's
    state.put_member(member("ana@example.org", now - timedelta(weeks=1), tags=("data",)))
    state.suppress("ben@example.org", "unsubscribed on the web (one-click)")
    state.suppress("eve@example.net", "digest unsubscribe")
    state.suppress("gus@example.net", "hard bounce")
    state.set_preferences("cy@example.org", ["data"])  # the web choice wins over the file
    keys = ["ana@example.org", "cy@example.org", "dee@example.net", "fay@example.net",
            "gus@example.net", "hal@example.net"]
    run = state.create_run(slug="2026-w48", start=now - timedelta(weeks=1), end=now,
                           posts=[], subscribers=[(k, k) for k in keys])
    state.record_many(run, [Recorded(Outcome(k, "sent", 250, "ok", 1), f"<{k}>", 1)
                            for k in keys[:4]] +
                      [Recorded(Outcome("gus@example.net", "failed", 550, "no", 1), "<g>", 1)])
    late = datetime.now(UTC) + timedelta(minutes=1)
    state.record_bounce(Bounce("gus@example.net", "hard", late, "dsn", "b1", run="2026-w48"))
    state.record_bounce(Bounce("gus@example.net", "hard", late, "dsn", "b2", run="2026-w48"))
    # no digest named: counted against the latest digest made before it
    state.record_bounce(Bounce("dee@example.net", "complaint", late, "arf", "c1"))
    state.record_bounce(Bounce("fay@example.net", "soft", late, "dsn", "s1", run="2026-w48"))
    return file


def by_title(charts: list[Chart]) -> dict[str, Chart]:
    for chart in charts:
        etree.fromstring(str(chart.svg).encode())  # each one well-formed
    return {chart.title: chart for chart in charts}


def test_the_numbers_in_each_chart(state: SharedState) -> None:
    file = fill(state, datetime.now(TZ))
    now = datetime.now(TZ)  # after the suppressions, which the state stamps itself
    posts = [post(now - timedelta(days=1), "union"), post(now - timedelta(days=1), "Data"),
             post(now - timedelta(weeks=2), "union", "data"),
             post(now - timedelta(weeks=20), "union"),  # before the weeks shown
             post(now + timedelta(days=3), "union"),  # not out yet
             post(now - timedelta(days=2), "union", published=False)]
    charts = by_title(overview_charts(state, file, posts, now))
    assert list(charts) == ["Subscribers over time", "Sign-ups and unsubscribes per week",
                            "Bounces and complaints per digest", "Subscribers per tag",
                            "Posts per tag per week"]

    over_time = charts["Subscribers over time"]
    assert over_time.headers == ("Week ending", "subscribers file", "signed up", "imported")
    # now: the file's three less ben (unsubscribed); dee and fay (eve unsubscribed); hal
    # (gus bounced); five weeks and a half ago: the file only
    assert over_time.rows[-1][1:] == ("2", "2", "1")
    assert over_time.rows[0][1:] == ("3", "0", "0")
    assert len(over_time.rows) == 7
    assert [row[1:] for row in over_time.rows] == [
        ("3", "0", "0"), ("3", "0", "2"), ("3", "0", "2"), ("3", "1", "2"), ("3", "1", "2"),
        ("3", "1", "2"), ("2", "2", "1")]

    joins = charts["Sign-ups and unsubscribes per week"]
    assert len(joins.rows) == 12
    this_week = joins.rows[-1]
    # eve and fay this week (eve since unsubscribed), ana's sign-up counts as the file's;
    # ben and eve unsubscribed (gus bounced: not an unsubscribe)
    assert this_week[1:] == ("2", "2")
    assert sum(int(row[1]) for row in joins.rows) == 3  # dee three weeks ago

    rates = charts["Bounces and complaints per digest"]
    assert rates.headers[:4] == ("Digest", "Sent", "Hard bounces", "Complaints")
    assert "complaints" in rates.svg and "hard bounces" in rates.svg
    # 4 sent; gus bounced (twice, counted once), dee complained
    assert rates.rows == [("2026-w48", "4", "1", "1", "25.00%", "25.00%")]
    assert rates.svg.count('class="threshold"') == 1

    tags = charts["Subscribers per tag"]
    # served: ana (union), cy (data, chosen on the web), dee (data), fay (UNION), hal
    assert tags.rows == [("every post", "0"), ("data", "2"), ("union", "2"),
                         ("<script>alert(1)</script>", "1"), ("intern", "1")]
    assert "<script" not in str(tags.svg) and "&lt;script&gt;" in str(tags.svg)

    per_tag = charts["Posts per tag per week"]
    assert per_tag.headers == ("Week of", "all posts", "Data", "union")
    assert per_tag.rows[-1][1:] == ("2", "1", "1") or per_tag.rows[-2][1:] == ("2", "1", "1")
    assert sum(int(row[1]) for row in per_tag.rows) == 3
    assert sum(int(row[2]) for row in per_tag.rows) == 2  # Data and data: one tag


def test_an_empty_site_gives_empty_charts(state: SharedState) -> None:
    now = datetime.now(TZ)
    charts = by_title(overview_charts(state, [], [], now))
    assert charts["Bounces and complaints per digest"].rows == []
    assert "No data yet" in charts["Bounces and complaints per digest"].svg
    assert charts["Subscribers per tag"].rows == []
    assert all(row[1:] == ("0",) for row in charts["Subscribers over time"].rows)
    assert all(row[1:] == ("0",) for row in charts["Posts per tag per week"].rows)


def test_the_whole_list_as_read_subscribers_gives_it_counts_the_same(
        state: SharedState) -> None:
    """The members read_subscribers appends (no line) are not taken for the file's."""
    file = fill(state, datetime.now(TZ))
    now = datetime.now(TZ)
    from digest.subscribers.current import with_members
    from digest.subscribers.load import SubscriberList

    whole = with_members(SubscriberList(tuple(file), (), ()), state.members()).subscribers
    assert len(whole) > len(file)
    assert [c.rows for c in overview_charts(state, whole, [], now)] == \
        [c.rows for c in overview_charts(state, file, [], now)]


# the charts in a real browser ------------------------------------------------------------

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
PHONE, DESKTOP = (390, 844), (1280, 900)


def sample_charts(now: datetime) -> list[Chart]:
    """Half a year of a small site, made up but plausible (the same every time): a list
    growing from sign-ups and one import, a few unsubscribes, weekly digests with a bad
    week for complaints, posts under a handful of tags."""
    rng = random.Random(17)
    tags = ["union", "data", "remote", "intern", "design", "<script>x</script>"]
    everyone: list[Entry] = []
    for i in range(40):  # the subscribers file
        wanted = None if i % 3 else tuple(rng.sample(tags[:4], 2))
        everyone.append(Entry(f"f{i}", f"f{i}@x.org", None, wanted, (), "yaml", i + 1, None,
                              False, None))
    for i in range(90):
        since = now - timedelta(days=rng.uniform(0, 170) ** 0.9)
        gone = None
        if rng.random() < 0.12:
            gone = Suppression(f"s{i}", since + timedelta(days=rng.uniform(1, 30)),
                               "unsubscribed on the web (one-click)")
            if gone.since > now:
                gone = None
        wanted = None if rng.random() < 0.3 else tuple(rng.sample(tags, rng.randint(1, 3)))
        everyone.append(Entry(f"s{i}", f"s{i}@x.org", None, wanted, (), "signup", None,
                              since, True, gone))
    for i in range(25):
        everyone.append(Entry(f"i{i}", f"i{i}@x.org", None, None, (), "import", None,
                              now - timedelta(weeks=14), False, None))
    unsubscribed = [e.suppression.since for e in everyone if e.suppression is not None]
    runs = [Run(i, f"2026-w{37 + i}", now - timedelta(weeks=12 - i, days=7),
                now - timedelta(weeks=12 - i), now - timedelta(weeks=12 - i), "done")
            for i in range(12)]
    sent = [120 + 6 * i for i in range(12)]
    bounces = [Bounce(f"k{r.id}-{j}", "hard", r.created_at + timedelta(hours=1), "dsn",
                      f"h{r.id}-{j}", run=r.slug) for r in runs for j in range(r.id % 3)]
    bounces += [Bounce(f"c{j}", "complaint", runs[7].created_at + timedelta(hours=2), "arf",
                       f"c{j}", run=runs[7].slug) for j in range(1)]
    posts = [post(now - timedelta(days=rng.uniform(0, 83)), *rng.sample(tags[:5], 2))
             for _ in range(60)]
    return [list_over_time(everyone, now), joins_and_leaves(everyone, unsubscribed, now),
            bounce_rates(runs, sent, bounces), tags_wanted(everyone), posts_per_tag(posts, now)]


def page(charts: list[Chart], tmp_path: Path) -> Path:
    """The charts in the web front's own frame (base.html.j2), as a file."""
    site = config_of(make_site(tmp_path, {})).site
    template = Pages(site, None).env.from_string(
        '{% extends "web/base.html.j2" %}{% block meta %}<style>{{ css }}</style>'
        "{% endblock %}{% block title %}Dashboard{% endblock %}{% block body %}"
        "<h1>Dashboard</h1>{% for chart in charts %}{{ figure(chart) }}{% endfor %}"
        "{% endblock %}")
    path = tmp_path / "dashboard.html"
    path.write_text(template.render(site=site, charts=charts, figure=figure, css=CSS),
                    encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                f"--window-size={PHONE[0]},{PHONE[1]}", "--hide-scrollbars"):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=Service(str(DRIVER)))
    try:
        yield driver
    finally:
        driver.quit()


def shoot(browser: Any, size: tuple[int, int], dark: bool, path: Path) -> None:
    browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": [
        {"name": "prefers-color-scheme", "value": "dark" if dark else "light"}]})
    browser.set_window_size(*size)
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(size[0], max(size[1], height + 100))
    browser.save_screenshot(str(path))
    browser.set_window_size(*size)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000


@pytest.mark.skipif(not (CHROMIUM and DRIVER),
                    reason="needs chromium and chromium-driver (apt-get install)")
def test_the_charts_in_a_browser_light_and_dark_phone_and_desktop(
        browser: Any, tmp_path: Path) -> None:
    """Rendered with no script at all; set DIGEST_SCREENSHOTS=docs/screenshots to keep the
    README's pictures (admin-charts.png, admin-charts-dark.png: a phone's width)."""
    from selenium.webdriver.common.by import By

    now = datetime(2026, 12, 5, 12, tzinfo=TZ)
    browser.get(page(sample_charts(now), tmp_path).as_uri())
    svgs = browser.find_elements(By.CSS_SELECTOR, "figure.chart svg")
    assert len(svgs) == 5
    shots = []
    for size in (PHONE, DESKTOP):
        for dark in (False, True):
            name = "admin-charts" + ("-dark" if dark else "") + \
                ("-desktop" if size == DESKTOP else "")
            shoot(browser, size, dark, tmp_path / f"{name}.png")
            shots.append(tmp_path / f"{name}.png")
            # nothing wider than the screen, every chart drawn at a readable size
            assert browser.execute_script(
                "return document.documentElement.scrollWidth <= window.innerWidth")
            for svg in svgs:
                assert 290 <= svg.size["width"] <= MAX_WIDTH
            colour = browser.execute_script(
                "return getComputedStyle(document.querySelector('.chart-line polyline'))"
                ".stroke")
            assert colour == ("rgb(138, 180, 255)" if dark else "rgb(26, 79, 214)")
    keep = os.environ.get("DIGEST_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        for shot in shots[:2]:
            shutil.copy(shot, Path(keep) / shot.name)
        if os.environ.get("DIGEST_SCREENSHOTS_ALL"):  # the desktop ones too, to look at
            for shot in shots[2:]:
                shutil.copy(shot, Path(keep) / shot.name)

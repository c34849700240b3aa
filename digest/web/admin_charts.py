"""The numbers behind the owner's dashboard (/admin/), read from the shared state and the
posts, as charts (web/charts.py): who is on the list and where they came from, sign-ups
against unsubscribes, bounce and complaint rates per digest, who wants which tag, and what
was posted under each tag.

A handful of reads whatever the size of the list (members, suppressions, preferences, the
latest runs and their counts, the bounces since the oldest of them): everything else is
counted here in one pass. Call it in a worker thread (it reads the database).
"""

from __future__ import annotations

from bisect import bisect_right
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import date, datetime, timedelta

from ..posts.parse import Post
from ..state.interface import Bounce, Run, SharedState
from ..subscribers.load import Subscriber
from ..subscribers.roster import Entry, entries
from .charts import Chart, Series, Threshold, bar_chart, grouped_bars, line_chart

WEEKS = 12  # sign-ups, unsubscribes and posts: the last quarter, week by week
MOST_WEEKS = 26  # subscribers over time: at most half a year back
RUNS = 26  # the latest digests whose bounces and complaints are shown
BOUNCES = 100_000  # bounces read at most (newest first): bounds the work per page
TOP_TAGS = 8  # tags in the posts chart's table
DRAWN_TAGS = 3  # tags drawn as lines: more is a tangle on a phone
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
SOURCES = (("yaml", "subscribers file"), ("signup", "signed up"), ("import", "imported"))

# Gmail's and Yahoo's rules for bulk senders (February 2024): keep the spam complaint rate
# reported in Postmaster Tools below 0.3 %, never reaching it
# (https://support.google.com/a/answer/81126, https://senders.yahooinc.com/best-practices/).
COMPLAINT_LIMIT = Threshold(0.3, "0.3% complaints: Gmail/Yahoo limit")
# Hard bounces: 2 % is a common ESP limit (Mailchimp, Postmark and Amazon SES review or pause
# accounts around it), not a mailbox provider's rule; the chart's caption says so.
BOUNCE_LIMIT = 2.0


def overview_charts(state: SharedState, subscribers: Sequence[Subscriber],
                    posts: Sequence[Post], now: datetime) -> list[Chart]:
    """The dashboard's charts, in the order shown. *subscribers*: the subscribers file's
    entries (or the whole list as read_subscribers gives it: the members in it are
    recognised); *posts*: the site's posts; *now*: aware, in the site's timezone."""
    members = state.members()
    suppressions = {s.key: s for s in state.suppressions()}
    member_keys = {m.key for m in members}
    # the file's entries: read_subscribers appends the members it lacks, without a line
    file = [s for s in subscribers if s.line is not None or s.key not in member_keys]
    everyone = list(entries(file, members, state.preferences(), suppressions))
    runs = list(reversed(state.runs(RUNS)))
    bounces = state.bounces(since=runs[0].created_at, limit=BOUNCES) if runs else []
    unsubscribed = [s.since for s in suppressions.values() if _unsubscribe(s.reason)]
    return [
        list_over_time(everyone, now),
        joins_and_leaves(everyone, unsubscribed, now),
        bounce_rates(runs, [state.counts(run).get("sent", 0) for run in runs], bounces),
        tags_wanted(everyone),
        posts_per_tag(posts, now),
    ]


def _unsubscribe(reason: str) -> bool:
    """Suppressed because they asked (the web, a reply, `digest unsubscribe`, an import)."""
    return "unsubscrib" in reason.casefold()


def _label(day: date) -> str:
    return f"{day.day} {MONTHS[day.month - 1]}"


def _monday(when: datetime, now: datetime) -> date:
    day = when.astimezone(now.tzinfo).date()
    return day - timedelta(days=day.weekday())


def _weeks(now: datetime, count: int) -> list[date]:
    """The Mondays of the last *count* weeks, this one last."""
    this = _monday(now, now)
    return [this - timedelta(weeks=count - 1 - i) for i in range(count)]


def list_over_time(everyone: Sequence[Entry], now: datetime) -> Chart:
    """Who was on the list at the end of each week, by where they came from. The file has no
    dates: its people count from the start, less those suppressed since."""
    dated = [e.since for e in everyone if e.since is not None]
    dated += [e.suppression.since for e in everyone if e.suppression is not None]
    first = min(dated, default=now)
    count = max(4, min(MOST_WEEKS, (now - first).days // 7 + 2))
    instants = [now - timedelta(weeks=count - 1 - i) for i in range(count)]
    series = []
    for source, name in SOURCES:
        mine = [e for e in everyone if e.source == source]
        if not mine and source != "yaml":
            continue
        # on the list at t: joined by t, less those also gone by t (sorted: a bisection per
        # week, not a pass over 100,000 per week)
        joined = sorted(_joined(e, instants[0]) for e in mine)
        gone = sorted(max(_joined(e, instants[0]), e.suppression.since) for e in mine
                      if e.suppression is not None)
        series.append(Series(name, [bisect_right(joined, at) - bisect_right(gone, at)
                                    for at in instants]))
    return line_chart(
        "Subscribers over time", [_label(at.date()) for at in instants], series,
        x_name="Week ending", integer=True,
        caption="Everyone who gets the digest at the end of each week, by where they came "
                "from; the suppressed are left out from the day they were suppressed. The "
                "subscribers file has no dates: its people are counted from the start.")


def _joined(entry: Entry, start: datetime) -> datetime:
    """When *entry* came on the list: the file's entries, undated, from before *start*."""
    return entry.since if entry.since is not None else start - timedelta(days=1)


def joins_and_leaves(everyone: Sequence[Entry], unsubscribed: Iterable[datetime],
                     now: datetime) -> Chart:
    """Sign-ups confirmed and unsubscribes per week, side by side."""
    weeks = _weeks(now, WEEKS)
    index = {monday: i for i, monday in enumerate(weeks)}
    joined, left = [0] * WEEKS, [0] * WEEKS
    for e in everyone:
        if e.source == "signup" and e.since is not None:
            i = index.get(_monday(e.since, now))
            if i is not None:
                joined[i] += 1
    for since in unsubscribed:
        i = index.get(_monday(since, now))
        if i is not None:
            left[i] += 1
    return grouped_bars(
        "Sign-ups and unsubscribes per week", [_label(w) for w in weeks],
        [Series("sign-ups", joined, "ok"), Series("unsubscribes", left, "amber")], x_name="Week of",
        caption="Sign-ups confirmed on the web, and addresses suppressed because they "
                "unsubscribed (on the web, by reply, by command or in an import), per week.")


def bounce_rates(runs: Sequence[Run], sent: Sequence[int], bounces: Iterable[Bounce]) -> Chart:
    """Per digest (oldest first): the share of the messages sent that bounced for good or
    were reported as spam, each address counted once per digest."""
    slugs = {run.slug for run in runs}
    hard: dict[str, set[str]] = {run.slug: set() for run in runs}
    spam: dict[str, set[str]] = {run.slug: set() for run in runs}
    for b in bounces:
        slug = b.run if b.run in slugs else _run_at(runs, b.at)
        if slug is None:
            continue
        if b.kind == "hard":
            hard[slug].add(b.key)
        elif b.kind == "complaint":
            spam[slug].add(b.key)

    def rate(found: int, of: int) -> float:
        return 100 * found / of if of else 0.0

    labels = [run.slug for run in runs]
    bounce_rate = [rate(len(hard[r.slug]), n) for r, n in zip(runs, sent, strict=True)]
    spam_rate = [rate(len(spam[r.slug]), n) for r, n in zip(runs, sent, strict=True)]
    chart = line_chart(
        "Bounces and complaints per digest", labels,
        [Series("complaints", spam_rate, "link"), Series("hard bounces", bounce_rate, "amber")],
        x_name="Digest", percent=True, integer=False, threshold=COMPLAINT_LIMIT,
        caption="Share of the messages sent that bounced for good, and that recipients "
                "reported as spam. Keep complaints under the dashed line (0.3%, Gmail's and "
                f"Yahoo's rule for bulk senders) and hard bounces under {BOUNCE_LIMIT:g}% "
                "(a common limit of sending services).")
    if runs:
        chart.headers = ("Digest", "Sent", "Hard bounces", "Complaints", "Bounce rate",
                         "Complaint rate")
        chart.rows = [(r.slug, f"{n:,}", f"{len(hard[r.slug]):,}", f"{len(spam[r.slug]):,}",
                       f"{b:.2f}%", f"{c:.2f}%")
                      for r, n, b, c in zip(runs, sent, bounce_rate, spam_rate, strict=True)]
    return chart


def _run_at(runs: Sequence[Run], at: datetime) -> str | None:
    """The latest run made before *at*: what a bounce without a digest's name is about."""
    found = None
    for run in runs:  # oldest first
        if run.created_at <= at:
            found = run.slug
    return found


def tags_wanted(everyone: Sequence[Entry]) -> Chart:
    """How many of those who get the digest want each tag; "every post" is its own bar."""
    spelling: dict[str, str] = {}
    wanted: Counter[str] = Counter()
    every = 0
    for e in everyone:
        if e.suppression is not None:
            continue
        if e.tags is None:
            every += 1
            continue
        for tag in {t.casefold(): t for t in e.tags}.items():
            spelling.setdefault(tag[0], tag[1])
            wanted[tag[0]] += 1
    ranked = sorted(wanted.items(), key=lambda kv: (-kv[1], kv[0]))
    labels = ["every post", *(spelling[k] for k, _ in ranked)]
    values = [every, *(n for _, n in ranked)]
    if not everyone:
        labels, values = [], []
    return bar_chart(
        "Subscribers per tag", labels, values, x_name="Tag", value_name="Subscribers",
        caption="Who gets posts of each tag (someone with three tags counts three times); "
                "\"every post\" counts those who chose no tags. Suppressed addresses are "
                "left out.")


def posts_per_tag(posts: Iterable[Post], now: datetime) -> Chart:
    """Posts published per week over the last weeks: all of them, and the busiest tags."""
    weeks = _weeks(now, WEEKS)
    index = {monday: i for i, monday in enumerate(weeks)}
    total = [0] * WEEKS
    per_tag: dict[str, list[int]] = {}
    spelling: dict[str, str] = {}
    for post in posts:
        if not post.published or post.date > now:
            continue
        i = index.get(_monday(post.date, now))
        if i is None:
            continue
        total[i] += 1
        for key, tag in {t.casefold(): t for t in post.tags}.items():
            spelling.setdefault(key, tag)
            per_tag.setdefault(key, [0] * WEEKS)[i] += 1
    top = sorted(per_tag, key=lambda k: (-sum(per_tag[k]), k))[:TOP_TAGS]
    series = [Series("all posts", total), *(Series(spelling[k], per_tag[k]) for k in top)]
    return line_chart(
        "Posts per tag per week", [_label(w) for w in weeks], series, x_name="Week of",
        integer=True, max_series=DRAWN_TAGS + 1,
        caption=f"Posts published each week over the last {WEEKS} weeks, all of them and "
                f"under the {DRAWN_TAGS} busiest tags (a post with two tags counts under "
                f"both); the table has the {TOP_TAGS} busiest.")

"""An incremental build writes exactly what a cold build (empty state, empty output) writes.

Each case builds a site, changes one thing (a post added, edited, re-dated, renamed,
deleted or broken, a URL taken, time moving past a future post, a setting), builds again,
and compares every output file byte for byte, and what the build reports, with a cold
build of the same site into another folder.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import NOW, make_site, post, read_site, write_posts

from digest.config import load_config
from digest.feeds.build import BuildReport, build
from digest.state.store import Store

POSTS: dict[str, str | bytes] = {
    "2019-03-01-a.md": post("A", tags="[t, u]"),
    "2019-03-01-b.md": post("B", tags="[t]", categories="[jobs]"),
    "2019-03-01-c.md": post("C", tags="[u]"),
    "2019-03-02-d.md": post("D", date='"2019-03-02 09:00:00"', tags="[v]"),
    "2019-03-03-e.md": post("E", tags="[t, v]", categories="[jobs]"),
    "2024-07-01-later.md": post("Later", tags="[t, w]"),  # future as of NOW
    "2019-03-04-draft.md": post("Draft", tags="[x]", published="false"),
    # links to posts whose URL the changes below move, delete, create or publish
    "2019-02-28-links.md": post("Links", tags="[l]", body=(
        "[a]({% post_url 2019-03-01-a %}) [a2]({% post_url 2019-02-01-a %}) "
        "[b]({% post_url 2019-03-01-b %}) [c]({% link _posts/2019-03-01-c.md %}) "
        "[d]({% post_url /sub/2019-03-02-d %}) [f]({%post_url 2019-03-05-f-%}) "
        "[draft]({% post_url 2019-03-04-draft %}) [later]({% post_url 2024-07-01-later %})\n")),
}
LATER = datetime(2024, 8, 1, tzinfo=NOW.tzinfo)


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


def _summary(report: BuildReport) -> tuple[Any, ...]:
    f = report.found
    return (f.count, f.rejected, f.warnings, f.future, f.unpublished, f.terms, f.next_future,
            report.feeds)


def build_both(config_path: Path, *, now: datetime = NOW, future: bool = False) -> BuildReport:
    """Build incrementally, then cold into other folders; assert they agree exactly.

    The cold build starts from the entry ids alone: they are kept, not cached (a post keeps
    its first id whatever its URL becomes), so they are the one state a cold build shares.
    """
    config = load_config(config_path)
    report = build(config, now=now, future=future)
    scratch = config_path.parent / "cold"
    shutil.rmtree(scratch, ignore_errors=True)
    cold = replace(config, output=scratch / "public", state=scratch / "state")
    _copy_entry_ids(config.state, cold.state)
    cold_report = build(cold, now=now, future=future)
    assert _tree(config.output) == _tree(cold.output)
    assert _summary(report) == _summary(cold_report)
    return report


def _copy_entry_ids(state: Path, to: Path) -> None:
    source, target = Store.open(state), Store.open(to)
    try:
        target.add_entry_ids(source.db.execute("SELECT path, entry_id, first_seen FROM entry_ids"))
    finally:
        source.close()
        target.close()


def _rewrite(tmp_path: Path, name: str, **front: str) -> None:
    title = front.pop("title", name.split("-")[-1].removesuffix(".md").upper())
    write_posts(tmp_path, {name: post(title, **front)})


def _remove(tmp_path: Path, *names: str) -> None:
    for name in names:
        (tmp_path / "_posts" / name).unlink()


def _rename(tmp_path: Path, name: str, to: str) -> None:
    (tmp_path / "_posts" / name).rename(tmp_path / "_posts" / to)


def _settings(**settings: Any) -> Callable[[Path], None]:
    """A change of config.yaml: the same posts, other settings."""

    def change(tmp_path: Path) -> None:
        make_site(tmp_path, {}, **settings)

    return change


Change = Callable[[Path], dict[str, Any] | None]
CHANGES: dict[str, Change] = {
    # a post on a day that already has two: `updated` of later same-day posts shifts
    "added same-day": lambda t: write_posts(t, {"2019-03-01-0first.md": post("First",
                                                                             tags="[u]")}),
    "added newest": lambda t: write_posts(t, {"2019-03-05-f.md": post("F", tags="[new]")}),
    "body edited": lambda t: write_posts(t, {"2019-03-03-e.md": post(
        "E", tags="[t, v]", categories="[jobs]", body="Changed.\n")}),
    "tags changed": lambda t: _rewrite(t, "2019-03-02-d.md", date='"2019-03-02 09:00:00"',
                                       tags="[y]"),
    "deleted": lambda t: _remove(t, "2019-03-01-b.md"),
    "last of its tag deleted": lambda t: _remove(t, "2019-03-02-d.md", "2019-03-03-e.md"),
    "renamed to a new date": lambda t: _rename(t, "2019-03-01-a.md", "2019-02-01-a.md"),
    "re-dated in front matter": lambda t: _rewrite(t, "2019-03-01-c.md", title="C",
                                                   date='"2019-03-06 10:00:00"', tags="[u]"),
    "unpublished": lambda t: _rewrite(t, "2019-03-01-a.md", published="false", tags="[t, u]"),
    "draft published": lambda t: _rewrite(t, "2019-03-04-draft.md", tags="[x]"),
    "broken": lambda t: write_posts(t, {"2019-03-01-b.md": "---\ntitle: [oops\n---\nText\n"}),
    "URL taken by an earlier post": lambda t: write_posts(t, {"2019-02-20-z.md": post(
        "Z", permalink="/2019/03/02/d.html", tags="[z]")}),
    "same-time post with a zone": lambda t: write_posts(t, {"2019-03-02-g.md": post(
        "G", date='"2019-03-02 15:00:00 +0100"', tags="[v]")}),
    "future post comes due": lambda t: {"now": LATER},
    "time goes back": lambda t: {"now": datetime(2019, 3, 2, 12, tzinfo=NOW.tzinfo)},
    "future posts included": lambda t: {"future": True},
    "site title changed": _settings(title="Other Board"),
    "feeds.entries changed": _settings(feeds={"entries": 2}),
    "stylesheet on": _settings(feeds={"stylesheet": True}),
    "permalink changed": _settings(permalink="/jobs/:title/"),
    "touched, same bytes": lambda t: write_posts(t, {"2019-03-01-a.md": POSTS[
        "2019-03-01-a.md"]}),
}


@pytest.mark.parametrize("change", list(CHANGES), ids=list(CHANGES))
def test_incremental_build_equals_a_cold_build(tmp_path: Path, change: str) -> None:
    config = make_site(tmp_path, POSTS)
    build_both(config)
    options = CHANGES[change](tmp_path) or {}
    build_both(config, **options)


def test_every_change_in_a_row_keeps_incremental_equal_to_cold(tmp_path: Path) -> None:
    """One state database through all the changes, with time and settings moving too."""
    config = make_site(tmp_path, POSTS)
    build_both(config)
    options: dict[str, Any] = {}
    for change in CHANGES.values():
        options.update(change(tmp_path) or {})
        build_both(config, **options)


def test_a_change_seen_first_by_another_command_still_reaches_the_feeds(tmp_path: Path) -> None:
    """`digest check` refreshes the parse cache too; the next build must not miss the edit."""
    config = make_site(tmp_path, POSTS)
    build_both(config)
    write_posts(tmp_path, {"2019-03-05-f.md": post("F", tags="[t]")})
    _remove(tmp_path, "2019-03-01-b.md")
    read_site(config)
    report = build_both(config)
    assert "feed/by_tag/t.xml" in report.written


def test_a_build_that_failed_half_way_is_finished_by_the_next(tmp_path: Path) -> None:
    """The live index is updated before the feeds are written; feeds it marked as changed
    stay marked until written, so a failed build loses nothing: here the tag feed, whose
    old file is still there, must still be rewritten after the site feed failed."""
    config = make_site(tmp_path, POSTS)
    build_both(config)
    write_posts(tmp_path, {"2019-03-05-f.md": post("F", tags="[t]")})
    blocked = tmp_path / "public" / "feed.xml"
    blocked.unlink()
    blocked.mkdir()  # the site feed, written first, cannot replace a folder
    with pytest.raises(OSError):
        build(load_config(config), now=NOW)
    blocked.rmdir()
    report = build_both(config)
    assert "feed/by_tag/t.xml" in report.written


def test_a_post_that_lost_its_url_comes_back_when_the_url_is_free(tmp_path: Path) -> None:
    config = make_site(tmp_path, POSTS)
    build_both(config)
    write_posts(tmp_path, {"2019-02-20-z.md": post("Z", permalink="/2019/03/02/d.html")})
    assert [p.path.name for p in build_both(config).found.rejected] == ["2019-03-02-d.md"]
    _remove(tmp_path, "2019-02-20-z.md")
    report = build_both(config)
    assert report.found.rejected == []
    assert "feed/by_tag/v.xml" in report.written


def test_a_future_post_is_reported_as_next_until_due(tmp_path: Path) -> None:
    config = make_site(tmp_path, POSTS)
    report = build_both(config)
    assert report.found.future == 1
    assert report.found.next_future == datetime(2024, 7, 1, tzinfo=NOW.tzinfo)
    report = build_both(config, now=LATER)
    assert (report.found.future, report.found.next_future) == (0, None)
    assert "feed/by_tag/w.xml" in report.written


def test_nothing_changed_reads_no_feed_and_writes_nothing(tmp_path: Path) -> None:
    config = make_site(tmp_path, POSTS)
    build_both(config)
    report = build(load_config(config), now=NOW + timedelta(minutes=5))
    assert (report.written, report.rendered, report.skipped) == ([], 0, report.feeds)

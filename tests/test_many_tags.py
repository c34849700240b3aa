"""Posts with very many tags and tags too long for a file name: the work stays in proportion
to what is written, and every feed gets a file name the file system accepts."""

from __future__ import annotations

import string
from pathlib import Path
from typing import Any

import pytest
from conftest import build_site, make_site, output, parse_feed, post, run_cli
from feedgen.entry import FeedEntry
from hypothesis import given
from hypothesis import strategies as st

from digest.feeds import formats
from digest.feeds.formats import STEM_MAX, feed_file_stem

NAME_MAX = 255  # bytes in one file name: ext4, XFS, btrfs, APFS
# what the atomic writer puts around a feed's file name for its temporary file (writer.py)
TEMP_EXTRA = len(".") + len(".XXXXXXXX.tmp")


def _tags(count: int) -> str:
    return "[" + ", ".join(f"tag{i:04d}" for i in range(count)) + "]"


def _count_categories(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Count what feedgen's FeedEntry.category() is asked to do; the real method still runs."""
    seen = {"calls": 0, "terms": 0}
    real = FeedEntry.category

    def counting(self: FeedEntry, category: Any = None, replace: bool = False,
                 **kwargs: Any) -> Any:
        seen["calls"] += 1
        given_ = category if category is not None else kwargs
        seen["terms"] += len(given_) if isinstance(given_, list) else 1
        return real(self, category, replace, **kwargs)

    monkeypatch.setattr(FeedEntry, "category", counting)
    return seen


def _feedgen_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, count: int) -> dict[str, int]:
    with monkeypatch.context() as patch:
        seen = _count_categories(patch)
        config = make_site(tmp_path / str(count),
                           {"2024-01-02-many.md": post("Many", tags=_tags(count))})
        report = build_site(config)
    assert report.feeds == count + 1
    every = [f"tag{i:04d}" for i in range(count)]
    last = f"feed/by_tag/tag{count - 1:04d}.rss"
    for rel in ("feed.xml", "feed.rss", "feed/by_tag/tag0000.xml", last):
        entry, = parse_feed(output(config) / rel).entries
        assert [t.term for t in entry.tags] == every
    return seen


# --- work in proportion to tags ----------------------------------------------------------

def test_feedgen_work_grows_linearly_with_the_tags_of_a_post(tmp_path, monkeypatch):
    """One post in T + 1 feeds, all listing its T tags: told them per feed (or per term) the
    work is T² (T³); told once per format it is T. (40 and 400 tags behave as 100 and 1,000
    do, the bench's row, in a tenth of the time.)"""
    small = _feedgen_work(tmp_path, monkeypatch, 40)
    large = _feedgen_work(tmp_path, monkeypatch, 400)
    assert large["calls"] <= small["calls"]  # once per post and format, not per feed
    assert large["terms"] <= 10 * small["terms"]


def test_entries_shared_between_feeds_are_written_byte_for_byte_as_unshared_ones(
        tmp_path, monkeypatch):
    posts = {
        "2024-01-02-many.md": post("'Many & <more>'", tags=_tags(formats.SHARE_FROM + 4),
                                   author="Ann Author",
                                   body="Intro: `<entry>` and </item>.\n\nMore *text*.\n"),
        "2024-01-03-empty.md": post("Empty", tags=_tags(formats.SHARE_FROM), body=""),
        "2024-01-04-few.md": post("Few", tags="[tag0000, tag0001]", category="Remote"),
    }
    many = formats.SHARE_FROM + 4
    shared = make_site(tmp_path / "shared", posts)
    build_site(shared)
    monkeypatch.setattr(formats, "SHARE_FROM", 10**9)
    unshared = make_site(tmp_path / "unshared", posts)
    build_site(unshared)
    written = sorted(p.relative_to(output(shared)) for p in output(shared).rglob("*.*"))
    assert len(written) == 2 * (1 + many + 1) + 3  # feeds, the two OPMLs, XSL
    for rel in written:
        assert (output(shared) / rel).read_bytes() == (output(unshared) / rel).read_bytes(), rel


# --- file names ---------------------------------------------------------------------------

def _fits(stem: str) -> bool:
    return len(f"{stem}.xml".encode()) + TEMP_EXTRA <= NAME_MAX


@pytest.mark.parametrize("tag", ["python", "Data_Science_2", "a" * STEM_MAX])
def test_simple_tags_that_fit_keep_their_jekyll_feed_names(tag):
    assert feed_file_stem(tag) == tag


def test_tags_outside_the_simple_set_keep_their_readable_name_and_hash():
    assert feed_file_stem("i.t.") == "i-t-0428a221"  # the README's example


@pytest.mark.parametrize("length", [STEM_MAX + 1, 252, 300, 5000])
def test_simple_tag_too_long_for_a_file_name_is_cut_to_its_start_and_a_hash(length):
    tag = "a" * length
    stem = feed_file_stem(tag)
    assert _fits(stem)
    assert stem.startswith("a" * 200) and stem == feed_file_stem(tag)
    assert stem != feed_file_stem(tag + "b")  # same start, another tag: another file


@pytest.mark.parametrize("tag", ["é" * 200, "日本語" * 100, "a" * 300 + ".", "🙂" * 70,
                                 "-" * 300, "\u0301" * 300])
def test_long_tags_outside_the_simple_set_get_names_that_fit(tag):
    assert len(tag.encode()) > NAME_MAX
    assert _fits(feed_file_stem(tag))


def test_tag_with_a_trailing_newline_has_none_in_its_file_name():
    assert "\n" not in feed_file_stem("python\n")
    assert feed_file_stem("python\n") != feed_file_stem("python")


@given(st.text(min_size=0, max_size=600))
def test_every_tag_gets_a_file_name_that_fits_and_names_only_a_file(tag):
    stem = feed_file_stem(tag)
    assert _fits(stem)
    assert stem and set(stem) <= set(string.ascii_letters + string.digits + "_-")
    assert not stem.startswith("-")


def test_build_and_check_agree_on_posts_with_tags_too_long_for_file_names(tmp_path):
    long_plain, long_accented, long_mixed = "a" * 252, "é" * 200, "b" * 300 + "!"
    config = make_site(tmp_path, {
        "2024-01-02-long.md": post("Long", tags=f"[{long_plain}, {long_accented}, '{long_mixed}']",
                                   category="c" * 260),
    }, extra={"limits": {"tag_length": 400}})  # a site that raised the parse-time bound
    assert run_cli(["--config", str(config), "check"])[0] == 0
    code, _, err = run_cli(["--config", str(config), "build"])
    assert (code, err) == (0, "")
    out = output(config)
    for tag in (long_plain, long_accented, long_mixed):
        entry, = parse_feed(out / f"feed/by_tag/{feed_file_stem(tag)}.xml").entries
        assert entry.title == "Long"
    assert (out / f"feed/{feed_file_stem('c' * 260)}.rss").is_file()
    assert all(len(p.name.encode()) + TEMP_EXTRA <= NAME_MAX for p in out.rglob("*"))
    opml = (out / "feeds.opml").read_text()
    assert f"/feed/by_tag/{feed_file_stem(long_plain)}.xml" in opml

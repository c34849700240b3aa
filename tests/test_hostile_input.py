"""Hostile and broken input (issue 18): one bad file is reported at its file and line, and
never stops the others, hangs, eats the memory, kills the process or re-sends a digest.

Each class of attack is a small named file under tests/fixtures/hostile/, read beside 40
good posts (six real ones from tests/fixtures/posts, the rest made here); the cases that are
not file contents (symlinks, names, permissions) are made in tmp_path.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import pytest
import yaml
from conftest import (
    NOW,
    build_site,
    by_path,
    make_site,
    output,
    parse_feed,
    post,
    read_site,
    run_cli,
)

from digest.config import load_config
from digest.delivery.send import send
from digest.subscribers.load import load_subscribers

FIXTURES = Path(__file__).parent / "fixtures"
HOSTILE_POSTS = FIXTURES / "hostile" / "posts"
HOSTILE_SUBSCRIBERS = FIXTURES / "hostile" / "subscribers"


def good_posts() -> dict[str, str | bytes]:
    """40 good posts: the six real ones in fixtures, and 34 made like them."""
    posts: dict[str, str | bytes] = {p.name: p.read_bytes()
                                     for p in sorted((FIXTURES / "posts").glob("*.md"))}
    for n in range(40 - len(posts)):
        posts[f"2021-{1 + n % 12:02d}-{1 + n % 28:02d}-good-{n}.md"] = post(f"Good {n}",
                                                                       tags=f"[good, g{n}]")
    return posts


# file name → (line of the problem, words the message must hold)
POST_CASES = {
    "2020-02-01-recursive-alias.md": (3, "alias refers to the list or mapping that contains it"),
    "2020-02-02-huge-integer.md": (3, "a number of 4400 digits"),
    "2020-02-03-float-tag.md": (2, "'x' cannot be read as float"),
    "2020-02-04-day-offset.md": (3, "the zone '+24:00' is not an offset from UTC"),
    "2020-02-05-year-one.md": (3, "in the year 1; dates must be between 1000 and 9000"),
    "2020-02-06-year-9999.md": (3, "in the year 9999"),
    "2020-02-07-python-tag.md": (3, "the YAML tag '!!python/object/apply:os.system'"),
    "2020-02-08-billion-laughs.md": (8, "more than 100000 values once its aliases are expanded"),
    "2020-02-09-deep-nesting.md": (3, "nested more than 64 levels deep"),
    "2020-02-10-too-many-tags.md": (3, "2001 tags and categories (the most is 2000)"),
    "2020-02-11-long-tag.md": (3, "a tag or category of 300 characters"),
    "2020-02-12-base60-integer.md": (3, "a number of 8699 digits (the most is 4300)"),
    "2020-02-13-hex-integer.md": (3, "a number of more than 4300 decimal digits"),
    "2020-02-14-binary-tag.md": (3, "the YAML tag '!!binary' is not supported"),
}


def _titles(config: Path) -> set[str]:
    return {e.title for e in parse_feed(output(config) / "feed.xml").entries}


@pytest.mark.parametrize("name", sorted(POST_CASES))
def test_hostile_post_is_rejected_at_its_line_and_every_good_post_is_published(
        tmp_path: Path, name: str) -> None:
    goods = good_posts()
    config = make_site(tmp_path, {**goods, name: (HOSTILE_POSTS / name).read_bytes()},
                       feeds={"entries": 100})
    started = time.monotonic()
    corpus = read_site(config)
    assert time.monotonic() - started < 10
    assert sorted(by_path(corpus)) == sorted(goods)
    (problem,) = corpus.rejected
    line, words = POST_CASES[name]
    assert (problem.path.name, problem.line) == (name, line)
    assert words in problem.message
    assert problem.hint
    report = build_site(config)
    assert report.found.count == 40
    assert len(_titles(config)) == 40


def test_every_command_reports_all_hostile_posts_and_publishes_the_good_ones(
        tmp_path: Path) -> None:
    hostile = {name: (HOSTILE_POSTS / name).read_bytes() for name in POST_CASES}
    config = make_site(tmp_path, {**good_posts(), **hostile}, feeds={"entries": 100})
    code, out, err = run_cli(["--config", str(config), "check", "--now", NOW.isoformat()])
    assert code == 1
    assert sum(name in out for name in POST_CASES) == len(POST_CASES)
    assert "40 posts OK; 14 rejected" in err
    code, out, _ = run_cli(["--config", str(config), "posts", "--json",
                            "--now", NOW.isoformat()])
    found = yaml.safe_load(out)  # JSON is YAML
    assert code == 1
    assert (len(found["posts"]), len(found["rejected"])) == (40, 14)
    assert all(r["line"] for r in found["rejected"])
    code, _, err = run_cli(["--config", str(config), "build", "--now", NOW.isoformat()])
    assert code == 1
    assert err.count("rejected: ") == 14
    assert len(_titles(config)) == 40


def test_billion_laughs_post_is_refused_in_bounded_time_and_memory(tmp_path: Path) -> None:
    """466 bytes that PyYAML alone expands to 387 million values (5 GB and on)."""
    config = make_site(tmp_path, {"2020-02-08-billion-laughs.md":
                                  (HOSTILE_POSTS / "2020-02-08-billion-laughs.md").read_bytes()})
    tracemalloc.start()
    started = time.monotonic()
    try:
        corpus = read_site(config)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.monotonic() - started < 5
    assert peak < 20 * 2**20
    assert len(corpus.rejected) == 1


def test_symlink_to_a_file_outside_the_site_is_not_published(tmp_path: Path) -> None:
    secret = tmp_path / "elsewhere" / "secret.md"
    secret.parent.mkdir()
    secret.write_text(post("Secret", body="root:x:0:0:root:/root:/bin/bash\n"))
    config = make_site(tmp_path / "site", good_posts())
    (tmp_path / "site" / "_posts" / "2020-01-01-passwd.md").symlink_to(secret)
    corpus = read_site(config)
    assert len(corpus.posts) == 40
    (problem,) = corpus.rejected
    assert problem.path.name == "2020-01-01-passwd.md"
    assert f"a symlink to {secret}, outside the site folder" in problem.message
    build_site(config)
    assert b"root:x:0" not in (output(config) / "feed.xml").read_bytes()
    assert "Secret" not in _titles(config)


def test_symlink_inside_the_site_is_still_followed(tmp_path: Path) -> None:
    config = make_site(tmp_path, {"2020-01-01-a.md": post("A")})
    (tmp_path / "_drafts").mkdir()
    (tmp_path / "_drafts" / "b.md").write_text(post("Linked draft"))
    (tmp_path / "_posts" / "2020-01-02-b.md").symlink_to(tmp_path / "_drafts" / "b.md")
    corpus = read_site(config)
    assert corpus.rejected == []
    assert {p.title for p in corpus.posts} == {"A", "Linked draft"}


def test_symlink_loop_is_rejected_at_its_path(tmp_path: Path) -> None:
    config = make_site(tmp_path, good_posts(), feeds={"entries": 100})
    posts = tmp_path / "_posts"
    (posts / "2020-01-01-loop-a.md").symlink_to("2020-01-01-loop-b.md")
    (posts / "2020-01-01-loop-b.md").symlink_to("2020-01-01-loop-a.md")
    corpus = read_site(config)
    assert len(corpus.posts) == 40
    assert sorted((p.path.name, p.message) for p in corpus.rejected) == [
        ("2020-01-01-loop-a.md", "cannot read this file: Too many levels of symbolic links"),
        ("2020-01-01-loop-b.md", "cannot read this file: Too many levels of symbolic links")]
    build_site(config)
    assert len(_titles(config)) == 40


def test_file_name_that_is_not_utf8_is_rejected_and_printable(tmp_path: Path) -> None:
    config = make_site(tmp_path, good_posts(), feeds={"entries": 100})
    (tmp_path / "_posts").joinpath(b"2020-01-01-caf\xe9.md".decode("utf-8", "surrogateescape")) \
        .write_text(post("Latin-1 name"))
    corpus = read_site(config)
    assert len(corpus.posts) == 40
    (problem,) = corpus.rejected
    assert problem.path.name == "2020-01-01-caf\\xe9.md"
    assert "the name is not UTF-8" in problem.message
    code, out, _ = run_cli(["--config", str(config), "check", "--now", NOW.isoformat()])
    assert code == 1
    assert "2020-01-01-caf\\xe9.md" in out
    build_site(config)
    assert len(_titles(config)) == 40


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="needs util-linux setpriv")
def test_unreadable_subfolder_is_rejected_and_the_rest_published(tmp_path: Path) -> None:
    """Tests run as root, whom permission bits do not stop: the command runs under setpriv
    without CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH, so mode 000 stops it as any user."""
    config = make_site(tmp_path, good_posts())
    locked = tmp_path / "_posts" / "locked"
    locked.mkdir()
    (locked / "2020-01-01-inside.md").write_text(post("Inside"))
    locked.chmod(0)
    try:
        done = subprocess.run(
            ["setpriv", "--inh-caps=-all", "--bounding-set=-dac_override,-dac_read_search",
             sys.executable, "-m", "digest", "--config", str(config), "check",
             "--now", NOW.isoformat()], capture_output=True, text=True, timeout=60,
            check=False)
    finally:
        locked.chmod(0o755)
    assert done.returncode == 1, done.stderr
    assert f"error: {locked}: cannot read this folder: Permission denied" in done.stdout
    assert "40 posts OK; 1 rejected" in done.stderr
    assert "Traceback" not in done.stderr


def test_empty_posts_folder_is_a_warning_not_a_silent_empty_feed(tmp_path: Path) -> None:
    config = make_site(tmp_path, {})
    code, out, _ = run_cli(["--config", str(config), "check"])
    assert code == 1  # check exits 1 on any warning
    assert "warning: " in out and "the posts folder has no post files" in out
    code, _, err = run_cli(["--config", str(config), "build"])
    assert code == 0
    assert "warning: " in err and "the posts folder has no post files" in err


def test_post_larger_than_limits_post_bytes_is_rejected_without_reading_it_all(
        tmp_path: Path) -> None:
    big = post("Big", body="x" * 5000 + "\n")
    config = make_site(tmp_path, {"2020-01-01-big.md": big, "2020-01-02-small.md": post("S")},
                       extra={"limits": {"post_bytes": 4096}})
    corpus = read_site(config)
    assert [p.title for p in corpus.posts] == ["S"]
    (problem,) = corpus.rejected
    assert problem.message.startswith("the file is 4,097 bytes (the most is 4,096)")
    assert "limits.post_bytes" in problem.hint


def test_raising_limits_tags_in_config_accepts_the_post(tmp_path: Path) -> None:
    name = "2020-02-10-too-many-tags.md"
    config = make_site(tmp_path, {name: (HOSTILE_POSTS / name).read_bytes()},
                       extra={"limits": {"tags": 3000}})
    corpus = read_site(config)
    assert corpus.rejected == []
    assert len(corpus.posts[0].tags) == 2001


# --- subscribers ------------------------------------------------------------------------

SUBSCRIBER_CASES = {
    "impossible-date.yaml": (4, "'2019-02-30' cannot be read as timestamp"),
    "float-tag.yaml": (4, "'x' cannot be read as float"),
    "huge-integer.yaml": (4, "a number of 5000 digits"),
    "recursive-alias.yaml": (4, "alias refers to the list or mapping that contains it"),
    "billion-laughs.yaml": (9, "more than 100000 values once its aliases are expanded"),
    "timestamp-tag.yaml": (4, "'tuesday' cannot be read as timestamp"),
}


@pytest.mark.parametrize("name", sorted(SUBSCRIBER_CASES))
def test_bad_subscriber_entry_is_skipped_at_its_line_and_the_others_served(name: str) -> None:
    path = HOSTILE_SUBSCRIBERS / name
    started = time.monotonic()
    found = load_subscribers(path, {"union"})
    assert time.monotonic() - started < 5
    assert [s.email for s in found.subscribers] == ["ana@example.org", "all@example.org"]
    (problem,) = found.problems
    line, words = SUBSCRIBER_CASES[name]
    assert (problem.path, problem.line) == (path, line)
    assert words in problem.message


MONDAY_POSTS = {"2024-06-04-union.md": post("Union job", tags="[union]"),
                "2024-06-05-other.md": post("Other job", tags="[other]")}


def test_send_mails_everyone_but_the_bad_subscriber_entry(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIGEST_SECRET", "test-secret-0123456789abcdef")
    shutil.copy(HOSTILE_SUBSCRIBERS / "impossible-date.yaml", tmp_path / "subscribers.yaml")
    config = make_site(tmp_path, MONDAY_POSTS, extra={
        "subscribers": "subscribers.yaml",
        "digest": {"from": "Jobs Board <jobs@example.org>"},
        "web": {"base_url": "https://jobs.example.org/digest"}})
    from datetime import datetime

    from conftest import SITE_TZ

    report = send(load_config(config), as_of=datetime(2024, 6, 10, 9, tzinfo=SITE_TZ))
    (run,) = report.runs
    assert run.counts == {"sent": 2}
    mailed = sorted(p.name for p in (tmp_path / "state" / "outbox" / "new").iterdir())
    assert len(mailed) == 2
    code, out, _ = run_cli(["--config", str(config), "check", "--now", "2024-06-10T09:00"])
    assert code == 1
    assert f"error: {tmp_path / 'subscribers.yaml'}:4: '2019-02-30' cannot be read" in out

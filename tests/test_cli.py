"""The command line: `posts --json` shape, `check` and `build` exit codes and messages,
and `python -m digest` in a real subprocess."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

from conftest import SITE_URL, make_site, output, parse_feed, post, run_cli, run_module, write_posts

GOOD = {
    "2019-03-01-data-engineer.md": post("Data engineer", date='"2019-03-01 09:30:00"',
                                        tags="[python, data]", category="Remote",
                                        body="Build *pipelines*.\n\nMore text.\n"),
    "2019-03-02-sysadmin.md": post("Sysadmin", tags="[IT]"),
}
BAD = {
    "2019-03-03-broken.md": "---\ntitle: Broken\ntags: [a\n---\nBody.\n",
    "2019-02-30-no-day.md": post("No day"),
}


def _cli(config: Path, *args: str) -> tuple[int, str, str]:
    return run_cli(["--config", str(config), *args, "--now", "2024-06-01T12:00:00"])


def test_posts_json_lists_posts_with_every_field(tmp_path):
    config = make_site(tmp_path, GOOD)
    code, out, err = _cli(config, "posts", "--json")
    assert (code, err) == (0, "")
    data = json.loads(out)
    assert set(data) == {"posts", "rejected", "warnings"}
    assert data["rejected"] == [] and data["warnings"] == []
    assert data["posts"] == [
        {"path": "2019-03-02-sysadmin.md", "url": f"{SITE_URL}/2019/03/02/sysadmin.html",
         "date": "2019-03-02T00:00:00-05:00", "title": "Sysadmin", "tags": ["IT"],
         "categories": [], "slug": "sysadmin", "excerpt": "Some text."},
        {"path": "2019-03-01-data-engineer.md",
         "url": f"{SITE_URL}/remote/2019/03/01/data-engineer.html",
         "date": "2019-03-01T09:30:00-05:00", "title": "Data engineer",
         "tags": ["python", "data"], "categories": ["Remote"], "slug": "data-engineer",
         "excerpt": "Build pipelines."},
    ]
    for item in data["posts"]:
        assert datetime.fromisoformat(item["date"]).utcoffset() is not None


def test_posts_json_lists_rejected_files_with_path_line_and_error(tmp_path):
    config = make_site(tmp_path, {**GOOD, **BAD, "2019-03-04-num.md": post("N", tags="2019")})
    code, out, _ = _cli(config, "posts", "--json")
    assert code == 1
    data = json.loads(out)
    assert [p["path"] for p in data["posts"]] == [
        "2019-03-04-num.md", "2019-03-02-sysadmin.md", "2019-03-01-data-engineer.md"]
    assert data["rejected"] == [
        {"path": "2019-02-30-no-day.md", "line": None,
         "error": "the file name's date 2019-02-30 does not exist (day is out of range for "
                  "month) (fix the date, e.g. 2019-03-13 or 2019-03-13 09:00:00 -0500)"},
        {"path": "2019-03-03-broken.md", "line": 4,
         "error": data["rejected"][1]["error"]},
    ]
    assert data["rejected"][1]["error"].startswith("invalid YAML: ")
    assert data["warnings"] == [{"path": "2019-03-04-num.md", "line": 3,
                                 "error": "'tags: 2019' is a number; Jekyll ignores it "
                                          "(write tags: ['2019'])"}]


def test_posts_json_keeps_non_ascii_text(tmp_path):
    config = make_site(tmp_path, {"2019-03-01-cafe.md": post("Café 🎉", tags="[données]")})
    code, out, _ = _cli(config, "posts", "--json")
    assert code == 0
    assert "Café 🎉" in out
    assert json.loads(out)["posts"][0]["tags"] == ["données"]


def test_posts_plain_lists_date_url_and_tags(tmp_path):
    config = make_site(tmp_path, GOOD)
    code, out, _ = _cli(config, "posts")
    assert code == 0
    assert out.splitlines() == [
        f"2019-03-02  {SITE_URL}/2019/03/02/sysadmin.html  IT",
        f"2019-03-01  {SITE_URL}/remote/2019/03/01/data-engineer.html  python, data",
    ]


def test_posts_json_shows_the_new_excerpt_after_an_edit(tmp_path):
    config = make_site(tmp_path, {"2019-03-01-a.md": post("A", body="Old words.\n")})
    _, first, _ = _cli(config, "posts", "--json")
    assert json.loads(first)["posts"][0]["excerpt"] == "Old words."
    write_posts(tmp_path, {"2019-03-01-a.md": post("A", body="New words entirely.\n")})
    _, second, _ = _cli(config, "posts", "--json")
    assert json.loads(second)["posts"][0]["excerpt"] == "New words entirely."


def test_posts_json_then_build_still_renders_the_current_text(tmp_path):
    config = make_site(tmp_path, {"2019-03-01-a.md": post("A", body="Old words.\n")})
    _cli(config, "posts", "--json")
    write_posts(tmp_path, {"2019-03-01-a.md": post("A", body="New words entirely.\n")})
    code, _, _ = _cli(config, "build")
    assert code == 0
    assert parse_feed(output(config) / "feed.xml").entries[0].summary == "New words entirely."


def test_check_exits_0_on_a_clean_site(tmp_path):
    config = make_site(tmp_path, GOOD)
    code, out, err = _cli(config, "check")
    assert (code, out) == (0, "")
    assert err == "2 posts OK; 0 rejected, 0 warnings\n"


def test_check_exits_1_and_lists_every_problem(tmp_path):
    config = make_site(tmp_path, {**GOOD, **BAD})
    code, out, err = _cli(config, "check")
    assert code == 1
    lines = out.splitlines()
    posts_dir = tmp_path / "_posts"
    assert lines[0].startswith(f"error: {posts_dir / '2019-02-30-no-day.md'}: the file name's "
                               "date 2019-02-30 does not exist")
    assert lines[1].startswith(f"error: {posts_dir / '2019-03-03-broken.md'}:4: invalid YAML")
    assert len(lines) == 2
    assert err == "2 posts OK; 2 rejected, 0 warnings\n"


def test_check_writes_no_feeds(tmp_path):
    config = make_site(tmp_path, GOOD)
    _cli(config, "check")
    assert not output(config).exists()


def test_build_exits_1_on_a_rejected_post_but_writes_the_other_feeds(tmp_path):
    config = make_site(tmp_path, {**GOOD, **BAD})
    code, out, err = _cli(config, "build")
    assert code == 1
    assert f"rejected: {tmp_path / '_posts' / '2019-03-03-broken.md'}:4: invalid YAML" in err
    assert out.startswith("2 posts (4 parsed, 2 rejected, 0 future, 0 unpublished); 5 feeds: ")
    titles = [e.title for e in parse_feed(output(config) / "feed.xml").entries]
    assert titles == ["Sysadmin", "Data engineer"]
    for tag, title in (("IT", "Sysadmin"), ("python", "Data engineer")):
        feed = parse_feed(output(config) / f"feed/by_tag/{tag}.xml")
        assert [e.title for e in feed.entries] == [title]
    assert not (output(config) / "feed/by_tag/a.xml").exists()


def test_build_exits_0_and_reports_unchanged_feeds_the_second_time(tmp_path):
    config = make_site(tmp_path, GOOD)
    code, first, _ = _cli(config, "build")
    assert code == 0
    assert "5 feeds: 13 files written, 0 feeds unchanged" in first
    code, second, _ = _cli(config, "build")
    assert code == 0
    assert "2 posts (0 parsed, 0 rejected, 0 future, 0 unpublished); 5 feeds: "\
           "0 files written, 5 feeds unchanged" in second


def test_build_now_option_decides_what_is_future(tmp_path):
    config = make_site(tmp_path, {**GOOD, "2024-07-01-later.md": post("Later")})
    code, out, _ = run_cli(["--config", str(config), "build", "--now", "2024-06-30T23:00:00"])
    assert code == 0
    assert "2 posts (3 parsed, 0 rejected, 1 future, 0 unpublished)" in out
    code, out, _ = run_cli(["--config", str(config), "build", "--now", "2024-06-30T23:00:00",
                            "--future"])
    assert "3 posts (0 parsed, 0 rejected, 0 future, 0 unpublished)" in out
    assert parse_feed(output(config) / "feed.xml").entries[0].title == "Later"


def test_python_m_digest_help_works():
    result = run_module(["--help"])
    assert result.returncode == 0
    assert "Jekyll-style posts" in result.stdout
    for command in ("build", "check", "posts"):
        assert command in result.stdout


def test_python_m_digest_builds_a_site_end_to_end(tmp_path):
    config = make_site(tmp_path, {**GOOD, **BAD})
    result = run_module(["--config", str(config), "build", "--now", "2024-06-01T12:00:00"],
                        cwd=tmp_path)
    assert result.returncode == 1
    assert "rejected: " in result.stderr
    assert result.stdout.startswith("2 posts (4 parsed, 2 rejected")
    assert [e.title for e in parse_feed(output(config) / "feed.rss").entries] == [
        "Sysadmin", "Data engineer"]

"""Posts whose HTML nests deep enough to crash native code (css-inline's stack, nh3's time).

Each hostile post sits beside a good one and goes through `digest build`, `digest preview`
and `digest send` in a real subprocess, so a SIGSEGV shows as a failing test (exit -11)
instead of killing pytest. The hostile post is published as plain text with a warning
naming its file; the good post is published and mailed as usual.
"""

from __future__ import annotations

import mailbox
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import PROJECT, make_site, post
from hypothesis import given, settings
from hypothesis import strategies as st

from digest.edition.layout import _Depths
from digest.posts.content import (
    MAX_DEPTH,
    nesting_depth,
    render_post,
    shape_problems,
)
from digest.posts.sanitize import sanitize

SECRET = "test-secret-0123456789abcdef"
GOOD = post("Good Job", tags="[union]", body="A **fine** job.\n")

HOSTILE = {
    # ~220 KB of nested divs: css-inline 0.24 overflows the 8 MB main stack (SIGSEGV)
    "divs": "<div>" * 20_000 + "x" + "</div>" * 20_000 + "\n",
    # 200,000 `*` around a word: Markdown makes 50,000 nested <strong>, same crash
    "stars": "*" * 100_000 + "a" + "*" * 100_000 + "\n",
    # unclosed formatting tags nest too, as parsers build them
    "bold": "<b>" * 20_000 + "x\n",
    # a stray close tag does not close anything: still 20,000 deep
    "stray-closers": "<span></i>" * 20_000 + "x\n",
}


def _site(tmp_path: Path, body: str) -> Path:
    (tmp_path / "subscribers.yaml").write_text(
        yaml.safe_dump([{"email": "ana@example.org", "name": "Ana"}]), encoding="utf-8")
    return make_site(tmp_path, {
        "2024-06-04-hostile.md": post("Hostile", tags="[union]", body=body),
        "2024-06-05-good-job.md": GOOD,
    }, extra={"subscribers": "subscribers.yaml",
              "digest": {"from": "Jobs Board <jobs@example.org>", "noun": "job"},
              "web": {"base_url": "https://jobs.example.org/digest"}})


def _digest(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONIOENCODING="utf-8", DIGEST_SECRET=SECRET)
    return subprocess.run([sys.executable, "-m", "digest", "--config", str(config), *args],
                          capture_output=True, text=True, encoding="utf-8", cwd=PROJECT,
                          env=env, timeout=120, check=False)


@pytest.mark.parametrize("shape", sorted(HOSTILE))
def test_deeply_nested_post_is_published_flat_and_the_rest_is_mailed(tmp_path: Path,
                                                                     shape: str) -> None:
    config = _site(tmp_path, HOSTILE[shape])

    built = _digest(config, "build", "--now", "2024-06-10T09:00:00-04:00")
    assert built.returncode == 0, (built.returncode, built.stderr[-2000:])
    assert "2024-06-04-hostile.md" in built.stderr and "published as plain text" in built.stderr
    feed = (tmp_path / "public" / "feed.xml").read_text(encoding="utf-8")
    assert "Good Job" in feed and "Hostile" in feed
    assert "&lt;div&gt;&lt;div&gt;" not in feed and "&lt;strong&gt;&lt;strong&gt;" not in feed

    shown = _digest(config, "preview", "--as-of", "2024-06-10T09:00:00-04:00",
                    "--out", str(tmp_path / "preview"))
    assert shown.returncode == 0, (shown.returncode, shown.stderr[-2000:])
    page = next((tmp_path / "preview").glob("*.html")).read_text(encoding="utf-8")
    assert "Good Job" in page and "Hostile" in page
    assert nesting_depth(page, 10 * MAX_DEPTH) <= 2 * MAX_DEPTH

    sent = _digest(config, "send", "--as-of", "2024-06-10T09:00:00-04:00")
    assert sent.returncode == 0, (sent.returncode, sent.stderr[-2000:])
    box = mailbox.Maildir(tmp_path / "state" / "outbox", create=False)
    messages = [box.get_bytes(key) for key in box.iterkeys()]
    assert len(messages) == 1 and b"Good Job" in messages[0] and b"Hostile" in messages[0]


def test_check_names_the_file_and_says_what_to_do(tmp_path: Path) -> None:
    config = _site(tmp_path, HOSTILE["stars"])
    result = _digest(config, "check")
    assert result.returncode == 1
    assert "2024-06-04-hostile.md:" in result.stdout
    assert "escape long runs of * or _" in result.stdout


def test_ordinary_nesting_and_emphasis_are_kept(tmp_path: Path) -> None:
    body = ("<div><ul>" + "<li><p><em>a</em> <strong>b</strong></p></li>" * 300 + "</ul></div>\n"
            "\n" + "> " * 10 + "**bold** and *em* " * 100 + "\n")
    assert shape_problems(tmp_path / "x.md", body, 3, ".md", ("md",)) == []
    html = sanitize(render_post(body, ".md", None, "\n\n", _ctx(), ("md",)).html)
    assert html.count("<strong>") == 400 and html.count("<li>") == 300


def test_depth_counts_what_a_parser_would_build() -> None:
    assert nesting_depth("<p>a<p>b<p>c") == 1  # paragraphs close each other
    assert nesting_depth("<br><img src=x><hr/>") == 0
    assert nesting_depth("<div><span></div></span>" * 3) == 2  # </div> pops the span too
    assert nesting_depth("<a>" * 500, stop=150) == 151  # stops counting past the bound


def test_sanitize_flattens_deep_html_before_nh3() -> None:
    # 200,000 unclosed divs took nh3 minutes; flattened first it is immediate
    assert sanitize("<div>" * 200_000 + "hello") == "<p>hello</p>\n"


def _ctx():
    from digest.posts.content import PageContext

    return PageContext("https://x.org", "", "X", "https://x.org/p/", "P", {})


_LAZY_TAG = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9:-]*)\b[^>]*?(/?)>")  # the old tokenizer


def _depth_lazy(fragment: str, stop: int) -> int:
    """nesting_depth with the lazy tokenizer: the reference for the fast one."""
    return nesting_depth(fragment, stop, tags=_LAZY_TAG)


_PIECES = st.sampled_from(["<", ">", "/", "/>", "</", "<div", "<p", "<br", "<LI", "<a:b",
                           "<x-y", " ", "=", '"', "é", "\n", "text", "<div>", "</div>",
                           "<p/>", "</p/>", "<img src=x/>", "<span a='>'>", "<1>", "<é>"])


@settings(max_examples=500)
@given(st.lists(_PIECES, max_size=60).map("".join), st.integers(1, 30))
def test_the_greedy_tokenizer_counts_as_the_lazy_one(fragment: str, stop: int) -> None:
    assert nesting_depth(fragment, stop) == _depth_lazy(fragment, stop)


_LINES = st.lists(st.lists(_PIECES | st.just(">\n"), max_size=40).map("".join), min_size=1,
                  max_size=4)


@settings(max_examples=300)
@given(_LINES, st.integers(1, 30))
def test_a_layout_walks_its_pages_by_lines_as_deep_as_nesting_depth(pages: list[str],
                                                                    stop: int) -> None:
    """The email pages' guard remembers each line's walk from the elements open before it
    (several pages sharing what it remembers, as a send's pages do): same depths."""
    depth = _Depths(stop)
    for page in pages + pages:
        assert depth(page) == nesting_depth(page, stop)

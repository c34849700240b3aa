"""Compare digest's reading of a Hugo content section with what the real `hugo` publishes.

    python scripts/hugo_compare.py SITE/hugo.toml SITE/content/blog

Copies the site's config and content into a temporary folder (the site itself is never
written to), adds tests/hugo/layouts/index.html, which dumps every page of the section as
JSON, and stand-ins for the shortcodes the site's theme would supply, builds it with
`hugo`, reads the same section with `digest posts --json`, and prints how many posts agree
on url, date (the instant), title, tags and categories, then every difference; then, for
posts without shortcodes (Hugo runs stand-ins, digest its own: not comparable), how many
render identically (HTML, whitespace normalised and Hugo's links absolutized as digest's
are; and text alone) with the first differences. Exit 1 on any difference in the fields or
the text. Used by tests/test_hugo_parity.py and by hand on ../shared/corpora/hugo-linkerd.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

DUMP = Path(__file__).resolve().parent.parent / "tests" / "hugo" / "layouts" / "index.html"
FIELDS = ("url", "date", "title", "tags", "categories")
# built into Hugo and safe offline; any other shortcode gets a stand-in that keeps its text
BUILTIN = {"ref", "relref", "youtube", "figure", "highlight", "param", "vimeo"}
_SHORTCODE = re.compile(r"{{[<%]\s*([\w.-]+)")
_CLOSING = re.compile(r"{{[<%]\s*/\s*([\w.-]+)")


def hugo_build(config: Path, posts: Path, work: Path, *, future: bool = False) -> dict[str, Any]:
    """Build a copy of the site in *work*; the dump of the section's pages."""
    content = config.parent / "content"
    section = posts.relative_to(content).parts[0]
    site = work / "site"
    site.mkdir()
    shutil.copy(config, site / config.name)
    shutil.copytree(content, site / "content")
    layouts = site / "layouts"
    (layouts / "shortcodes").mkdir(parents=True)
    shutil.copy(DUMP, layouts / "index.html")
    texts = [f.read_text(errors="replace") for f in (site / "content").rglob("*.md")]
    used = {m.group(1) for text in texts for m in _SHORTCODE.finditer(text)}
    paired = {m.group(1) for text in texts for m in _CLOSING.finditer(text)}
    for name in sorted(used - BUILTIN):  # Hugo insists a shortcode using .Inner is closed
        (layouts / "shortcodes" / f"{name}.html").write_text(
            "{{ .Inner }}" if name in paired else "")
    env = {**os.environ, "HUGO_DIGEST_SECTION": section,
           "HUGO_REFLINKSERRORLEVEL": "WARNING"}
    done = subprocess.run(["hugo", "--quiet", "--source", str(site), "--config", config.name,
                           "--destination", str(work / "public"),
                           *(["--buildFuture"] if future else [])],
                          env=env, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"hugo failed:\n{done.stdout}{done.stderr}")
    dump: dict[str, Any] = json.loads((work / "public" / "index.html").read_text())
    for page in dump["posts"]:
        page["path"] = page["path"].replace(os.sep, "/").removeprefix(
            str(posts.relative_to(content)).replace(os.sep, "/") + "/")
    return dump


def digest_read(config: Path, posts: Path, work: Path) -> dict[str, Any]:
    """`digest posts --json` over the same section."""
    from click.testing import CliRunner

    from digest.cli.commands import main

    ours = work / "config.yaml"
    ours.write_text(f"site:\n  hugo_config: {config}\nposts: {posts}\n"
                    f"output: {work / 'out'}\nstate: {work / 'state'}\n")
    result = CliRunner().invoke(main, ["--config", str(ours), "posts", "--json"])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    read: dict[str, Any] = json.loads(result.stdout)
    return read


def digest_content(config: Path, posts: Path, work: Path) -> dict[str, str]:
    """Each post's body as digest renders it for Hugo (before the sanitiser, which Hugo has
    no counterpart of), by path under the section."""
    from datetime import UTC, datetime

    from digest.config.cache import load_config
    from digest.posts.hugo_render import render_hugo_post
    from digest.posts.reader import read_posts
    from digest.posts.rendered import PostUrls, _context
    from digest.state.store import Store

    cfg = load_config(work / "config.yaml")
    store = Store.open(cfg.state)
    try:
        read = read_posts(cfg, store, now=datetime.now(UTC))
    finally:
        store.close()
    urls = PostUrls.of(cfg.site, read.posts)
    return {p.path: render_hugo_post(cfg.posts / p.path, p, _context(cfg.site, p, urls)).html
            for p in read.posts}


_SPACE = re.compile(r">\s+<")
_WS = re.compile(r"\s+")
_TAG = re.compile(r"<[^>]*>")
_VOID = re.compile(r"<(br|hr|img|input)\b([^>]*?)\s*/?>")
# shortcodes: Hugo runs stand-ins (their inner text), digest drops or stands in its own way
_HAS_SHORTCODE = re.compile(r"{{[<%]")


def absolutize(fragment: str, url: str) -> str:
    from digest.posts.content import absolutize as absolute

    return absolute(fragment, url)


def norm_html(text: str) -> str:
    """HTML with insignificant whitespace and void-tag spelling normalised."""
    return _WS.sub(" ", _VOID.sub(r"<\1\2>", _SPACE.sub("><", text))).strip()


def norm_text(text: str) -> str:
    """Text alone: tags stripped, entities unescaped, whitespace collapsed."""
    return _WS.sub(" ", html.unescape(_TAG.sub("", text))).strip()


def first_difference(a: str, b: str, width: int = 60) -> str:
    i = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y),
             min(len(a), len(b)))
    return f"ours …{a[max(0, i - 20):i + width]!r}\n      Hugo …{b[max(0, i - 20):i + width]!r}"


def compare_content(ours: dict[str, str], reference: dict[str, Any], sources: Path,
                    show: int = 10) -> tuple[int, int, int, int, list[str]]:
    """(html agree, text agree, compared, excluded for shortcodes, first differences)."""
    same_html = same_text = total = excluded = 0
    out: list[str] = []
    for page in reference["posts"]:
        path = page["path"]
        if path not in ours:
            continue
        if _HAS_SHORTCODE.search((sources / path).read_text(errors="replace")):
            excluded += 1
            continue
        total += 1
        theirs = absolutize(page["content"], page["url"])  # as digest does, for feeds
        a, b = norm_html(ours[path]), norm_html(theirs)
        same_html += a == b
        ta, tb = norm_text(ours[path]), norm_text(theirs)
        if ta == tb:
            same_text += 1
        elif len(out) < show:
            out.append(f"{path}: text differs\n      {first_difference(ta, tb)}")
        if a != b and ta == tb and len(out) < show:
            out.append(f"{path}: html differs\n      {first_difference(a, b)}")
    return same_html, same_text, total, excluded, out


def _terms(value: Any) -> list[str]:
    """Terms as a list: Hugo's .Params keeps a single term written as text as it is."""
    return [str(t) for t in (value if isinstance(value, list) else [value] if value else [])]


def _norm(post: dict[str, Any], tags: str, categories: str) -> dict[str, Any]:
    return {
        "url": post["url"],
        "date": datetime.fromisoformat(post["date"]).timestamp(),
        "title": str(post["title"]),
        "tags": _terms(post[tags]),
        "categories": _terms(post[categories]),
    }


def compare(ours: dict[str, Any], reference: dict[str, Any],
            terms: str = "") -> tuple[dict[str, int], int, list[str]]:
    """(agreeing posts per field, posts compared, every difference). *terms*: '' compares
    the terms as written in the front matter, 'term_' the names Hugo's term pages show."""
    mine = {p["path"]: _norm(p, "tags", "categories") for p in ours["posts"]}
    theirs = {p["path"]: _norm(p, terms + "tags", terms + "categories")
              for p in reference["posts"]}
    rejected = {r["path"]: r["message"] for r in ours["rejected"]}
    agree = dict.fromkeys(FIELDS, 0)
    out = []
    for path in sorted(set(mine) | set(theirs)):
        if path not in mine:
            why = f"rejected by us: {rejected[path]}" if path in rejected else "MISSING"
            out.append(f"{path}: only Hugo publishes it ({why})")
        elif path not in theirs:
            out.append(f"{path}: only we publish it")
        else:
            for key in FIELDS:
                if mine[path][key] == theirs[path][key]:
                    agree[key] += 1
                else:
                    out.append(f"{path}: {key} {mine[path][key]!r} != Hugo's "
                               f"{theirs[path][key]!r}")
    return agree, len(theirs), out


def main() -> int:
    config, posts = Path(sys.argv[1]).resolve(), Path(sys.argv[2]).resolve()
    with tempfile.TemporaryDirectory() as tmp:
        reference = hugo_build(config, posts, Path(tmp))
        ours = digest_read(config, posts, Path(tmp))
        content = digest_content(config, posts, Path(tmp))
    agree, total, lines = compare(ours, reference)
    print(f"hugo publishes {total} posts, digest {len(ours['posts'])}")
    for key in FIELDS:
        print(f"  {key:<11} {agree[key]}/{total}")
    print("\n".join(lines) or "identical")
    same_html, same_text, compared, excluded, diffs = compare_content(content, reference, posts)
    print(f"content ({compared} posts without shortcodes; {excluded} with shortcodes excluded):")
    print(f"  html        {same_html}/{compared}\n  text        {same_text}/{compared}")
    print("\n".join(diffs))
    return 1 if lines or same_text < compared else 0


if __name__ == "__main__":
    sys.exit(main())

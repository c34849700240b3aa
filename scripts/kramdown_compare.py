"""Compare digest's rendering of each post with kramdown's, as real Jekyll published it.

    python scripts/kramdown_compare.py SITE_DIR [DUMP.json] [--show N]

SITE_DIR holds `_posts/` (and `_config.yml`, if the site has one), or is a folder of posts.
Without DUMP.json, the reference is made here: the site is copied to a temporary folder and
built with the real `jekyll` and scripts/jekyll_content_dump.rb, which writes each post's
converted content
(what jekyll-feed puts in <content>) and its smartified title. Prints how many posts render
identically (HTML with insignificant whitespace normalised; and text alone), the differing
posts grouped by a rough category, and the first differences. Used by hand on the corpora
in ../shared; the figures are in tests/test_kramdown.py's docstring.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from digest.config import Site
from digest.config.kramdownconfig import kramdown_settings
from digest.errors import DigestError
from digest.posts.content import (
    PageContext,
    render,
    smart_title,
    stem_of,
    strip_html,
    tame_liquid,
)
from digest.posts.parse import body_of, parse_post
from digest.util.yamlsource import load_located

HERE = Path(__file__).resolve().parent
_SPACE = re.compile(r">\s+<")
_BEFORE_BLOCK = re.compile(r"\s+(?=</?(?:p|li|td|th|br)\b)")  # a line's trailing spaces
_WS = re.compile(r"\s+")
_ASCII = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"',
                        "\u2013": "--", "\u2014": "---", "\u2026": "...", "«": "<<",
                        "»": ">>"})
_ID = re.compile(r' id="[^"]*"')
_VOID = re.compile(r"<(br|hr|img|input|meta|link|col|area|source|wbr)\b([^>]*?)\s*/?>")


def posts_of(site: Path) -> Path:
    """The posts: `_posts/` in a site, or the folder itself when it holds only posts."""
    return site / "_posts" if (site / "_posts").is_dir() else site


def reference(site: Path) -> dict[str, Any]:
    """Build *site* with real Jekyll (plugins reduced to jekyll-feed) and read the dump."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "site"
        root.mkdir()
        shutil.copytree(posts_of(site), root / "_posts")
        config = (site / "_config.yml").read_text() if (site / "_config.yml").exists() else ""
        config = re.sub(r"\n(plugins|whitelist|gems):\n(  - .*\n)+", "\n", config)
        (root / "_config.yml").write_text(config + "\nplugins:\n  - jekyll-feed\n")
        (root / "_plugins").mkdir()
        shutil.copy(HERE / "jekyll_content_dump.rb", root / "_plugins")
        for target in re.findall(r"{%-?\s*link\s+(_(?!posts/)[^\s%]+)", "".join(
                p.read_text(errors="replace") for p in (root / "_posts").rglob("*.*"))):
            stub = root / target  # a `{% link %}` to a page the corpus does not include
            stub.parent.mkdir(parents=True, exist_ok=True)
            stub.write_text("---\n---\n")
            collection = target.split("/")[0][1:]
            with (root / "_config.yml").open("a") as out:
                out.write(f"collections:\n  {collection}:\n    output: true\n")
        dump = Path(tmp) / "dump.json"
        env = {**os.environ, "DIGEST_CONTENT_DUMP": str(dump), "JEKYLL_ENV": "production"}
        subprocess.run(["jekyll", "build", "-q", "-s", str(root), "-d", str(Path(tmp) / "out")],
                       check=True, env=env, timeout=600)
        data: dict[str, Any] = json.loads(dump.read_text())
        return data


_ROUGE_OPEN = re.compile(r'<div class="language-([\w+#.-]+) highlighter-rouge"><div '
                         r'class="highlight"><pre class="highlight"><code>')
_ROUGE_SPAN = re.compile(r'<span class="[\w -]*">|</span>')
_PRE = re.compile(r"<pre><code[^>]*>.*?</code></pre>", re.S)


def unrouge(fragment: str) -> str:
    """Jekyll's rouge code block as markdown-it writes it (digest keeps that: the wrappers
    and highlighting spans hold no text, and the sanitiser strips their classes)."""
    fragment = _ROUGE_OPEN.sub(lambda m: "<pre><code>" if m.group(1) == "plaintext"
                               else f'<pre><code class="language-{m.group(1)}">', fragment)
    fragment = fragment.replace("</code></pre></div></div>", "</code></pre>")
    return _PRE.sub(lambda m: _ROUGE_SPAN.sub("", m.group(0)), fragment)


def normal(fragment: str) -> str:
    """HTML with whitespace between tags and runs of whitespace made insignificant, and
    rouge's code blocks as markdown-it's."""
    fragment = unrouge(fragment)
    fragment = _VOID.sub(r"<\1\2 />", fragment)  # `<br>` and `<br />` are the same element
    fragment = _BEFORE_BLOCK.sub("", _SPACE.sub("><", html.unescape(fragment)))
    return _WS.sub(" ", fragment).strip()


def category(ours: str, theirs: str) -> str:
    if ours.translate(_ASCII) == theirs.translate(_ASCII):
        return "typography"
    if _ID.sub("", ours) == _ID.sub("", theirs):
        return "header ids"
    if _ID.sub("", ours).translate(_ASCII) == _ID.sub("", theirs).translate(_ASCII):
        return "typography + header ids"
    return "other"


def first_difference(a: str, b: str, width: int = 90) -> str:
    i = next((k for k, (x, y) in enumerate(zip(a, b, strict=False)) if x != y),
             min(len(a), len(b)))
    start = max(0, i - width // 3)
    return f"    ours:   {a[start:i + width]!r}\n    jekyll: {b[start:i + width]!r}"


def site_of(folder: Path) -> Site:
    config = folder / "_config.yml"
    located = load_located(config) if config.exists() else None
    data = located.data if located is not None else {}
    ext = data.get("markdown_ext", "markdown,mkdown,mkdn,mkd,md")
    return Site(url=str(data.get("url") or ""), baseurl=str(data.get("baseurl") or ""),
                title=str(data.get("title") or ""), timezone=str(data.get("timezone") or "UTC"),
                markdown_ext=tuple(e.strip() for e in ext.split(",")),
                kramdown=kramdown_settings(config, located) if located is not None
                else Site().kramdown)


def post_urls(folder: Path, site: Site) -> dict[str, str]:
    """`{% post_url %}` and `{% link _posts/… %}` targets: every post's absolute URL."""
    urls = {}
    for file in sorted(posts_of(folder).rglob("*.*")):
        rel = file.relative_to(posts_of(folder)).as_posix()
        try:
            urls[stem_of(rel)] = site.root + parse_post(file, rel, file.read_bytes(), site).url
        except DigestError:
            continue
    return urls


def ours(folder: Path, site: Site, path: str,
         urls: dict[str, str] | None = None) -> tuple[str, str, str]:
    """(the rendered body, the title, the file extension) digest makes of one post."""
    file = posts_of(folder) / path
    raw = file.read_bytes()
    try:
        post = parse_post(file, path, raw, site)
    except DigestError:
        return "", "", ""
    ctx = PageContext(site.root, site.baseurl, site.title, site.root + post.url,
                      post.title, urls or {})
    body = tame_liquid(body_of(file, raw), ctx)
    return (render(body, post.ext, site.markdown_ext, site.kramdown),
            smart_title(post.title, site.kramdown), post.ext)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("site", type=Path)
    parser.add_argument("dump", type=Path, nargs="?")
    parser.add_argument("--show", type=int, default=5)
    args = parser.parse_args()
    if args.dump and args.dump.exists():
        ref = json.loads(args.dump.read_text())
    else:
        ref = reference(args.site)
        if args.dump:
            args.dump.write_text(json.dumps(ref))
    site = site_of(args.site)
    urls = post_urls(args.site, site)
    same_html = same_text = same_title = 0
    kinds: Counter[str] = Counter()
    shown: dict[str, int] = {}
    elapsed = 0.0
    posts = ref["posts"]
    for item in posts:
        started = time.perf_counter()
        mine, title, _ = ours(args.site, site, item["path"], urls)
        elapsed += time.perf_counter() - started
        a, b = normal(mine), normal(item["html"])
        same_html += a == b
        same_text += strip_html(mine) == strip_html(item["html"])
        same_title += title == strip_html(str(item["title"] or ""))
        if a != b:
            kind = category(a, b)
            kinds[kind] += 1
            if shown.get(kind, 0) < args.show:
                shown[kind] = shown.get(kind, 0) + 1
                print(f"[{kind}] {item['path']}\n{first_difference(a, b)}")
    total = len(posts)
    print(f"\nidentical HTML: {same_html}/{total}; identical text: {same_text}/{total}; "
          f"identical titles: {same_title}/{total}")
    print("differing, by category: " + ", ".join(f"{k} {n}" for k, n in kinds.most_common()))
    print(f"digest render time: {elapsed * 1000:.0f} ms for {total} posts")
    return 0 if same_html == total else 1


if __name__ == "__main__":
    sys.exit(main())

"""A Hugo page's body → HTML for feeds and email, as Hugo's Goldmark renders it: CommonMark
with GitHub's tables and strikethrough (markdown-it-py), not the kramdown emulation Jekyll
posts get. Shortcodes are not run: a few built-in ones are stood in for, the rest dropped
(hugo.tame_shortcodes). A `ref` is resolved among the posts when rendered; a rendering is
cached by the page's own file, so it keeps a ref's old URL until the page changes. The
summary is the body up to `<!--more-->`, else its first paragraph (hugo.py says why).

Raw HTML in the Markdown is kept (Goldmark's `unsafe = true`): the sanitiser downstream
removes what a reader must not get, and most sites that publish feeds turn it on.
"""

from __future__ import annotations

import html
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from .content import (
    PageContext,
    Rendered,
    absolutize,
    excerpt_source,
    flatten,
    strip_html,
    too_deep,
    xml_safe,
)
from .hugo import body_of, tame_shortcodes
from .parse import Post

if TYPE_CHECKING:
    from markdown_it import MarkdownIt


@lru_cache(maxsize=1)
def _goldmark_like() -> MarkdownIt:
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])


def render_body(text: str, ext: str) -> str:
    """HTML of a body: Markdown rendered, an .html page's body as it is."""
    if ext.lower() in (".html", ".htm"):
        return text
    rendered: str = _goldmark_like().render(text)
    return rendered


def _shallow(fragment: str) -> str:
    return flatten(fragment) if too_deep(fragment) else fragment


def render_hugo_post(path: Path, post: Post, ctx: PageContext) -> Rendered:
    """Full HTML and the summary (plain and HTML) of one Hugo page."""
    body = tame_shortcodes(body_of(path, path.read_bytes()), ctx.post_urls)
    full = _shallow(absolutize(render_body(body, post.ext), ctx.page_url))
    if post.excerpt is not None:
        summary_html = html.escape(post.excerpt) if "<" not in post.excerpt \
            else _shallow(post.excerpt)
    else:
        summary_html = _shallow(absolutize(render_body(
            excerpt_source(body, post.excerpt_separator), post.ext), ctx.page_url))
    return Rendered(xml_safe(full), xml_safe(strip_html(summary_html)), xml_safe(summary_html))

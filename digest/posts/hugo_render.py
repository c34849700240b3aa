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
import re
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
    from markdown_it.rules_core import StateCore


@lru_cache(maxsize=1)
def _goldmark_like() -> MarkdownIt:
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark", {"html": True, "typographer": True,
                                   "quotes": "".join(_MARK[e] for e in _QUOTES)})
    md.enable(["table", "strikethrough", "smartquotes", "replacements"])
    md.core.ruler.at("replacements", _goldmark_replacements)
    md.core.ruler.push("heading_ids", _heading_ids)
    return md


# Goldmark's typographer writes entities; markdown-it writes characters. Its substitutions
# are made as private-use marks here and turned into Goldmark's entities after rendering, so
# a ’ the author typed stays a character, as in Hugo.
_QUOTES = ("&ldquo;", "&rdquo;", "&lsquo;", "&rsquo;")
_ENTITIES = (*_QUOTES, "&ndash;", "&mdash;", "&hellip;", "&laquo;", "&raquo;")
_MARK = {entity: chr(0xE000 + i) for i, entity in enumerate(_ENTITIES)}
_UNMARK = {ord(mark): entity for entity, mark in _MARK.items()}
_TYPED_RSQUO = "\ue010"  # a ’ the author typed, while markdown-it's apostrophes are made
_UNMARK |= {ord("\u2019"): "&rsquo;", ord(_TYPED_RSQUO): "\u2019"}
_NO_MARKS = {ord(mark): "\ufffd" for mark in (*_MARK.values(), _TYPED_RSQUO)} | {
    ord("\u2019"): _TYPED_RSQUO}
# Goldmark's substitutions, longest first; not markdown-it's (c) → © and +- → ±
_REPLACE = re.compile(r"---|--|\.\.\.|<<|>>")
_REPLACEMENT = {"---": _MARK["&mdash;"], "--": _MARK["&ndash;"], "...": _MARK["&hellip;"],
                "<<": _MARK["&laquo;"], ">>": _MARK["&raquo;"]}


def _goldmark_replacements(state: StateCore) -> None:
    """Goldmark's typographer dashes, ellipsis and angle quotes, outside code and links."""
    for token in state.tokens:
        if token.type != "inline" or token.children is None:
            continue
        in_link = 0
        for child in token.children:
            if child.type == "link_open":
                in_link += child.info == "auto"
            elif child.type == "link_close":
                in_link -= in_link > 0 and child.info == "auto"
            elif child.type == "text" and not in_link:
                child.content = _REPLACE.sub(lambda m: _REPLACEMENT[m.group()], child.content)


def _anchor(text: str) -> str:
    """Hugo's GitHub-style heading id: letters and digits lowercased, spaces to '-', '-'
    and '_' kept, everything else dropped."""
    return "".join(c.lower() if c.isalnum() or c in "-_" else "-" if c.isspace() else ""
                   for c in text.strip())


def _heading_ids(state: StateCore) -> None:
    """Goldmark's auto heading ids, made unique by -1, -2… in document order."""
    seen: set[str] = set()
    tokens = state.tokens
    for i, token in enumerate(tokens):
        if token.type != "heading_open" or i + 1 >= len(tokens):
            continue
        inline = tokens[i + 1]
        text = "".join(c.content for c in inline.children or ()
                       if c.type in ("text", "code_inline"))
        base = _anchor(text) or "heading"
        anchor, n = base, 0
        while anchor in seen:
            n += 1
            anchor = f"{base}-{n}"
        seen.add(anchor)
        token.attrSet("id", anchor)


def render_body(text: str, ext: str) -> str:
    """HTML of a body: Markdown rendered, an .html page's body as it is."""
    if ext.lower() in (".html", ".htm"):
        return text
    rendered: str = _goldmark_like().render(text.translate(_NO_MARKS))
    return rendered.translate(_UNMARK)


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

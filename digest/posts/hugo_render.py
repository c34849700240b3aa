"""A Hugo page's body → HTML for feeds and email, as Hugo's Goldmark renders it with Hugo's
default extensions (markdown-it-py and mdit-py-plugins, the markup rewritten to Goldmark's):
CommonMark, tables, strikethrough, typographer, linkify, task and definition lists,
footnotes, GitHub-style heading ids; not the kramdown emulation Jekyll posts get. The
site's [markup.goldmark] settings are not read yet: the defaults always apply.
Shortcodes are not run: a few built-in ones are stood in for, the rest dropped
(hugo.tame_shortcodes). A `ref` is resolved among the posts when rendered; a rendering is
cached by the page's own file, so it keeps a ref's old URL until the page changes. The
summary is the body up to `<!--more-->`, else its first paragraph (hugo.py says why).

Raw HTML in the Markdown is kept (Goldmark's `unsafe = true`, where Hugo's default writes
`<!-- raw HTML omitted -->`): the sanitiser downstream removes what a reader must not get,
and most sites that publish feeds turn it on; dropping it would lose text (a <b>, a link).
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from functools import lru_cache
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING, Any

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
    from markdown_it.token import Token


@lru_cache(maxsize=1)
def _goldmark_like() -> MarkdownIt:
    from markdown_it import MarkdownIt
    from mdit_py_plugins.deflist import deflist_plugin
    from mdit_py_plugins.footnote import footnote_plugin
    from mdit_py_plugins.tasklists import tasklists_plugin

    md = MarkdownIt("commonmark", {"html": True, "typographer": True, "linkify": True,
                                   "quotes": "".join(_MARK[e] for e in _QUOTES)})
    md.enable(["table", "strikethrough", "smartquotes", "replacements", "linkify"])
    md.use(footnote_plugin).use(deflist_plugin).use(tasklists_plugin)
    md.core.ruler.before("smartquotes", "line_end_apostrophe", _line_end_apostrophe)
    md.core.ruler.push("goldmark_markup", _goldmark_markup)
    md.add_render_rule("footnote_ref", _footnote_ref)
    md.add_render_rule("footnote_block_open", lambda *_: _FOOTNOTES_OPEN)
    md.add_render_rule("footnote_block_close", lambda *_: "</ol>\n</div>\n")
    md.add_render_rule("footnote_open", _footnote_open)
    md.add_render_rule("footnote_anchor", _footnote_anchor)
    md.core.ruler.at("replacements", _goldmark_replacements)
    md.core.ruler.push("heading_ids", _heading_ids)
    return md


# Goldmark's typographer writes entities; markdown-it writes characters. Its substitutions
# are made as private-use marks here and turned into Goldmark's entities after rendering, so
# a U+2019 the author typed stays a character, as in Hugo.
_QUOTES = ("&ldquo;", "&rdquo;", "&lsquo;", "&rsquo;")
_ENTITIES = (*_QUOTES, "&ndash;", "&mdash;", "&hellip;", "&laquo;", "&raquo;")
_MARK = {entity: chr(0xE000 + i) for i, entity in enumerate(_ENTITIES)}
_UNMARK = {ord(mark): entity for entity, mark in _MARK.items()}
_TYPED_RSQUO = "\ue010"  # a U+2019 the author typed, while markdown-it's apostrophes are made
_KEPT_APOSTROPHE = "\ue011"  # one Goldmark leaves as typed
_UNMARK |= {ord("\u2019"): "&rsquo;", ord(_TYPED_RSQUO): "\u2019", ord(_KEPT_APOSTROPHE): "'"}
_NO_MARKS = {ord(mark): "\ufffd" for mark in (*_MARK.values(), _TYPED_RSQUO,
                                               _KEPT_APOSTROPHE)} | {
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


def _line_end_apostrophe(state: StateCore) -> None:
    """Goldmark leaves a ' that ends a line inside a paragraph as typed (Evans'⏎)."""
    for token in state.tokens:
        children = token.children or []
        for child, after in pairwise(children):
            if child.type == "text" and after.type == "softbreak" \
                    and child.content.endswith("'"):
                child.content = child.content[:-1] + _KEPT_APOSTROPHE


def _anchor(text: str) -> str:
    """Hugo's GitHub-style heading id from the heading's source: letters and digits
    lowercased, spaces to '-', '-' and '_' kept, everything else dropped."""
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
        base = _anchor(inline.content) or "heading"  # from the source, as Goldmark does
        anchor, n = base, 0
        while anchor in seen:
            n += 1
            anchor = f"{base}-{n}"
        seen.add(anchor)
        token.attrSet("id", anchor)


_FOOTNOTES_OPEN = '<div class="footnotes" role="doc-endnotes">\n<hr>\n<ol>\n'
_LINKED = re.compile(r"(?i)[a-z][a-z0-9+.-]*://|www\.|mailto:|[^\s@]+@")
_CHECKBOX = re.compile(r'<input class="task-list-item-checkbox"( checked="checked")?')


def _note(tokens: Sequence[Token], idx: int) -> int:
    return int(tokens[idx].meta["id"]) + 1


def _footnote_ref(self: Any, tokens: Sequence[Token], idx: int, *_: Any) -> str:
    n = _note(tokens, idx)
    return (f'<sup id="fnref:{n}"><a href="#fn:{n}" class="footnote-ref" '
            f'role="doc-noteref">{n}</a></sup>')


def _footnote_open(self: Any, tokens: Sequence[Token], idx: int, *_: Any) -> str:
    return f'<li id="fn:{_note(tokens, idx)}">\n'


def _footnote_anchor(self: Any, tokens: Sequence[Token], idx: int, *_: Any) -> str:
    return (f'&#160;<a href="#fnref:{_note(tokens, idx)}" class="footnote-backref" '
            'role="doc-backlink">&#x21a9;&#xfe0e;</a>')


def _goldmark_markup(state: StateCore) -> None:
    """Goldmark's task-list and linkify markup: a bare checkbox, no classes; only URLs with a
    scheme, www. (to https) and e-mail addresses become links, not a bare domain."""
    for token in state.tokens:
        if token.attrGet("class") in ("task-list-item", "contains-task-list"):
            del token.attrs["class"]
        if token.children is None:
            continue
        kept: list[Token] = []
        children = token.children
        i = 0
        while i < len(children):
            child = children[i]
            if child.type == "html_inline" and _CHECKBOX.match(child.content):
                child.content = _CHECKBOX.sub(
                    lambda m: "<input" + (' checked=""' if m.group(1) else ""), child.content
                ).replace('disabled="disabled"', 'disabled=""')
            elif child.type == "link_open" and child.markup == "linkify" \
                    and i + 2 < len(children):
                text = children[i + 1].content
                if not _LINKED.match(text):
                    kept.append(children[i + 1])  # a bare domain stays text
                    i += 3
                    continue
                if text.startswith("www."):
                    child.attrSet("href", "https://" + text)
            kept.append(child)
            i += 1
        token.children = kept


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

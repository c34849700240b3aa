"""markdown-it made to render as Jekyll's kramdown does (GFM input, Jekyll's defaults).

A reader moving from jekyll-feed to digest should see the same text. kramdown differs from
CommonMark where posts notice it: it turns straight quotes into curly ones, `--` and `---`
into dashes, `...` into an ellipsis and `<<`/`>>` into guillemets (in text only, never in
code, URLs or raw HTML); lists, block quotes, indented code and setext headers are
kramdown_lists.py's; headers get GFM-style ids; links may hold spaces; code spans
carry the class Jekyll's rouge gives them; footnotes and kramdown's header-less tables are
kramdown_blocks.py's. Code blocks keep markdown-it's `<pre><code class="language-x">`: rouge's
wrappers hold no text, and the sanitiser would strip their classes anyway.

The site's `kramdown:` settings (config.settings.Kramdown) choose the four quotes, whether
headers get ids and their prefix, hard wraps, and the first footnote's number.

The typography follows kramdown 2.4's span parsers (parser/kramdown/smart_quotes.rb and
typographic_symbol.rb) rule for rule: a quote is judged by the character before it, when
that character is in the same run of text, and by what follows.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..config.settings import JEKYLL_KRAMDOWN, Kramdown

if TYPE_CHECKING:
    from markdown_it import MarkdownIt
    from markdown_it.renderer import RendererHTML
    from markdown_it.rules_core import StateCore
    from markdown_it.token import Token
    from markdown_it.utils import EnvType, OptionsDict

LSQUO, RSQUO, LDQUO, RDQUO = "\u2018", "\u2019", "\u201c", "\u201d"
# kramdown's SQ_PUNCT and SQ_CLOSE; Ruby's \w, \s and \b are ASCII, hence re.A
_PUNCT = r"""[!"#$%'()*+,\-./:;<=>?@\[\\\]^_`{|}~]"""
_CLOSE = r"[^ \\\t\r\n\[{(-]"
# a quote by group 1 or 2, left or right; "q0" … "q3": that one of the site's four quotes
L1, R1, L2, R2 = "l1", "r1", "l2", "r2"
_RULES: list[tuple[re.Pattern[str], tuple[int | str, ...]]] = [
    (re.compile(pattern, re.A | flags), subst) for pattern, flags, subst in [
        (r"""("|')(?=[_*]{1,2}\S)""", 0, (L1,)),
        (rf"""("|')(?={_PUNCT}(?!\.\.)\B)""", 0, (R1,)),
        # double sets of quotes: He said, "'Quoted' words in a larger quote."
        (r"""(\s?)"'(?=\w)""", 0, (1, "q2", "q0")),
        (r"""(\s?)'"(?=\w)""", 0, (1, "q0", "q2")),
        (r"(\s?)'(?=\d\ds)", 0, (1, "q1")),  # decades: the '80s
        (r"""(\s)('|")(?=\w)""", 0, (1, L2)),
        (rf"""({_CLOSE})('|")""", 0, (1, R2)),
        (r"""("|')(?=\s|s\b|$)""", re.M, (R1,)),  # <i>Custer</i>'s Last Stand
        (r"(.?)'", re.S, (1, "q0")),
        (r'(.?)"', re.S, (1, "q2")),
    ]]
QUOTES = (LSQUO, RSQUO, LDQUO, RDQUO)  # kramdown's default smart_quotes, lsquo,rsquo,ldquo,rdquo
_QUOTE_AT = {("l", "'"): 0, ("r", "'"): 1, ("l", '"'): 2, ("r", '"'): 3}
_SYMBOLS = {"---": "\u2014", "--": "\u2013", "...": "\u2026", "\\<<": "<<", "\\>>": ">>",
            "<< ": "«\u00a0", " >>": "\u00a0»", "<<": "«", ">>": "»"}
# kramdown tries smart quotes before typographic symbols, at the leftmost place either fits
_SPAN = re.compile(r"""(?P<quote>[^\\]?["'])|(?P<sym>---|--|\.\.\.|\\<<|\\>>|<< | >>|<<|>>)""")


def _quote(text: str, at: int, quotes: Sequence[str]) -> tuple[str, int]:
    """The smart quote kramdown makes of the match at *at*, and where the scan resumes."""
    for pattern, subst in _RULES:
        match = pattern.match(text, at)
        if match is None:
            continue
        out = []
        for part in subst:
            if isinstance(part, int):
                out.append(match.group(part))
            elif part in (L1, R1, L2, R2):
                out.append(quotes[_QUOTE_AT[part[0], match.group(int(part[1]))]])
            else:  # "q0" … "q3": that quote
                out.append(quotes[int(part[1])])
        return "".join(out), match.end()
    raise AssertionError("the last two rules match any quote")  # pragma: no cover


def smarten(text: str, before: str = "", after: str = "",
            quotes: Sequence[str] = QUOTES) -> str:
    """kramdown's typography on one run of text: curly quotes, dashes, ellipses, guillemets.

    *before* is the character kramdown sees before the run (a newline after a soft break),
    *after* what follows it in the source (the markup of the next element): both only steer
    the rules, and are not returned. *quotes*: the site's left and right single, left and
    right double quotes.
    """
    if "'" not in text and '"' not in text and "--" not in text and "..." not in text \
            and "<<" not in text and ">>" not in text:
        return text
    source = before + text + after
    end = len(before) + len(text)
    out = []
    at = len(before)
    while (match := _SPAN.search(source, at, end)) is not None:
        out.append(source[at:match.start()])
        if match.group("quote"):
            done, resume = _quote(source, match.start(), quotes)
            if resume > end:  # a rule reaching into *after*: leave that quote alone
                done, resume = source[match.start():end], end
            out.append(done)
            at = resume
        else:
            out.append(_SYMBOLS[match.group("sym")])
            at = match.end()
    out.append(source[at:end])
    return "".join(out)


_MARKUP = re.compile(r"(<[^>]*>|&(?:#x[0-9a-fA-F]+|#\d+|[a-zA-Z][a-zA-Z0-9]*);)")


def smartify(text: str, quotes: Sequence[str] = QUOTES) -> str:
    """Jekyll's `smartify` filter (kramdown's SmartyPants parser), which jekyll-feed applies
    to every title: the typography of smarten, outside HTML tags and entities."""
    if "<" not in text and "&" not in text:
        return smarten(text, quotes=quotes)
    parts = _MARKUP.split(text)
    return "".join(part if index % 2 else smarten(part, quotes=quotes)
                   for index, part in enumerate(parts))


def _source_of(token: Token) -> str:
    """The first characters of *token* as written in the source: what kramdown's rules see
    after a run of text."""
    if token.type in ("softbreak", "hardbreak"):
        return "\n"
    if token.type == "link_open":
        return "["
    if token.type == "image":
        return "!["
    if token.type == "html_inline":
        return token.content
    return token.markup


def _smart_children(children: Sequence[Token], quotes: Sequence[str]) -> None:
    """Smarten each text token. A soft break is seen as the newline it is; anything else
    (code, HTML, an escaped character, emphasis) ends kramdown's run of text, though its
    rules still look at the source that follows (`"*a*"`: the quote opens)."""
    autolink = False  # `<http://a--b>`: kramdown keeps an autolink's text as written
    for index, token in enumerate(children):
        if token.type in ("link_open", "link_close"):
            autolink = token.type == "link_open" and token.markup == "autolink"
        if token.type != "text" or autolink:  # an image's alt text is not here either
            continue
        previous = children[index - 1] if index else None
        before = "\n" if previous is not None and previous.type == "softbreak" else ""
        after = ""
        # the rules look at most 3 characters ahead; a few tokens hold them (bounded: a
        # post of many tokens stays linear)
        for following in children[index + 1:index + 9]:
            after += following.content if following.type == "text" else _source_of(following)
            if len(after) >= 3:
                break
        token.content = smarten(token.content, before, after, quotes)


def _typography(state: StateCore, quotes: Sequence[str]) -> None:
    for token in state.tokens:
        if token.type == "inline" and token.children:
            _smart_children(token.children, quotes)


_NON_WORD = re.compile(r"[^\w\- \t]")


def header_id(raw: str, seen: dict[str, int]) -> str:
    """kramdown-parser-gfm's header id: the header's source lowercased, all but word
    characters, '-', spaces and tabs removed, spaces and tabs made '-'; '-1', '-2', … on
    repeats."""
    base = _NON_WORD.sub("", raw.lower()).replace(" ", "-").replace("\t", "-")
    count = seen.get(base, -1) + 1
    seen[base] = count
    return f"{base}-{count}" if count else base


def _header_ids(state: StateCore, prefix: str) -> None:
    """kramdown-parser-gfm's ids, made of a header's text as read (a link's text, not its
    address; code; quotes and dashes as printed), not of its source; an empty one is left
    out."""
    seen: dict[str, int] = {}
    tokens = state.tokens
    for index, token in enumerate(tokens):
        if token.type == "heading_open" and token.attrGet("id") is None:
            raw = "".join(child.content for child in tokens[index + 1].children or ()
                          if child.type in ("text", "code_inline"))
            if anchor := header_id(raw, seen):
                token.attrSet("id", prefix + anchor)


def _code_inline(self: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict,
                 env: EnvType) -> str:
    return ('<code class="language-plaintext highlighter-rouge">'
            f"{html.escape(tokens[idx].content, quote=False)}</code>")


def kramdown_like(options: Kramdown = JEKYLL_KRAMDOWN) -> MarkdownIt:
    """A markdown-it parser configured as Jekyll's kramdown with GFM input, and the site's
    `kramdown:` *options*."""
    from functools import partial

    from markdown_it import MarkdownIt
    from markdown_it.rules_block import hr, lheading

    from .kramdown_blocks import (
        footnote_def,
        footnote_list,
        footnote_ref,
        footnote_ref_html,
        pipe_table,
        spaced_link,
    )
    from .kramdown_lists import (
        kramdown_blockquote,
        kramdown_code,
        kramdown_list,
        one_line_setext,
    )

    # kramdown's GFM input: raw HTML passes, tables and strikethrough on
    md = MarkdownIt("commonmark", {"html": True, "breaks": options.hard_wrap}).enable(
        ["table", "strikethrough"])
    # kramdown's lists: `1)` starts none, items are collected and wrapped as kramdown does
    md.block.ruler.at("list", kramdown_list, {"alt": ["paragraph", "reference", "blockquote"]})
    md.block.ruler.at("code", kramdown_code)
    md.block.ruler.at("hr", hr, {"alt": ["reference", "blockquote", "list"]})
    md.block.ruler.at("lheading", one_line_setext(lheading))
    md.block.ruler.at("blockquote", kramdown_blockquote,
                      {"alt": ["paragraph", "reference", "blockquote", "list"]})
    # before text_join: an escaped character is still its own token, and kramdown leaves it
    md.core.ruler.before("text_join", "kramdown_typography",
                         partial(_typography, quotes=options.smart_quotes))
    if options.auto_ids:
        md.core.ruler.push("kramdown_header_ids", partial(_header_ids,
                                                          prefix=options.auto_id_prefix))
    md.add_render_rule("code_inline", _code_inline)
    md.block.ruler.before("reference", "kramdown_footnote_def", footnote_def)
    md.block.ruler.after("table", "kramdown_pipe_table", pipe_table)
    md.inline.ruler.before("link", "kramdown_footnote_ref", footnote_ref)
    md.inline.ruler.after("link", "kramdown_spaced_link", spaced_link)
    md.core.ruler.push("kramdown_footnotes", partial(footnote_list, first=options.footnote_nr))
    md.add_render_rule("kramdown_footnote_ref", footnote_ref_html)
    md.add_render_rule("s_open", lambda *_: "<del>")
    md.add_render_rule("s_close", lambda *_: "</del>")
    # kramdown writes a link's address as it is, without percent-encoding it; the renderer
    # still escapes it for the attribute, and validateLink still refuses javascript: and co
    md.normalizeLink = lambda url: url  # type: ignore[method-assign]
    return md

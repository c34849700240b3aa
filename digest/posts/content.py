"""A post's body → HTML for feeds and email: Liquid tamed, Markdown rendered, links absolute.

We do not run Liquid. Tags that only matter on the website are dropped, `raw` and `highlight`
keep their text, and the few variables a post body commonly uses (`site.url`, `page.url`, …)
are filled in, so no `{% … %}` ever reaches a reader.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urljoin, urlsplit

from ..config.settings import JEKYLL_KRAMDOWN, Kramdown
from ..errors import Problem

if TYPE_CHECKING:
    from markdown_it import MarkdownIt

_RAW = re.compile(r"{%-?\s*raw\s*-?%}(.*?){%-?\s*endraw\s*-?%}", re.S)
_COMMENT = re.compile(r"{%-?\s*comment\s*-?%}.*?{%-?\s*endcomment\s*-?%}", re.S)
_HIGHLIGHT = re.compile(
    r"{%-?\s*highlight\s+(\w[\w+#.-]*)[^%]*-?%}\n?(.*?){%-?\s*endhighlight\s*-?%}", re.S)
_TAG = re.compile(r"{%-?\s*(\w+)([^%]*?)-?%}", re.S)
_OUTPUT = re.compile(r"{{-?\s*(.*?)\s*-?}}", re.S)
_STRING = re.compile(r"""^(["'])(.*?)\1\s*(.*)$""", re.S)
_PLACEHOLDER = "\x00raw{}\x00"


@dataclass(frozen=True)
class PageContext:
    """What a post body's Liquid may refer to."""

    site_url: str  # url + baseurl, no trailing slash
    baseurl: str
    site_title: str
    page_url: str  # absolute
    page_title: str
    post_urls: Mapping[str, str]  # post file name without extension → absolute url


def tame_liquid(text: str, ctx: PageContext) -> str:
    """Strip Liquid from Markdown source, keeping what a reader should see."""
    raws: list[str] = []

    def keep_raw(match: re.Match[str]) -> str:
        raws.append(match.group(1))
        return _PLACEHOLDER.format(len(raws) - 1)

    text = _RAW.sub(keep_raw, text)
    text = _COMMENT.sub("", text)
    text = _HIGHLIGHT.sub(lambda m: f"```{m.group(1)}\n{m.group(2).rstrip()}\n```\n", text)

    def tag(match: re.Match[str]) -> str:
        name, args = match.group(1), match.group(2).strip()
        stem = _linked_stem(name, args)
        if stem is not None:
            return ctx.post_urls.get(stem, "")
        if name == "link":
            return ctx.site_url + "/" + args.lstrip("/")
        return ""

    variables = {"site.url": ctx.site_url.removesuffix(ctx.baseurl), "site.baseurl": ctx.baseurl,
                 "site.title": ctx.site_title, "page.url": ctx.page_url,
                 "page.title": ctx.page_title}
    def output(match: re.Match[str]) -> str:
        expression = match.group(1)
        literal = _STRING.match(expression)
        if literal:  # {{ "/path/" | relative_url }} and friends
            value, filters = literal.group(2), literal.group(3)
            if "absolute_url" in filters or "relative_url" in filters:
                return ctx.site_url + "/" + value.lstrip("/")
            return value
        return variables.get(expression.split("|")[0].strip(), "")

    text = _TAG.sub(tag, text)
    text = _OUTPUT.sub(output, text)
    for index, raw in enumerate(raws):
        text = text.replace(_PLACEHOLDER.format(index), raw)
    return text


def stem_of(path: str) -> str:
    """A post's file name without its extension: what `{% post_url %}` names it by."""
    return path.rpartition("/")[2].rpartition(".")[0]


def _linked_stem(name: str, args: str) -> str | None:
    """The post a `{% post_url %}` or `{% link _posts/… %}` tag points at (its file stem)."""
    if name == "post_url":
        return args.split("/")[-1]
    if name == "link" and args.lstrip("/").startswith("_posts/"):
        return stem_of(args)
    return None


def linked_posts(body: str) -> tuple[tuple[str, int], ...]:
    """Every post a body links to by file name, once each, with the line (0 the first) of
    the first link to it.

    A build keeps these with the post's reading: the rendered post depends on their URLs,
    so it is rendered again when one of them moves, comes or goes (index.py, rendered.py), and
    a link to no published post is reported at its line. Tags inside `raw` or `comment`
    are text, as tame_liquid leaves them.
    """
    if "{" not in body:  # one character: a memchr, ~7x faster than looking for "{%"
        return ()
    quoted = [m.span() for pattern in (_RAW, _COMMENT) for m in pattern.finditer(body)]
    found: dict[str, int] = {}
    for match in _TAG.finditer(body):
        stem = _linked_stem(match.group(1), match.group(2).strip())
        if stem is None or stem in found or any(a <= match.start() < b for a, b in quoted):
            continue
        found[stem] = body.count("\n", 0, match.start())
    return tuple(found.items())


@lru_cache(maxsize=4)
def _markdown(options: Kramdown) -> MarkdownIt:
    # imported here: a rebuild with nothing to render never pays for it
    from .kramdown import kramdown_like

    return kramdown_like(options)


# Elements nested deeper than this are not handed to the native libraries downstream:
# css-inline 0.24 recurses per level and overflows the main thread's 8 MB stack at ~11,000
# levels (a 256 KB thread stack at ~400), killing the process with SIGSEGV; nh3 (html5ever)
# goes quadratic on deep unclosed tags (200,000 `<div>`: minutes). Browsers cap their tree
# at 512; no real post comes near 100.
MAX_DEPTH = 100
# greedy up to the tag's first ">" (a lazy `[^>]*?(/?)>` was 6x slower, and every email
# page goes through it); a tag is self-closing when "/" stands just before that ">"
_TAG_TOKEN = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9:-]*)\b[^>]*>")
_VOID = frozenset({"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta",
                   "param", "source", "track", "wbr"})
# an open one of these is closed by the next of its kind (`<p>a<p>b` is two paragraphs)
_SIBLINGS = frozenset({"p", "li", "dt", "dd", "option", "tr", "td", "th"})


def nesting_depth(fragment: str, stop: int = MAX_DEPTH, *,
                  tags: re.Pattern[str] = _TAG_TOKEN) -> int:
    """How deep elements nest in *fragment*, as an HTML parser would build them (closely
    enough: a stray close tag is ignored, as parsers do, so `<div></x>` repeated still
    counts as nesting). Linear; returns as soon as the depth passes *stop*. *tags* finds
    the tags (group 1 the '/' of a close tag, group 2 the name): the tests compare
    tokenizers through it."""
    return nest(fragment, (), stop, tags=tags)[1]


def nest(fragment: str, inside: tuple[str, ...], stop: int = MAX_DEPTH, *,
         tags: re.Pattern[str] = _TAG_TOKEN) -> tuple[tuple[str, ...], int]:
    """`nesting_depth` of *fragment* coming after a part that left the elements *inside*
    open (outermost first): the elements open after it, and how deep they went (counting
    *inside*). A page can so be walked piece by piece, each piece's walk remembered."""
    stack = list(inside)
    open_count: dict[str, int] = {}
    for name in stack:
        open_count[name] = open_count.get(name, 0) + 1
    deepest = len(stack)
    for match in tags.finditer(fragment):
        closing, name = match.group(1, 2)
        name = name.lower()
        selfclose = fragment[match.end() - 2] == "/"
        if name in _VOID or (selfclose and not closing):
            continue
        if closing or name in _SIBLINGS:
            if open_count.get(name):
                while True:  # pop down to it: amortised linear, each tag is pushed once
                    top = stack.pop()
                    open_count[top] -= 1
                    if top == name:
                        break
            if closing:
                continue
        stack.append(name)
        open_count[name] = open_count.get(name, 0) + 1
        if len(stack) > deepest:
            deepest = len(stack)
            if deepest > stop:
                break
    return tuple(stack), deepest


def too_deep(fragment: str) -> bool:
    """Whether *fragment* nests elements deeper than MAX_DEPTH."""
    # each level needs a '<': counting them (a C loop) settles nearly every post
    return fragment.count("<") > MAX_DEPTH and nesting_depth(fragment) > MAX_DEPTH


def flatten(fragment: str) -> str:
    """Its text alone, as one paragraph: what a too-deep fragment is published as."""
    text = strip_html(fragment)
    return f"<p>{html.escape(text, quote=False)}</p>\n" if text else ""


# markdown-it's maxNesting (20 in the commonmark preset) bounds blocks, plus a paragraph;
# not read from the parser, so that reading posts does not import it
_BLOCK_NESTING = 21


def _emphasis_bound(body: str) -> int:
    """An upper bound on how deep Markdown emphasis can nest in *body*: emphasis never
    crosses a blank line, and each level needs a delimiter character on each side."""
    if body.count("*") + body.count("_") + body.count("~") <= MAX_DEPTH:
        return 0
    return max(block.count("*") + block.count("_") + block.count("~")
               for block in body.split("\n\n")) // 2


def shape_problems(path: Path, body: str, body_line: int, ext: str,
                   markdown_ext: tuple[str, ...], excerpt: str | None = None,
                   kramdown: Kramdown = JEKYLL_KRAMDOWN) -> list[Problem]:
    """The warning for a post whose HTML would nest deeper than MAX_DEPTH: render_post
    publishes its text alone, as one paragraph (see flatten).

    Cheap for ordinary posts: the raw HTML is scanned once, and the Markdown is rendered
    only when its emphasis markers could nest that deep (a long run of `*` is one way).
    """
    problems = []
    bound = body.count("<")
    if bound > MAX_DEPTH:
        bound = nesting_depth(body, MAX_DEPTH * 2)
    if ext[1:].lower() in markdown_ext:
        bound += _BLOCK_NESTING + _emphasis_bound(body)
    if bound > MAX_DEPTH and too_deep(render(body, ext, markdown_ext, kramdown)):
        problems.append(Problem(
            path, body_line, f"its HTML nests elements more than {MAX_DEPTH} deep (deeply "
            "nested tags, or long runs of '*' or '_'), which would crash the HTML and CSS "
            "libraries; it is published as plain text, without formatting",
            "remove the nesting: close the tags you open, and escape long runs of * or _ "
            "with a backslash or put them in `code`"))
    if excerpt is not None and "<" in excerpt and too_deep(excerpt):
        problems.append(Problem(
            path, None, f"the excerpt in the front matter nests HTML elements more than "
            f"{MAX_DEPTH} deep; it is published as plain text", "close the tags it opens"))
    return problems


def render(text: str, ext: str, markdown_ext: tuple[str, ...],
           kramdown: Kramdown = JEKYLL_KRAMDOWN) -> str:
    """HTML of a body, by extension as Jekyll's converters choose; Markdown as kramdown
    renders it with the site's *kramdown* settings."""
    if ext[1:].lower() in markdown_ext:
        html_text: str = _markdown(kramdown).render(text)
        return html_text
    if ext.lower() in (".html", ".htm"):
        return text
    return f"<pre>{html.escape(text)}</pre>\n"


_ATTR = re.compile(r"""(<[a-zA-Z][^>]*?\s(?:href|src|poster|cite)\s*=\s*)(["'])(.*?)\2""", re.S)


def absolutize(fragment: str, base: str) -> str:
    """Make href/src absolute against the post's URL: feed readers and mail ignore xml:base."""

    def fix(match: re.Match[str]) -> str:
        url = html.unescape(match.group(3)).strip()
        if url.startswith(("#", "data:", "mailto:", "tel:")) or urlsplit(url).scheme:
            return match.group(0)
        quoted = html.escape(urljoin(base, url), quote=True)
        return f"{match.group(1)}{match.group(2)}{quoted}{match.group(2)}"

    # repeat: one tag can hold several attributes, and sub() does not overlap matches
    previous = None
    while previous != fragment:
        previous, fragment = fragment, _ATTR.sub(fix, fragment)
    return fragment


def excerpt_source(body: str, separator: str) -> str:
    """Excerpt Jekyll-style: the body up to the separator (the first paragraph by default)."""
    if not separator:
        return ""
    head = body.lstrip("\n").partition(separator)[0]
    return head.strip()


_SCRIPT_STYLE = re.compile(r"<(script|style)\b.*?</\1\s*>|<!--.*?-->", re.S | re.I)
_TAGS = re.compile(r"<[^>]*>", re.S)
_BLOCK_TAGS = re.compile(
    r"</?(?:p|div|br|li|ul|ol|h[1-6]|pre|blockquote|tr|td|th|table|hr)\b[^>]*>", re.I)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffe\uffff]")


def _cp1252(code: int) -> str:
    try:
        return bytes([code]).decode("cp1252")
    except UnicodeDecodeError:
        return ""


# U+0080-U+009F in a UTF-8 file is almost always Windows-1252 text pasted in (0x92: a quote):
# show the character that was meant; feed readers render C1 controls as boxes.
_C1 = {code: _cp1252(code) for code in range(0x80, 0xA0)}


def strip_html(fragment: str) -> str:
    """Liquid's strip_html + normalize_whitespace, then entities decoded: plain text."""
    text = _TAGS.sub("", _BLOCK_TAGS.sub(" ", _SCRIPT_STYLE.sub(" ", fragment)))
    return " ".join(xml_safe(html.unescape(text)).split())


def xml_safe(text: str) -> str:
    """Drop characters XML 1.0 cannot carry (control characters, U+FFFE/FFFF)."""
    return _CONTROL.sub("", text).translate(_C1)


def plain_title(title: str) -> str:
    """A title as text, the way jekyll-feed prints it: tags stripped, one line."""
    return xml_safe(strip_html(title)) if "<" in title or "&" in title or "\n" in title \
        else xml_safe(" ".join(title.split()))


def smart_title(title: str, kramdown: Kramdown | None = JEKYLL_KRAMDOWN) -> str:
    """A post's title as jekyll-feed prints it: `smartify`-ed (curly quotes, dashes: with
    the site's kramdown smart_quotes, as Jekyll's filter), then as plain_title. *kramdown*
    None (a Hugo site, whose feeds print the title as written): plain_title only. Not for
    keys: plain_title's text is what identifies a post."""
    if kramdown is None:
        return plain_title(title)
    from .kramdown import smartify

    return plain_title(smartify(title, kramdown.smart_quotes))


@dataclass(frozen=True)
class Rendered:
    """What feeds and emails show of a post."""

    html: str
    summary: str  # plain text
    summary_html: str


def _shallow(fragment: str) -> str:
    return flatten(fragment) if too_deep(fragment) else fragment


def render_post(body: str, ext: str, excerpt: str | None, separator: str, ctx: PageContext,
                markdown_ext: tuple[str, ...],
                tame: Callable[[str, PageContext], str] = tame_liquid,
                kramdown: Kramdown = JEKYLL_KRAMDOWN) -> Rendered:
    """Full HTML and the excerpt (plain and HTML) of one post."""
    body = tame(body, ctx)
    # too deep, it is flattened here, before nh3, css-inline or lxml ever see it; parse.py
    # warns about the same post (shape_problems)
    full = _shallow(absolutize(render(body, ext, markdown_ext, kramdown), ctx.page_url))
    if excerpt is not None:
        excerpt_html = html.escape(excerpt) if "<" not in excerpt else _shallow(excerpt)
    else:
        excerpt_html = _shallow(absolutize(render(excerpt_source(body, separator), ext,
                                                  markdown_ext, kramdown), ctx.page_url))
    return Rendered(xml_safe(full), xml_safe(strip_html(excerpt_html)), xml_safe(excerpt_html))

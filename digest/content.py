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
from typing import TYPE_CHECKING
from urllib.parse import urljoin, urlsplit

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
    so it is rendered again when one of them moves, comes or goes (index.py, build.py), and
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


@lru_cache(maxsize=1)
def _markdown() -> MarkdownIt:
    # imported here: a rebuild with nothing to render never pays for it
    from markdown_it import MarkdownIt

    # kramdown's GFM input: raw HTML passes, tables and strikethrough on
    return MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])


def render(text: str, ext: str, markdown_ext: tuple[str, ...]) -> str:
    """HTML of a body, by extension as Jekyll's converters choose."""
    if ext[1:].lower() in markdown_ext:
        html_text: str = _markdown().render(text)
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


@dataclass(frozen=True)
class Rendered:
    """What feeds and emails show of a post."""

    html: str
    summary: str  # plain text
    summary_html: str


def render_post(body: str, ext: str, excerpt: str | None, separator: str, ctx: PageContext,
                markdown_ext: tuple[str, ...],
                tame: Callable[[str, PageContext], str] = tame_liquid) -> Rendered:
    """Full HTML and the excerpt (plain and HTML) of one post."""
    body = tame(body, ctx)
    full = absolutize(render(body, ext, markdown_ext), ctx.page_url)
    if excerpt is not None:
        excerpt_html = html.escape(excerpt) if "<" not in excerpt else excerpt
    else:
        excerpt_html = absolutize(render(excerpt_source(body, separator), ext, markdown_ext),
                                  ctx.page_url)
    return Rendered(xml_safe(full), xml_safe(strip_html(excerpt_html)), xml_safe(excerpt_html))

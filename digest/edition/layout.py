"""Digest emails from editions: Jinja templates, CSS inlined, then one message per recipient.

An edition (one body for everyone following the same tags) is laid out and its CSS inlined
once. A recipient's values stand in that output as placeholder tokens; `Layout.message`
swaps in each recipient's own (HTML-escaped in the HTML part, as they are in the text part)
and assembles the bytes (message.py). A template may test a personal value for presence
(`{% if recipient.name %}`), so an edition is laid out once per combination of present
values that its recipients actually have: one or two in practice, never more than eight.
Each layout keeps the HTML part under the budget (`clip_bytes`, clip.py) with as many of
the newest posts as fit; the others become "and N more": one layout when all fit, about
log2(posts) more when not.
The variables each template sees are listed in its header comment.
"""

from __future__ import annotations

import functools
import hashlib
import html
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date as calendar_date
from datetime import datetime
from email.utils import parseaddr
from pathlib import Path
from typing import Any

import css_inline
import jinja2

from ..config import Site
from ..errors import ConfigError, Problem
from ..posts.content import MAX_DEPTH, nest
from ..util import builtin
from ..util.builtin import compiled, failed
from . import clip
from .message import (
    PERSONAL,
    Body,
    DkimKey,
    Recipient,
    Skeleton,
    address_header,
    check_address,
    check_dkim_key,
    check_url,
    checked,
    date_header,
    fold,
    message_id_header,
    one_line,
    present,
    qp,
    sender_header,
    sign,
    unsubscribe_headers,
)
from .views import DigestPost, PostView, groups, named_tags, summary, view

__all__ = [
    "DigestPost",
    "DkimKey",
    "Edition",
    "LaidOutEdition",
    "Layout",
    "MailSettings",
    "Recipient",
    "default_list_id",
]

HTML, TEXT, SUBJECT = "digest.html.j2", "digest.txt.j2", "subject.txt.j2"
SUBJECT_TAGS = 3  # tags named in a subject before "and N more"
MAX_SUBJECT = 150
DASH = "\N{EN DASH}"
_BLANK_LINES = re.compile(r"\n{3,}")
_TRAILING_SPACE = re.compile(r"[ \t]+\n")


@dataclass(frozen=True)
class Edition:
    """One distinct digest body: every subscriber following the same tags in a run gets it."""

    period_start: datetime
    period_end: datetime
    posts: tuple[DigestPost, ...]  # newest first, never empty
    followed: tuple[str, ...] | None  # tags the recipients follow; None = every post
    archive_url: str | None  # "view in browser" link; None when there is no web front


@dataclass(frozen=True)
class MailSettings:
    site: Site
    sender: str  # "Jobs Board <jobs@example.org>"
    list_id: str  # "Jobs Board <digest.jobs.example.org>"; see default_list_id
    unsubscribe_mailto: str  # the address of the mailto: in List-Unsubscribe
    templates: Path | None  # a folder whose files override the built-in templates
    noun: tuple[str, str] = ("post", "posts")  # ("job", "jobs") on a jobs board
    dkim: DkimKey | None = None
    clip_bytes: int = 100_000  # the HTML part's budget (clip.py); the posts past it are cut


def default_list_id(sender: str, site: Site) -> str:
    """RFC 2919 `Title <digest.domain>`: stable for as long as the sender's domain is."""
    domain = parseaddr(sender)[1].rpartition("@")[2].lower()
    if not re.fullmatch(r"[a-z0-9-]+(\.[a-z0-9-]+)+", domain):
        domain = re.sub(r"[^a-z0-9.-]", "", site.root.partition("//")[2].split("/")[0].lower())
    return f"{one_line(site.title)} <digest.{domain or 'localhost'}>"


Shape = tuple[bool, bool, bool]  # which of name, unsubscribe_url, preferences_url are set
# a shape, and whether for links too long for clip.RESERVE (a layout measured with clip.WIDE)
Key = tuple[Shape, bool]


@dataclass(frozen=True)
class Variant:
    text: str  # with placeholders, "\n" line ends
    html: str
    text_body: Body
    html_body: Body
    shown: int  # posts shown in both parts; the others did not fit the budget ("N more")


EVERY_VALUE: Shape = (True, True, True)


@dataclass(frozen=True)
class LaidOutEdition:
    edition: Edition
    subject: str
    context: dict[str, Any]  # the template variables but `recipient`
    skeleton: Skeleton
    placeholder: re.Pattern[str] = field(compare=False, repr=False)
    # Layout._variant: renders (and caches) the bodies of one Key
    lay_out: Callable[[LaidOutEdition, Shape, bool], Variant] = field(compare=False,
                                                                      repr=False)
    # rendered bodies by Key, filled on first use; a cache, not state
    variants: dict[Key, Variant] = field(default_factory=dict, compare=False, repr=False)

    @property
    def text(self) -> str:
        """The text body for previews: `{recipient.email}` and so on where values go."""
        return self.placeholder.sub(r"{recipient.\1}", self._every().text)

    @property
    def html(self) -> str:
        """The HTML body for previews, marked like `text`."""
        return self.placeholder.sub(r"{recipient.\1}", self._every().html)

    @property
    def shown(self) -> int:
        """How many of the edition's posts fit the budget (for a recipient with every value)."""
        return self._every().shown

    def _every(self) -> Variant:
        """The bodies for a recipient with every value set, which previews show: laid out
        now if the edition was laid out for a send whose recipients lack one."""
        return self.lay_out(self, EVERY_VALUE, False)


def format_date(value: datetime, fmt: str | None = None) -> str:
    """`8 January 2024`, or strftime(*fmt*); portable (no %-d)."""
    return value.strftime(fmt) if fmt else _day(value.year, value.month, value.day)


@functools.lru_cache(maxsize=1024)
def _day(year: int, month: int, day: int) -> str:
    """format_date's own format, made once per day (every post's date, in every edition)."""
    return f"{day} {calendar_date(year, month, 1):%B %Y}"


def format_period(start: datetime, end: datetime) -> str:
    """`8-14 January 2024`, `29 January - 4 February 2024` (en dashes): as short as is clear."""
    if (start.year, start.month) == (end.year, end.month):
        return f"{start.day}{DASH}{format_date(end)}" if start.day != end.day \
            else format_date(end)
    if start.year == end.year:
        return f"{start.day} {start:%B} {DASH} {format_date(end)}"
    return f"{format_date(start)} {DASH} {format_date(end)}"


def _shorten(subject: str) -> str:
    if len(subject) <= MAX_SUBJECT:
        return subject
    cut = subject[:MAX_SUBJECT - 1].rpartition(" ")[0] or subject[:MAX_SUBJECT - 1]
    return cut.rstrip(" ,;:") + "…"


def _normalise(text: str) -> str:
    """"\n" line ends, no trailing spaces, no runs of blank lines. Each regex only where
    a substring search (C speed) finds its work: there is none in what the built-in
    template makes, and the two passes were a tenth of laying out an edition."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if " \n" in text or "\t\n" in text:
        text = _TRAILING_SPACE.sub("\n", text)
    if "\n\n\n" in text:
        text = _BLANK_LINES.sub("\n\n", text)
    return text.strip("\n") + "\n"


def mail_environment(templates: Path | None, kept: Path | None = None) -> jinja2.Environment:
    """The Jinja environment of every email's templates (the digest's, the sign-up's): the
    built-in ones under any of *templates*, HTML autoescaped, plain text not, a missing
    variable an error rather than a blank. *kept*: a folder where compiled templates are
    kept between processes (builtin.KeptTemplates)."""
    env = jinja2.Environment(
        loader=builtin.loader(templates),
        autoescape=lambda name: name is not None and not name.endswith(".txt.j2"),
        undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
        keep_trailing_newline=True,
        bytecode_cache=None if kept is None else builtin.KeptTemplates(kept, _options()))
    env.filters["date"] = format_date
    env.filters["wordwrap"] = _remembered_wordwrap(env.filters["wordwrap"])
    return env


@functools.cache
def _options() -> bytes:
    """What shapes the compiled code besides the template's source: this module, where the
    environment's options are set (read once a process)."""
    return Path(__file__).read_bytes()


def _remembered_wordwrap(wordwrap: Callable[..., str]) -> Callable[..., str]:
    """Jinja's `wordwrap`, remembering what it made: a post's excerpt is wrapped alike in
    every edition that carries it, and textwrap was a tenth of a send's rendering time.
    Only plain strings are remembered (Markup goes through as it always did)."""

    @functools.lru_cache(maxsize=4096, typed=True)
    def remembered(environment: jinja2.Environment, s: str, width: int,
                   break_long_words: bool, wrapstring: str | None,
                   break_on_hyphens: bool) -> str:
        return wordwrap(environment, s, width, break_long_words, wrapstring, break_on_hyphens)

    @jinja2.pass_environment
    def wrap(environment: jinja2.Environment, s: Any, width: Any = 79,
             break_long_words: Any = True, wrapstring: Any = None,
             break_on_hyphens: Any = True) -> str:
        args = (width, break_long_words, wrapstring, break_on_hyphens)
        if type(s) is str and all(type(a) in (int, bool, str, type(None)) for a in args):
            return remembered(environment, s, *args)
        return wordwrap(environment, s, *args)

    return wrap


KEPT = 10_000  # entries a Layout remembers of each kind (lines walked, lines encoded, post
# views) before it starts afresh: the bench send (548 editions) used ~2,000 of each


class _Depths:
    """`nesting_depth` of each page laid out, walked by lines (cut after a tag that ends a
    line, so that no tag is cut), each line's walk from the elements open before it
    remembered. Why: a send's pages are made of the same few thousand lines, the
    template's and the posts', and walking each page's ~500 tags was a fifth of its
    layout. Same answer as nesting_depth, for any page (tests/test_deep_html.py)."""

    def __init__(self, stop: int) -> None:
        self.stop = stop
        self.walks: dict[tuple[tuple[str, ...], str], tuple[tuple[str, ...], int]] = {}

    def __call__(self, page: str) -> int:
        """How deep elements nest in *page*; past `stop`, some depth over it."""
        walks, stop = self.walks, self.stop
        if len(walks) > KEPT:
            walks.clear()
        *lines, last = page.split(">\n")
        inside: tuple[str, ...] = ()
        deepest = 0
        for line in lines:
            walk = walks.get((inside, line))
            if walk is None:  # the line as it is in the page: its ">" back, the "\n" no tag
                walk = walks[inside, line] = nest(line + ">", inside, stop)
            inside, depth = walk
            if depth > deepest:
                deepest = depth
                if deepest > stop:
                    return deepest
        return max(deepest, nest(last, inside, stop)[1])


class Layout:
    """Templates loaded once; `edition` per distinct body, `message` per recipient."""

    def __init__(self, settings: MailSettings, kept: Path | None = None) -> None:
        """*kept*: where compiled templates are kept between processes (the state folder's
        COMPILED), or None to compile them here."""
        self.settings = settings
        self._env = mail_environment(settings.templates, kept)
        self._templates = {name: self._load(name) for name in (HTML, TEXT, SUBJECT)}
        self._inliner = css_inline.CSSInliner(keep_at_rules=True, load_remote_stylesheets=False)
        # unguessable, so a post cannot hold a token that would leak someone's link into it
        self._token = f"dgst{secrets.token_hex(8)}"
        self._placeholder = re.compile(f"{self._token}_({'|'.join(PERSONAL)})_")
        self._sender = sender_header(settings.sender)
        self._list_id = fold("List-Id", settings.list_id)
        self._mailto = check_address(settings.unsubscribe_mailto)
        self._lang = re.sub(r"[^A-Za-z0-9-]", "", settings.site.lang) or "en"
        if settings.dkim is not None:
            check_dkim_key(settings.dkim)
        self._date: tuple[datetime, bytes] | None = None  # a run's messages share one Date
        # posts arrive at most MAX_DEPTH deep (render_post); deeper still is the template
        self._depth = _Depths(2 * MAX_DEPTH)
        self._lines: dict[str, bytes] = {}  # quoted-printable lines, for Body.encode
        # each post as the templates see it, made once: a post is in many editions
        self._views: dict[DigestPost, PostView] = {}

    def _load(self, name: str) -> jinja2.Template:
        return compiled(self._env, name)

    def _fill(self, name: str, context: dict[str, Any]) -> str:
        template = self._templates[name]
        try:
            return template.render(context)
        # the templates are the user's: whatever goes wrong in one is a problem in that file
        except (jinja2.TemplateError, ArithmeticError, LookupError, TypeError,
                ValueError) as exc:
            raise failed(exc, template, "template error") from None

    def edition(self, edition: Edition, first: Recipient | None = None) -> LaidOutEdition:
        """Subject, headers and body of an edition, rendered now so that a template's errors
        show before the first message: for *first*, the recipient a send gives it to first,
        or else for a recipient with every value set, as previews show it. (A send whose
        recipients have no name once rendered it twice: for them, and for that check.)"""
        if not edition.posts:
            raise ValueError("an edition needs at least one post")
        archive = check_url(edition.archive_url) if edition.archive_url else None
        site, (one, many) = self.settings.site, self.settings.noun
        posts = sorted(map(self._view, edition.posts), key=lambda p: p.date,
                       reverse=True)
        followed = None if edition.followed is None else tuple(
            t for t in dict.fromkeys(one_line(t) for t in edition.followed) if t)
        named = named_tags(posts, followed)
        start = edition.period_start.astimezone(site.tz)
        end = edition.period_end.astimezone(site.tz)
        context: dict[str, Any] = {
            "site": site, "edition": edition, "posts": posts, "groups": groups(posts, named),
            "count": len(posts), "noun": one if len(posts) == 1 else many, "nouns": (one, many),
            "tags": named[:SUBJECT_TAGS], "more": max(0, len(named) - SUBJECT_TAGS),
            "followed": followed, "period_start": start, "period_end": end,
            "period": format_period(start, end), "archive_url": archive,
            "unsubscribe_mailto": self._mailto, "clipped": 0,
            "clipped_url": archive or (site.root + "/" if site.root else None)}
        subject = _shorten(one_line(self._fill(SUBJECT, context)))
        context["subject"] = subject
        boundary = "=_digest_" + hashlib.sha256(
            repr((start, end, edition.followed, [p.url for p in posts])).encode()).hexdigest()[:24]
        skeleton = Skeleton.build(sender=self._sender, subject=fold("Subject", subject),
                                  list_id=self._list_id, lang=self._lang, boundary=boundary)
        rendered = LaidOutEdition(edition, subject, context, skeleton, self._placeholder,
                                  self._variant)
        if first is None:
            self._variant(rendered, EVERY_VALUE, False)
        else:
            first = checked(first)
            self._variant(rendered, _shape(first), clip.wide(present(first)))
        return rendered

    def _view(self, post: DigestPost) -> PostView:
        found = self._views.get(post)
        if found is None:
            if len(self._views) > KEPT:
                self._views.clear()
            found = self._views[post] = view(post, self.settings.site)
        return found

    def _variant(self, rendered: LaidOutEdition, shape: Shape, wide: bool) -> Variant:
        """The bodies for recipients of *shape*, with as many posts as fit the budget:
        all of them, laid out once, unless they do not fit; then the fewest layouts that
        find how many do (bisection), the oldest dropped first."""
        variant = rendered.variants.get((shape, wide))
        if variant is None:
            has_name, has_unsubscribe, has_preferences = shape
            token = self._token
            recipient = Recipient(  # tokens that each recipient's own values replace
                email=f"{token}_email_", name=f"{token}_name_" if has_name else None,
                unsubscribe_url=f"{token}_unsubscribe_url_" if has_unsubscribe else None,
                preferences_url=f"{token}_preferences_url_" if has_preferences else None)
            base = {**rendered.context, "recipient": recipient}
            posts: list[PostView] = base["posts"]
            reserve = clip.WIDE if wide else clip.RESERVE
            pages: dict[int, tuple[dict[str, Any], str]] = {}
            sizes: dict[int, int] = {}

            def fits(count: int, shown: list[PostView] | None = None) -> bool:
                context = self._clipped(base, posts[:count] if shown is None else shown)
                page = self._page(context)
                pages[count] = (context, page)
                sizes[count] = clip.html_size(page, self._placeholder, reserve)
                return sizes[count] <= self.settings.clip_bytes

            count = len(posts)
            if not fits(count):
                # another recipient shape's count is most likely this one's too; else
                # the posts' share of the budget, a little under (the rest is fixed)
                hint = next((v.shown for v in rendered.variants.values()), 0) or \
                    count * self.settings.clip_bytes // sizes[count]
                count = clip.most(count - 1, fits, hint)
                if count == 0:  # the newest post alone is over: shown cut short if that fits
                    count = 1 if fits(1, [summary(posts[0])]) else 0
                    if count == 0:
                        fits(0)  # even so it is over: all the digest has is the link to them
            context, page = pages[count]
            text = _normalise(self._fill(TEXT, context))
            if len(self._lines) > KEPT:
                self._lines.clear()
            variant = Variant(text, page, Body.encode(text, self._placeholder, self._lines),
                              Body.encode(page, self._placeholder, self._lines), count)
            rendered.variants[shape, wide] = variant
        return variant

    @staticmethod
    def _clipped(context: dict[str, Any], shown: list[PostView]) -> dict[str, Any]:
        """The template variables for *shown*, the first posts of those in *context*."""
        every: list[PostView] = context["posts"]
        if len(shown) == len(every):
            return context
        named = [tag for tag, _posts in context["groups"] if tag is not None]
        kept = [(tag, tagged) for tag, tagged in groups(shown, named) if tagged]
        return {**context, "posts": shown, "groups": kept,
                "clipped": len(every) - len(shown)}

    def _page(self, context: dict[str, Any]) -> str:
        """The HTML body, its CSS inlined, "\n" line ends."""
        page = self._fill(HTML, context)
        if self._depth(page) > 2 * MAX_DEPTH:
            raise ConfigError([Problem(
                Path(self._templates[HTML].filename or HTML), None,
                f"the HTML template nests elements more than {MAX_DEPTH} deep, which "
                "crashes the CSS inliner", "close the tags it opens")])
        try:
            page = self._inliner.inline(page)
        except css_inline.InlineError as exc:
            raise failed(exc, self._templates[HTML], "CSS cannot be inlined") from None
        return page.replace("\r\n", "\n").replace("\r", "\n")

    def personalise(self, rendered: LaidOutEdition, recipient: Recipient) -> tuple[str, str]:
        """The text and HTML bodies exactly as *recipient* receives them."""
        values = present(recipient := checked(recipient))
        variant = self._variant(rendered, _shape(recipient), clip.wide(values))

        def text(m: re.Match[str]) -> str:
            return values[m.group(1)]

        def page(m: re.Match[str]) -> str:
            return html.escape(values[m.group(1)])

        return self._placeholder.sub(text, variant.text), self._placeholder.sub(page, variant.html)

    def message(self, rendered: LaidOutEdition, recipient: Recipient, *, message_id: str,
                date: datetime) -> bytes:
        """The whole RFC 5322 message for one recipient, CRLF line ends, DKIM-signed if set."""
        recipient = checked(recipient)
        text_values, html_values, wide = {}, {}, False
        for key, value in present(recipient).items():
            text_values[key] = encoded = qp(value, joined=True)
            escaped = html.escape(value)
            # most values (addresses, links) have nothing to escape: one encoding for both
            html_values[key] = encoded if escaped == value else qp(escaped, joined=True)
            wide = wide or len(escaped.encode("utf-8")) > clip.RESERVE[key]
        shape = _shape(recipient)
        variant = rendered.variants.get((shape, wide)) or self._variant(rendered, shape, wide)
        raw = rendered.skeleton.assemble(
            to=address_header(recipient.name, recipient.email), date=self._date_header(date),
            message_id=message_id_header(message_id),
            unsubscribe=unsubscribe_headers(recipient.unsubscribe_url, self._mailto),
            text=variant.text_body.pieces(text_values),
            html=variant.html_body.pieces(html_values),
            shared_dotted=variant.text_body.dotted or variant.html_body.dotted)
        return sign(raw, self.settings.dkim) if self.settings.dkim else raw

    def _date_header(self, date: datetime) -> bytes:
        """Formatted once per run rather than per message (strftime showed in profiles)."""
        if self._date is None or self._date[0] != date or self._date[0].tzinfo != date.tzinfo:
            self._date = (date, date_header(date))
        return self._date[1]


def _shape(recipient: Recipient) -> Shape:
    return (recipient.name is not None, recipient.unsubscribe_url is not None,
            recipient.preferences_url is not None)

"""Posts of a run + one subscriber → that subscriber's message.

Each distinct edition (same posts, same tags followed) is laid out once and personalised
per subscriber, so 100,000 subscribers cost a few hundred renders, not 100,000. Its "view in
browser" link is that edition's page of the web archive (archive.py: the id is the set of
posts it carries), so the page shows what the email showed, not the whole run.
"""

from __future__ import annotations

import hashlib
import html
import logging
from array import array
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from email.utils import parseaddr
from typing import TypeVar

from ..edition.layout import DigestPost, Edition, LaidOutEdition, Recipient
from ..edition.selection import Window, terms
from ..posts.content import smart_title
from ..posts.ids import absolute
from ..posts.parse import Post
from ..posts.rendered import render_posts
from ..subscribers.load import Packed, Subscriber
from . import archive
from .archive import ArchivedRun
from .returnpath import encode as verp_address
from .session import Session, domain_of
from .transport import Outgoing

log = logging.getLogger(__name__)
EXCERPT_CHARS = 300  # characters of a post's excerpt shown in a digest
EDITIONS_KEPT = 8
T = TypeVar("T")


def message_id(run_slug: str, key: str, domain: str) -> str:
    """The Message-ID of *run_slug*'s digest to *key*: stable, so a resent message is the
    same message, and recognisable in a bounce that quotes it (feedback/classify.py)."""
    digest = hashlib.sha256(f"{run_slug}\0{key}".encode()).hexdigest()[:20]
    return f"<digest.{run_slug}.{digest}@{domain}>"


def edition_order(subscribers: Sequence[Subscriber],
                  preferences: Mapping[str, tuple[str, ...] | None]) -> Iterator[tuple[str, str]]:
    """(key, address) of each subscriber, those with the same tag choices (*preferences*,
    made on the web, win over the file's) together: groups in first-seen order, file order
    within.

    Why: a run's deliveries are claimed in the order they were added, smtp.claim_batch at a
    time, and the Composer keeps only the last EDITIONS_KEPT editions laid out. In file
    order, each batch of 200 held about as many editions as messages, and each was laid out
    again batch after batch: 12,500 layouts for 548 editions over 20,000 subscribers, four
    times the CPU of all the rest of a send. Grouped, each edition is laid out about once.
    Holds 4 bytes per subscriber (its position), never the subscribers themselves.
    """
    packed = subscribers if isinstance(subscribers, Packed) else Packed(subscribers)
    groups: dict[tuple[object, ...], array[int]] = {}
    for i in range(len(packed)):
        tags, exclude = choice = packed.choice_at(i)  # no Subscriber made for this
        if preferences:
            choice = (preferences.get(packed.key_at(i), tags), exclude)
        group = groups.get(choice)
        if group is None:
            group = groups[choice] = array("I")
        group.append(i)
    for positions in groups.values():
        for i in positions:
            email = packed.email_at(i)
            yield email.lower(), email


class Composer:
    """Turns (run posts, subscriber) into a message; editions are laid out once and reused."""

    def __init__(self, s: Session, run_slug: str, posts: list[Post]) -> None:
        self.s = s
        self.slug = run_slug
        self.posts = posts  # newest first
        self.items = self._items(posts)
        self.preferences = s.sendlog.preferences()
        self.by_tags: dict[tuple[object, ...], tuple[int, ...]] = {}
        # recently used editions only: callers send edition by edition (grouped()), so a
        # few suffice, and 100,000 subscribers never hold hundreds of rendered bodies
        self.editions: OrderedDict[tuple[object, ...], LaidOutEdition] = OrderedDict()
        self.laid_out = 0  # editions laid out so far
        sender = s.config.digest.sender or ""
        self.envelope_from = parseaddr(sender)[1]
        self.domain = domain_of(sender)
        bounces = s.config.bounces
        # VERP: each message's envelope sender names its run and subscriber (returnpath.py)
        self.return_path = bounces.return_path if bounces else None
        self.verp_signer = s.verp_signer
        base = s.config.web.base_url if s.config.web else None
        self.base_url = base
        # the run as frozen for the web archive, which edition links point into; None until
        # it is frozen (a preview): its posts will be frozen as self.items, in that order
        self.archived: ArchivedRun | None = None

    def _items(self, posts: list[Post]) -> list[DigestPost]:
        s = self.s
        rendered = render_posts(s.config, s.store, posts, s.corpus.stats, s.corpus.posts)
        site = s.config.site
        items = []
        for post in posts:
            r = rendered[post.path]
            excerpt = " ".join(r.summary.split())
            excerpt_html = r.summary_html
            if len(excerpt) > EXCERPT_CHARS:
                # cut both parts alike: the text part says what the HTML part says, and a
                # long first paragraph would push the HTML past Gmail's 102 KB clipping
                excerpt = excerpt[:EXCERPT_CHARS].rsplit(" ", 1)[0] + " …"
                excerpt_html = html.escape(excerpt)
            items.append(DigestPost(
                title=smart_title(post.title, site.title_quotes) or post.slug,
                url=absolute(site, post.url),
                date=post.date.astimezone(site.tz), tags=post.tags,
                categories=post.categories, excerpt=excerpt, excerpt_html=excerpt_html))
        return items

    def subscriber_view(self, sub: Subscriber) -> Subscriber:
        """The subscriber with tag choices made on the web front, which win over the YAML."""
        if sub.key not in self.preferences:
            return sub
        return Subscriber(sub.email, sub.name, self.preferences[sub.key], sub.exclude_tags,
                          sub.line)

    def matches(self, sub: Subscriber) -> tuple[int, ...]:
        key = (sub.tags, sub.exclude_tags)
        found = self.by_tags.get(key)
        if found is None:
            found = tuple(i for i, p in enumerate(self.posts) if sub.wants(terms(p)))
            self.by_tags[key] = found
        return found

    def edition(self, sub: Subscriber, picked: tuple[int, ...], period: Window,
                first: Recipient | None = None) -> LaidOutEdition:
        """*sub*'s edition, laid out on first use for *first* (the recipient a send gives
        it to first: Layout.edition) or, without one, as previews show it."""
        key = (sub.tags, sub.exclude_tags, picked)
        rendered = self.editions.get(key)
        if rendered is not None:
            self.editions.move_to_end(key)
        else:
            edition = Edition(period_start=period.start, period_end=period.end,
                              posts=tuple(self.items[i] for i in picked),
                              followed=sub.tags, archive_url=self.archive_url(picked))
            rendered = self.s.layout.edition(edition, first)
            self.laid_out += 1
            self.editions[key] = rendered
            if len(self.editions) > EDITIONS_KEPT:
                self.editions.popitem(last=False)
        return rendered

    def entry_ids(self) -> list[str]:
        """The entry id of each of self.items, for the archive."""
        return [self.s.ids[post.path] for post in self.posts]

    def archive_url(self, picked: tuple[int, ...]) -> str | None:
        """The "view in browser" link of the edition carrying *picked*: its own page in the
        archive, or the whole run's if the archive lacks one of its posts (which only a run
        frozen by an older version, whose post then changed its URL, can do)."""
        if self.base_url is None:
            return None
        whole = f"{self.base_url}/archive/{self.slug}"
        indexes: list[int] | None = list(picked)
        if self.archived is not None:
            indexes = archive.indexes_in(self.archived, ((self.s.ids[self.posts[i].path],
                                                          self.items[i].url) for i in picked))
        return f"{whole}/{archive.edition_id(indexes)}" if indexes else whole

    def grouped(self, items: list[T], who: Callable[[T], tuple[Subscriber, tuple[int, ...]]]
                ) -> list[T]:
        """*items* reordered so that those sharing an edition are adjacent (first-seen order,
        file order within): each edition is then rendered once and can be dropped after."""
        groups: dict[tuple[object, ...], list[T]] = {}
        for item in items:
            sub, picked = who(item)
            groups.setdefault((sub.tags, sub.exclude_tags, picked), []).append(item)
        return [item for group in groups.values() for item in group]

    def message_id(self, key: str) -> str:
        return message_id(self.slug, key, self.domain)

    def envelope_sender(self, key: str) -> str:
        if self.return_path is None or self.verp_signer is None:
            return self.envelope_from
        return verp_address(self.return_path, self.slug, key, self.verp_signer)

    def recipient(self, sub: Subscriber, to: str | None = None) -> Recipient:
        signer, base = self.s.signer, self.base_url
        unsubscribe = preferences = None
        if signer is not None and base is not None:
            unsubscribe = f"{base}/unsubscribe/{signer.token(sub.key, 'unsubscribe')}"
            preferences = f"{base}/preferences/{signer.token(sub.key, 'preferences')}"
        return Recipient(email=to or sub.email, name=sub.name, unsubscribe_url=unsubscribe,
                         preferences_url=preferences)

    def compose(self, sub: Subscriber, picked: tuple[int, ...], period: Window, *,
                to: str | None = None, message_id: str | None = None) -> Outgoing:
        recipient = self.recipient(sub, to)
        rendered = self.edition(sub, picked, period, recipient)
        data = self.s.layout.message(rendered, recipient,
                                     message_id=message_id or self.message_id(sub.key),
                                     date=self.s.as_of)
        return Outgoing(key=sub.key, sender=self.envelope_sender(sub.key),
                        recipient=to or sub.email,
                        data=data)


"""What every digest command reads first, once: config, posts, subscribers, the layout.

The subscribers file is read with its fallback (subscribers/current.py): when it cannot be
read, the last copy that could (kept in the state database) stays in force.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import parseaddr

from ..config import Config, WebSettings
from ..edition.layout import DkimKey, Layout, MailSettings, default_list_id
from ..edition.selection import Window, posts_for_run, window
from ..errors import ConfigError, Problem
from ..posts.ids import entry_ids
from ..posts.parse import Post
from ..posts.published import Published
from ..posts.reader import read_posts
from ..state.interface import RunPost, SharedState
from ..state.open import open_state
from ..state.store import Store
from ..subscribers.current import read_subscribers
from ..subscribers.load import SubscriberList
from ..subscribers.tokens import Signer

log = logging.getLogger(__name__)
COMPILED = "templates.compiled"  # the state folder's compiled email templates (KeptTemplates)


def when(moment: datetime) -> str:
    """A time for messages to people: minutes, with the zone's offset."""
    return f"{moment:%Y-%m-%d %H:%M %z}"


@dataclass
class Session:
    """Everything one command needs, read once: config, posts, subscribers, layout."""

    config: Config
    store: Store
    sendlog: SharedState  # the shared state: send log, entry ids, subscribers' choices
    corpus: Published
    ids: dict[str, str]
    subscribers: SubscriberList
    layout: Layout
    signer: Signer | None
    as_of: datetime
    by_id: dict[str, Post] = field(default_factory=dict)
    verp_signer: Signer | None = None  # signs VERP return paths, with bounces.return_path


def _sender(config: Config) -> str:
    sender = config.digest.sender
    if not sender:
        raise ConfigError([Problem(config.path, None, "'digest.from' is not set",
                                   "add e.g. digest: {from: 'Jobs Board <jobs@example.org>'}")])
    return sender


def domain_of(address: str) -> str:
    return parseaddr(address)[1].rpartition("@")[2].lower() or "localhost"


def mail_settings(config: Config) -> MailSettings:
    sender = _sender(config)
    digest = config.digest
    list_id = digest.list_id or default_list_id(sender, config.site)
    dkim = None
    if digest.dkim is not None:
        pem = os.environ.get(digest.dkim.private_key_env, "")
        if not pem.strip():
            raise ConfigError([Problem(config.path, None,
                                       f"DKIM is configured but ${digest.dkim.private_key_env} "
                                       "is empty", "export the PEM private key in it")])
        dkim = DkimKey(digest.dkim.domain, digest.dkim.selector, pem.encode())
    return MailSettings(site=config.site, sender=sender, list_id=list_id,
                        unsubscribe_mailto=digest.unsubscribe_mailto or parseaddr(sender)[1],
                        templates=digest.templates, noun=digest.noun, dkim=dkim,
                        clip_bytes=digest.clip_bytes)


def _signer(config: Config) -> Signer | None:
    if config.web is None or config.web.base_url is None:
        log.warning("no web.base_url: List-Unsubscribe carries only a mailto, and there is no "
                    "one-click unsubscribe link (Gmail and Yahoo expect one from bulk senders)")
        return None
    return Signer.from_env(config.web.secret_env)


def return_path_signer(config: Config, signer: Signer | None) -> Signer | None:
    """What signs VERP tokens when bounces.return_path is set: the web front's secret (the
    same variable; it need not serve anything). MissingSecret if that variable is unset."""
    if config.bounces is None or config.bounces.return_path is None:
        return None
    if signer is not None:
        return signer
    return Signer.from_env(config.web.secret_env if config.web else WebSettings().secret_env)


@contextmanager
def session(config: Config, *, as_of: datetime, scratch: bool = False) -> Iterator[Session]:
    """Open the state, read posts and subscribers; close the state on leaving. *scratch*:
    work on a copy of the state that is thrown away (Store.scratch), for the commands that
    only look (preview, dry run): they record nothing, not even the caches."""
    settings = mail_settings(config)
    layout = Layout(settings, None if scratch else config.state / COMPILED)
    signer = _signer(config)
    verp_signer = return_path_signer(config, signer)  # no secret: refuse before any run
    store = Store.scratch(config.state) if scratch else Store.open(config.state)
    try:
        sendlog = open_state(config, local=store)
        corpus = read_posts(config, store, now=as_of)
        ids = entry_ids(sendlog, config.site, corpus.posts)
        subscribers = read_subscribers(config, sendlog, corpus.terms, keep=not scratch,
                                       cache=not scratch)
        by_id = {ids[p.path]: p for p in corpus.posts}
        yield Session(config, store, sendlog, corpus, ids, subscribers, layout, signer,
                      as_of, by_id, verp_signer)
    finally:
        store.close()


def newest_first(s: Session, entry_ids: Iterable[str]) -> list[Post]:
    """The posts with these entry ids that still exist, newest first (as digests list them)."""
    posts = [s.by_id[e] for e in entry_ids if e in s.by_id]
    return sorted(posts, key=lambda p: (p.date, p.path), reverse=True)


def plan_run(s: Session) -> tuple[Window, list[RunPost]]:
    """The period and posts a new run would have now (nothing is written)."""
    previous = s.sendlog.latest_run()
    period = window(previous, s.as_of, s.config.digest.first_window_days)
    assigned, twins = s.sendlog.assigned()
    chosen = posts_for_run(s.corpus.posts, s.ids, s.sendlog.first_seen(), assigned, twins,
                           period, previous)
    return period, chosen


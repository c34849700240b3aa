"""A lost send log told from a fresh install, before a digest goes to everyone again.

The send log (in state.sqlite3) is what says a digest was sent. If the database is deleted,
or truncated to nothing, it opens empty, and without this check the next `digest send`
would make the same period's digest again and mail it to everyone, silently. So every send
leaves traces outside the database: the marker file `state/sendlog.marker`, written as soon
as the log holds a run, besides the archive (`state/archive/SLUG.json`, one per digest). Not
the outbox: `digest send --to` files test copies there without any digest having been sent.
An empty send log beside either trace is a lost one: the send is
refused (StateLost, exit 2) until the database is restored from a backup or the loss is
acknowledged (`digest send --i-lost-the-state`), which rebuilds the finished runs from the
archive, so the posts they carried are not sent again, and starts the log afresh. The
suppression list and the choices made on the web went with the database: those only a
backup brings back.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ..edition.selection import twin_key
from ..errors import StateLost
from ..posts.ids import absolute
from ..state.sendlog import RunPost
from ..state.store import DATABASE
from ..util.writer import write_if_changed
from . import archive
from .session import Session

log = logging.getLogger(__name__)

MARKER = "sendlog.marker"
ACKNOWLEDGE = "--i-lost-the-state"
_MARKER_TEXT = (b"digest: the send log in state.sqlite3 has recorded digests. If that database "
                b"is lost, `digest send` refuses to send until it is restored or the loss is "
                b"acknowledged (digest send --i-lost-the-state).\n")


def traces(state: Path) -> list[Path]:
    """What earlier sends left outside the database: the marker, an archived digest."""
    found = [state / MARKER] if (state / MARKER).exists() else []
    folder = archive.folder(state)
    first = next(iter(sorted(folder.glob("*.json"))), None) if folder.is_dir() else None
    return found if first is None else [*found, first]


def mark(state: Path) -> None:
    """Leave the marker: the send log holds a run from now on."""
    if not (state / MARKER).exists():
        write_if_changed(state / MARKER, _MARKER_TEXT, mode=0o600)


def check(s: Session, *, acknowledged: bool) -> None:
    """Refuse (StateLost) to send from an empty send log that earlier sends left traces of;
    with *acknowledged*, rebuild the finished runs from the archive instead."""
    state, sendlog = s.config.state, s.sendlog
    # the traces first: another sender starting beside this one commits its run before it
    # leaves them, so traces seen here mean its run is seen just below
    found = traces(state)
    if sendlog.latest_run() is not None:
        mark(state)  # a log from before the marker existed
        return
    if not found:
        return  # a fresh install
    if not acknowledged:
        database = state / DATABASE
        raise StateLost(
            database, "the send log is empty or missing, but digests were sent from this "
            f"state folder before ({', '.join(str(p) for p in found)}): sending now would mail "
            "everyone the last digest again, and the unsubscribed too",
            f"restore {database.name} from a backup (with digest stopped) and send again; or, "
            f"if there is none, run `digest send {ACKNOWLEDGE}`: it rebuilds the past digests "
            "from state/archive so their posts are not sent again, but who unsubscribed is "
            "lost with the database (README: 'If the state database is lost')")
    by_url = {absolute(s.config.site, p.url): RunPost(s.ids[p.path], p.path, twin_key(p))
              for p in s.corpus.posts}
    restored = 0
    for path in sorted(archive.folder(state).glob("*.json")):
        try:
            run = archive.load(path)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("%s: not an archived digest (%s), skipped", path, exc)
            continue
        posts = [by_url[p.url] for p in run.posts if p.url in by_url]
        restored += sendlog.restore_run(
            slug=run.slug, start=run.period_start, end=run.period_end, posts=posts,
            subscribers=((sub.key, sub.email) for sub in s.subscribers.subscribers))
    log.warning("the send log was lost: %d past digest(s) rebuilt from %s; the suppression "
                "list starts empty", restored, archive.folder(state))
    mark(state)

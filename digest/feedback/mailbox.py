"""Feedback mail (bounces, complaints, unsubscribe replies) read from a Maildir or an IMAP
folder, behind one small interface, without ever deleting or changing mail that is not ours.

    mailbox = open_mailbox(config.bounces, checkpoint=saved)   # None: no mailbox configured
    with contextlib.closing(mailbox):
        for incoming in mailbox.messages(limit=500):
            mailbox.done(incoming, handled=classify_and_apply(incoming.data))
        saved = mailbox.checkpoint()

What is marked, and why:
- A handled message (feedback digest acted upon) is marked seen: in a Maildir it moves to
  cur/ with the S flag (new/KEY -> cur/KEY:2,S, the standard way), on IMAP it gets \\Seen.
  Nothing is ever deleted, expunged or moved out of its folder.
- Any other message is left exactly as it was, so a person still sees it as new: the same
  file under the same name in the Maildir; unseen on IMAP (read with BODY.PEEK, which does
  not set \\Seen).
- Seen messages (handled by us, or read by a person) are never read.
- So that the unseen messages that are not feedback (out-of-office replies, spam) are not
  read again on every run, the mailbox keeps a checkpoint, a string the caller stores and
  passes back: on IMAP the folder's UIDVALIDITY and the highest UID examined (UIDs only grow
  while UIDVALIDITY stays, RFC 3501 2.3.1.1); in a Maildir the change time (ctime) of the
  last file examined: delivery renames a file into new/, which sets its ctime, and nobody
  can set a ctime back (unlike the mtime, which a restore or `cp -p` keeps). Maildir files
  are read from the checkpoint less a minute (ctimes are coarse, and one delivered in the
  same tick as the last one examined must not be missed); that minute's non-feedback mail
  is examined twice, which is cheap. Without a checkpoint (a first run, another mailbox, a
  new UIDVALIDITY) every unseen message is examined once.
- The checkpoint moves only past messages done() was called for, in order: if the caller
  stops before done() (a crash, an error), that message and the later ones are offered
  again; feedback carries an ident, so a report read twice still counts once.
- A message over `max_bytes` is skipped with a warning, without being read whole (Maildir:
  its size first; IMAP: RFC822.SIZE first, then a partial fetch of at most max_bytes + 1,
  so a server misreporting the size cannot make us read more), and passed by the checkpoint.

IMAP speaks TLS only (implicit, or STARTTLS), verified against the system's CAs or
`ca_file`; the password comes from the environment variable the config names. Every
failure (missing Maildir, refused connection, untrusted certificate, refused login,
missing folder) becomes one MailboxError naming the mailbox and what to do.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import MailboxError
from .imap import ImapMailbox
from .incoming import MAX_MESSAGE_BYTES, Incoming, Mailbox, Progress, too_big

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ..config import BouncesSettings

log = logging.getLogger(__name__)

_CTIME_SLACK_NS = 60 * 10**9  # Maildir files are re-examined from checkpoint - 1 min
_MAILDIR_FOLDERS = ("new", "cur", "tmp")


def _flags(name: str) -> str:
    """The Maildir info flags of a file name ("KEY:2,RS" -> "RS")."""
    _, sep, info = name.partition(":2,")
    return info if sep else ""


class MaildirMailbox:
    """A Maildir (new/, cur/, tmp/), read in place; see the module doc for what changes."""

    def __init__(self, path: Path, *, checkpoint: str | None = None,
                 max_bytes: int = MAX_MESSAGE_BYTES) -> None:
        self.path = path
        self.max_bytes = max_bytes
        missing = [name for name in _MAILDIR_FOLDERS if not (path / name).is_dir()]
        if missing:
            raise MailboxError(str(path), "not a Maildir: no " + ", ".join(
                f"{name}/" for name in missing) + " folder in it",
                "point bounces.maildir at the Maildir your mail server delivers the "
                "return path's mail to (the folder holding new/, cur/ and tmp/)")
        self._progress = Progress(self._read_checkpoint(checkpoint))

    @property
    def where(self) -> str:
        return str(self.path)

    def _read_checkpoint(self, checkpoint: str | None) -> int | None:
        prefix = f"maildir:{self.path};ctime="
        if checkpoint and checkpoint.startswith(prefix) and checkpoint[len(prefix):].isdigit():
            return int(checkpoint[len(prefix):])
        if checkpoint:
            log.info("%s: checkpoint %r is for another mailbox: every unseen message is "
                     "examined", self.path, checkpoint)
        return None

    def checkpoint(self) -> str | None:
        mark = self._progress.mark
        return None if mark is None else f"maildir:{self.path};ctime={mark}"

    def _candidates(self) -> list[tuple[int, str, str]]:
        """(ctime, folder, name) of the unseen files after the checkpoint, oldest first."""
        since = None if self._progress.mark is None else self._progress.mark - _CTIME_SLACK_NS
        found = []
        for folder in ("new", "cur"):
            try:
                names = os.listdir(self.path / folder)
            except OSError as exc:
                raise MailboxError(str(self.path), f"cannot list {folder}/: {exc.strerror}",
                                   "let the user running digest read the Maildir") from None
            for name in names:
                if name.startswith(".") or "S" in _flags(name) or "T" in _flags(name):
                    continue
                try:
                    ctime = os.stat(self.path / folder / name).st_ctime_ns
                except FileNotFoundError:  # renamed meanwhile (by a mail reader): seen later
                    continue
                if since is None or ctime >= since:
                    found.append((ctime, folder, name))
        return sorted(found)

    def messages(self, limit: int) -> Iterator[Incoming]:
        for ctime, folder, name in self._candidates()[:limit]:
            file = self.path / folder / name
            ident = "maildir:" + name.partition(":")[0]
            read = self._read(file)
            if read is None:  # gone meanwhile: nothing to do, nothing lost
                continue
            data, size = read
            self._progress.examined(ident, ctime)
            if len(data) > self.max_bytes:
                too_big(str(file), size, self.max_bytes)
                self._progress.finished(ident)
                continue
            yield Incoming(ident, data, str(file), ctime)

    def _read(self, file: Path) -> tuple[bytes, int] | None:
        """The file's bytes (max_bytes + 1 of them for a larger one) and size; None if it is
        gone."""
        try:
            with open(file, "rb") as handle:
                return handle.read(self.max_bytes + 1), os.fstat(handle.fileno()).st_size
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise MailboxError(str(file), f"cannot read the message: {exc.strerror}",
                               "let the user running digest read the Maildir") from None

    def done(self, incoming: Incoming, handled: bool) -> None:
        if handled:
            self._mark_seen(Path(incoming.where))
        self._progress.finished(incoming.ident)

    def _mark_seen(self, file: Path) -> None:
        key, _, _ = file.name.partition(":")
        flags = "".join(sorted(set(_flags(file.name)) | {"S"}))
        target = self.path / "cur" / f"{key}:2,{flags}"
        if target.exists():  # a rename would replace it: never lose a message
            log.warning("%s: not marked seen: %s is in the way", file, target)
            return
        try:
            os.rename(file, target)
        except FileNotFoundError:  # moved by someone else meanwhile: read again, counted once
            log.info("%s: gone before it could be marked seen", file)
        except OSError as exc:
            raise MailboxError(str(file), f"cannot mark the message seen: {exc.strerror}",
                               "let the user running digest write to the Maildir") from None

    def close(self) -> None:
        """Nothing is held open between calls."""


def open_mailbox(settings: BouncesSettings, *, checkpoint: str | None = None,
                 max_bytes: int = MAX_MESSAGE_BYTES,
                 environ: Mapping[str, str] | None = None) -> Mailbox | None:
    """The configured mailbox, ready to read (IMAP: connected, logged in, folder selected);
    None when the config names none. *environ* (default os.environ) holds the password."""
    if settings.maildir is not None:
        return MaildirMailbox(settings.maildir, checkpoint=checkpoint, max_bytes=max_bytes)
    if settings.imap is not None:
        return ImapMailbox(settings.imap, checkpoint=checkpoint, max_bytes=max_bytes,
                           environ=os.environ if environ is None else environ)
    return None


__all__ = ["MAX_MESSAGE_BYTES", "ImapMailbox", "Incoming", "Mailbox", "MaildirMailbox",
           "open_mailbox"]

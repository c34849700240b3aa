"""Every error digest raises, so callers catch one base and still know what went wrong.

    DigestError
    ├── ConfigError             the config file (or the site's _config.yml) is unusable
    │   └── TemplateError       a template cannot be compiled or rendered: its file and line
    ├── PostError               one post file cannot be read; the others still are
    ├── SubscribersUnreadable   the subscribers file cannot be used at all
    ├── MissingSecret           links cannot be signed: the token secret is unset or short
    ├── MessageError            a value would break a message header (also a ValueError)
    ├── StateError              the state database (or another file of the state folder)
    │   │                       cannot be read or written: damaged, locked, read-only, full
    │   ├── StateLost           the send log is gone while earlier digests left traces
    │   └── ConnectionLost      the PostgreSQL connection broke during a call; it may be
    │                           run again on a new one (state/postgres.py)
    ├── Busy                    another process holds a lock of the state folder
    ├── OutputError             a file cannot be written where digest puts it (also an OSError)
    ├── DeliveryPaused          a run stopped itself; pending messages go out on the next run
    │   ├── SmtpAuthFailed      the server refused the credentials (or offers no AUTH)
    │   └── SmtpTlsFailed       no verified TLS: bad certificate, or no STARTTLS offered
    ├── ControlError            the owner's pause, resume or cancel of a run is refused:
    │                           no such run, already done, cancelled, not paused
    ├── ServeError              the web front cannot start: address in use, not allowed
    ├── MailboxError            the bounces mailbox cannot be read: missing Maildir, IMAP
    │                           refused the connection, the TLS certificate or the login
    ├── WebhookRefused          a relay's webhook request is not taken: unsigned, forged,
    │                           replayed, malformed; `status` is the HTTP answer
    └── InitRefused             `digest init` will not write over a file, or outside a site

Library errors are translated into these where they enter, each naming the file (or the
address) and what to do: YAML (util/yamlsource.py), SQLite (state/store.py and the few other
readers of the database), OSError on writes (util/writer.py), SMTP (delivery/smtp.py: a failed
message is an outcome in the send log; what stops a run is a DeliveryPaused), Jinja
(edition/layout.py, web/pages.py), the web server's start (web/server.py) and imaplib
(feedback/mailbox.py). So the command
line's one boundary (cli/base.py) only has to print them.

Every class is defined here and drawn above; tests/test_errors.py keeps it so.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path


class DigestError(Exception):
    """Base of all errors digest raises on purpose; its message is what a user reads."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one input file: where, what, and what to do about it."""

    path: Path
    line: int | None
    message: str
    hint: str = ""

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else str(self.path)
        text = f"{where}: {self.message}"
        return f"{text} ({self.hint})" if self.hint else text


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """The hint for a misspelt key: the closest allowed one, or the list of them."""
    options = list(choices)
    import difflib  # only on the way to an error message: not at every start-up

    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else "allowed: " + ", ".join(sorted(options))


class ConfigError(DigestError):
    """The configuration cannot be used; carries every problem found, not just the first."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class PostError(DigestError):
    """A post file is broken: it is rejected, and the build goes on without it."""

    def __init__(self, problem: Problem) -> None:
        self.problem = problem
        super().__init__(str(problem))


class SubscribersUnreadable(DigestError):
    """The whole subscribers file cannot be used (missing, not UTF-8, not YAML, not a list);
    `problem` says where."""

    def __init__(self, problem: Problem) -> None:
        self.problem = problem
        super().__init__(str(problem))


class MissingSecret(DigestError):
    """Links cannot be signed: the secret's environment variable is unset or too short."""


class MessageError(DigestError, ValueError):
    """A value cannot go into a message: an address, URL or id that would break a header."""


class TemplateError(ConfigError):
    """A Jinja template (the user's, or a built-in one) cannot be compiled or rendered; `path`
    and `line` say where (line None when Jinja cannot tell). A ConfigError because the
    templates folder is part of the configuration: it is printed as one problem."""

    def __init__(self, path: Path, line: int | None, what: str) -> None:
        self.path = path
        self.line = line
        super().__init__([Problem(path, line, what,
                                  "fix the template, or delete it to use the built-in one")])


class StateError(DigestError):
    """The state folder's database or files cannot be used; says which file and what to do."""

    def __init__(self, path: Path, what: str, todo: str) -> None:
        self.path = path
        self.what = what
        self.todo = todo
        super().__init__(f"{path}: {what}; {todo}")


class ConnectionLost(StateError):
    """The connection to the shared state's server was lost during a call: it may be run
    again on a new one (PostgresState._reconnect). Uncaught, it is the StateError it always
    was."""


class StateLost(StateError):
    """The send log is empty or missing, but earlier digests left traces: sending now would
    mail everyone the last digest again."""


class Busy(DigestError):
    """Another process holds a lock of the state folder; `path` is the lock file, `pid` what
    its holder wrote there (None if unreadable)."""

    def __init__(self, path: Path, pid: int | None, message: str) -> None:
        self.path = path
        self.pid = pid
        super().__init__(message)


class OutputError(DigestError, OSError):
    """A file cannot be written (full disk, read-only folder, no permission); nothing half
    written is left behind. Also an OSError with the cause's errno, so code that handled the
    OSError before it was translated still does."""

    def __init__(self, path: Path, error: OSError, todo: str = "") -> None:
        reason = error.strerror or str(error)
        self.message = f"cannot write {path}: {reason}; {todo or _todo_for(error)}"
        super().__init__(error.errno, reason, str(path))
        self.path = path
        self.error = error

    def __str__(self) -> str:
        return self.message


class DeliveryPaused(DigestError):
    """Delivery stopped itself because continuing would only fail again.

    `reason` is what failed last, `failures` how many failures in a row led here, `hint`
    what to do.
    """

    def __init__(self, reason: str, failures: int, *, hint: str = "") -> None:
        self.reason = reason
        self.failures = failures
        self.hint = hint or ("messages without an outcome are still pending; "
                             "once the cause is fixed, run `digest send` again to resume")
        super().__init__(f"{self.headline()}: {reason} ({self.hint})")

    def headline(self) -> str:
        if self.failures == 1:
            return "delivery paused"
        return f"delivery paused after {self.failures} consecutive failures"


class SmtpAuthFailed(DeliveryPaused):
    """The SMTP server refused our login: every other message would be refused too."""

    def __init__(self, reason: str, *, hint: str = "") -> None:
        super().__init__(reason, 1, hint=hint)

    def headline(self) -> str:
        return "SMTP authentication failed"


class SmtpTlsFailed(DeliveryPaused):
    """No verified TLS could be set up, and sending in the clear was not asked for."""

    def __init__(self, reason: str, *, hint: str = "") -> None:
        super().__init__(reason, 1, hint=hint)

    def headline(self) -> str:
        return "no secure connection to the SMTP server"


class ControlError(DigestError):
    """The owner's pause, resume or cancel cannot be done (delivery/control.py); the message
    says why and what to do instead. Nothing was changed."""


class ServeError(DigestError, OSError):
    """The web front cannot listen on `address` (HOST:PORT): in use, not ours to bind, or the
    server stopped before it started; `reason` says which. Also an OSError (with the cause's
    errno when there is one), as it was before it was translated."""

    def __init__(self, address: str, reason: str, errno: int | None = None) -> None:
        self.message = f"cannot listen on {address}: {reason}"
        super().__init__(errno, reason)
        self.address = address
        self.reason = reason

    def __str__(self) -> str:
        return self.message


class MailboxError(DigestError):
    """The mailbox bounces are read from cannot be used; `where` names it (a Maildir's path or
    imaps://user@host:port/folder), `reason` what went wrong, `hint` what to do. Nothing in
    the mailbox was changed or lost: the next read starts where the last one stopped."""

    def __init__(self, where: str, reason: str, hint: str) -> None:
        self.where = where
        self.reason = reason
        self.hint = hint
        super().__init__(f"{where}: {reason} ({hint})")


class WebhookRefused(DigestError):
    """A relay's webhook request is refused before anything is recorded: `status` is the
    HTTP answer (400 malformed, 401/403 not from the relay, 413 too large, 503 try again
    later), `reason` what a log line says, with nothing of the body's content in it."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class InitRefused(DigestError):
    """`digest init` will not write: a file is in the way, or the folder is no Jekyll site."""


def _todo_for(error: OSError) -> str:
    import errno

    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return "free some space on that disk and run the command again"
    if error.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return "make that folder writable by the user running digest, or point the config " \
               "at one that is"
    return "check the folder exists and is writable, then run the command again"


# the tree above and the Problem errors carry (tests/test_public_api.py pins them)
__all__ = ["Busy", "ConfigError", "ConnectionLost", "ControlError", "DeliveryPaused",
           "DigestError", "InitRefused", "MailboxError", "MessageError", "MissingSecret",
           "OutputError", "PostError", "Problem", "ServeError", "SmtpAuthFailed",
           "SmtpTlsFailed", "StateError", "StateLost", "SubscribersUnreadable",
           "TemplateError", "WebhookRefused"]

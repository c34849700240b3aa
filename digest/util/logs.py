"""How the daemon's log looks: one line per event, for people (text) or for machines (JSON).

Modules log through a logger named after the module (`logging.getLogger(__name__)`:
"digest.delivery.send", "digest.daemon.feeds", "digest.web.app"), so the JSON format's
"logger" field says where a line came from; filter on the event name, which stays. An event
that a machine may want to pick out also passes `extra=event("feeds.rebuilt", written=[...])`,
which the JSON format turns into fields of its own. The text format is the message alone, after
the time and level, so it reads the same on a terminal and in the journal.

    text: 2024-06-10 09:00:02 INFO  feeds rebuilt (post changed: 2024-06-10-x.md): 4 files
    json: {"time": "2024-06-10T13:00:02.120Z", "level": "info", "logger": "digest.daemon.work",
           "event": "feeds.rebuilt", "message": "feeds rebuilt (...)", "written": [...]}
"""

from __future__ import annotations

import json
import logging
import re
import sys
import traceback
from datetime import UTC, datetime
from typing import Any, Literal

Format = Literal["text", "json"]

# the libraries' own chatter ("Added job", "1 change detected") is below what we log ourselves
_QUIET = {"apscheduler": logging.WARNING, "apscheduler.executors": logging.ERROR,
          "watchfiles": logging.WARNING}


# C0/C1 controls but tab, DEL, line/paragraph separators and bidi formatting characters: a
# tag or subscriber name holding "\n" must not forge a log line of its own, nor U+202E
# reorder one on screen
_UNSAFE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]")
_UNSAFE_IN_TRACEBACK = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e"
                                  r"\u2066-\u2069]")


def _escape(match: re.Match[str]) -> str:
    return match.group().encode("unicode_escape").decode("ascii")  # "\n", "\u202e"


def visible(text: str) -> str:
    """*text* on one line, with control and bidi characters shown as escapes."""
    return _UNSAFE.sub(_escape, text)


def event(name: str, **fields: Any) -> dict[str, Any]:
    """`extra=` for a log call: the event's name and its fields, for the JSON format."""
    return {"event": name, "fields": fields}


class JsonFormatter(logging.Formatter):
    """One JSON object per line; exceptions become a `traceback` string, never extra lines."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname.lower(), "logger": record.name,
            "event": getattr(record, "event", None), "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            out.update({k: v for k, v in fields.items() if k not in out})
        if record.exc_info:
            out["traceback"] = "".join(traceback.format_exception(*record.exc_info))
        # json escapes controls already; bidi characters and U+2028/9 it leaves raw
        return _UNSAFE.sub(_escape, json.dumps(out, ensure_ascii=False, default=_plain))


def _plain(value: object) -> object:
    return value.isoformat() if isinstance(value, datetime) else str(value)


class TextFormatter(logging.Formatter):
    """One line per record, whatever its message holds; a traceback's lines are indented,
    so no line but a record's own starts at the left margin."""

    def __init__(self, fmt: str = "%(asctime)s %(levelname)-5s %(message)s") -> None:
        super().__init__(fmt, "%Y-%m-%d %H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        # not Formatter.format: it reuses a traceback another handler formatted (exc_text)
        record.message = visible(record.getMessage())
        record.asctime = self.formatTime(record, self.datefmt)
        line = self.formatMessage(record)
        extra = [self.formatException(record.exc_info) if record.exc_info else "",
                 self.formatStack(record.stack_info) if record.stack_info else ""]
        for text in filter(None, extra):
            text = _UNSAFE_IN_TRACEBACK.sub(_escape, text)
            line += "".join("\n    " + part for part in text.split("\n"))
        return line


def configure_command(*, verbose: bool = False) -> None:
    """Log lines of a one-shot command (`digest send`, `build`…): level and message, made
    visible like the daemon's, unless logging was set up already (as basicConfig would)."""
    root = logging.getLogger()
    if root.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(TextFormatter("%(levelname)s %(message)s"))
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)


def configure(fmt: Format, *, verbose: bool = False) -> None:
    """Send every log line to stderr in *fmt*, replacing whatever was set up before."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    for name, level in _QUIET.items():
        logging.getLogger(name).setLevel(level if not verbose else max(level, logging.INFO))

"""How the daemon's log looks: one line per event, for people (text) or for machines (JSON).

Modules log through `logging.getLogger(__name__)` as everywhere else; an event that a
machine may want to pick out also passes `extra=event("feeds.rebuilt", written=[...])`, which
the JSON format turns into fields of its own. The text format is the message alone, after
the time and level, so it reads the same on a terminal and in the journal.

    text: 2024-06-10 09:00:02 INFO  feeds rebuilt (post changed: 2024-06-10-x.md): 4 files
    json: {"time": "2024-06-10T13:00:02.120Z", "level": "info", "logger": "digest.daemon",
           "event": "feeds.rebuilt", "message": "feeds rebuilt (...)", "written": [...]}
"""

from __future__ import annotations

import json
import logging
import sys
import traceback
from datetime import UTC, datetime
from typing import Any, Literal

Format = Literal["text", "json"]

# the libraries' own chatter ("Added job", "1 change detected") is below what we log ourselves
_QUIET = {"apscheduler": logging.WARNING, "apscheduler.executors": logging.ERROR,
          "watchfiles": logging.WARNING}


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
        return json.dumps(out, ensure_ascii=False, default=_plain)


def _plain(value: object) -> object:
    return value.isoformat() if isinstance(value, datetime) else str(value)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-5s %(message)s", "%Y-%m-%d %H:%M:%S")


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

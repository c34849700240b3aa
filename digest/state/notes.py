"""What the daemon notes for `digest status`: one JSON document per key (daemon, web, build,
subscribers) in the state database's `daemon_status` table, replaced each time."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from .store import Store


def note(store: Store, key: str, data: dict[str, Any]) -> None:
    """Replace what the daemon last recorded under *key* (daemon, build, subscribers)."""
    with store.atomic() as db:
        db.execute("INSERT OR REPLACE INTO daemon_status VALUES (?, ?, ?)",
                   (key, json.dumps(data, default=str), datetime.now(UTC).isoformat()))

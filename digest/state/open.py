"""The one place that opens the shared state (state/interface.py) and chooses where it lives.

Today that is always the SQLite state database in the `state:` folder; a PostgreSQL
implementation is chosen here, by the config, when there is one. The daemon's schedule
lives beside it, so where it lives is said here too (schedule_store_url).
"""

from __future__ import annotations

from ..config import Config
from .interface import SharedState
from .sqlite import SqliteState
from .store import DATABASE, Store


def open_state(config: Config, *, local: Store | None = None,
               read_only: bool = False) -> SharedState:
    """The shared state for *config*; the caller closes it.

    *local*: the caller's open local store (caches). While the shared state is in the same
    SQLite file it shares that connection, and so its transactions and its scratch copy
    (Store.scratch), and closing the shared state closes *local*. *read_only*: only read, as
    `digest status` does (nothing created or migrated; see has_state)."""
    if local is not None:
        return SqliteState(local, read_only=read_only)
    if read_only:
        return SqliteState(Store(config.state / DATABASE, read_only=True), read_only=True)
    return SqliteState(Store.open(config.state))


def schedule_store_url(config: Config) -> str:
    """Where the daemon's scheduler keeps its jobs (an SQLAlchemy URL): beside the shared
    state, so every machine sees one schedule; SqliteState.next_run reads it from there."""
    return f"sqlite:///{config.state / DATABASE}"


def has_state(config: Config) -> bool:
    """Whether *config*'s shared state exists yet (a read-only open needs it to)."""
    return (config.state / DATABASE).exists()

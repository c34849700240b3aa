"""The one place that opens the shared state (state/interface.py) and chooses where it lives.

Without `database_env` in the config that is the SQLite state database in the `state:`
folder; with it, the PostgreSQL database whose URL that variable holds (state/postgres.py),
shared by every machine serving the site. The daemon's schedule lives beside it, so where it
lives is said here too (schedule_store_url). The local caches stay in the state folder's
SQLite file either way (store.py).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from ..config import Config
from ..errors import ConfigError, Problem, StateError
from .interface import SharedState
from .sqlite import SqliteState
from .store import DATABASE, Store

if TYPE_CHECKING:
    from .postgres import PostgresState

URL_SCHEMES = ("postgresql://", "postgres://")


def database_url(config: Config) -> str | None:
    """The PostgreSQL URL from the variable `database_env` names; None without the key.
    The URL (it holds the password) is never in the config file, nor in any message."""
    name = config.database_env
    if name is None:
        return None
    url = os.environ.get(name, "").strip()
    if not url:
        raise ConfigError([Problem(
            config.path, None, f"database_env: the environment variable {name} is unset or "
            "empty, so the shared state's PostgreSQL database is unknown",
            f"set {name} to its URL (postgresql://USER:PASSWORD@HOST:5432/DATABASE), or "
            "remove database_env to keep the state in SQLite in the state folder")])
    if not url.startswith(URL_SCHEMES):
        raise ConfigError([Problem(
            config.path, None, f"database_env: the environment variable {name} does not hold "
            "a PostgreSQL URL", f"set {name} to postgresql://USER:PASSWORD@HOST:5432/DATABASE")])
    return url


def open_state(config: Config, *, local: Store | None = None,
               read_only: bool = False, wait_seconds: float | None = None) -> SharedState:
    """The shared state for *config*; the caller closes it.

    *local*: the caller's open local store (caches). While the shared state is in the same
    SQLite file it shares that connection, and so its transactions and its scratch copy
    (Store.scratch), and closing the shared state closes *local*. On PostgreSQL the state
    lives as long as *local* (closing either closes both), and a scratch *local* makes it a
    throwaway: its writes are rolled back. *read_only*: only read, as `digest status` does
    (nothing created or migrated; see has_state). *wait_seconds*: how long a lost connection
    to PostgreSQL is retried; the config's `database_wait_seconds` unless given."""
    url = database_url(config)
    if url is not None:
        from .postgres import PostgresState  # psycopg only for those who use it

        variable = str(config.database_env)
        wait = config.database_wait_seconds if wait_seconds is None else wait_seconds
        if local is None:
            alone = PostgresState(url, read_only=read_only, variable=variable,
                                  wait_seconds=wait)
            if not read_only and (config.state / DATABASE).exists():
                try:
                    _refuse_left_behind(alone, config.state / DATABASE)
                except BaseException:
                    alone.close()
                    raise
            return alone
        state = PostgresState(url, throwaway=local.throwaway, also_close=local.close,
                              variable=variable, wait_seconds=wait)
        local.close_with(state.close)
        if not read_only:
            try:
                _refuse_left_behind(state, local.path, local)
            except BaseException:
                state.close()
                raise
        return state
    if local is not None:
        return SqliteState(local, read_only=read_only)
    if read_only:
        return SqliteState(Store(config.state / DATABASE, read_only=True), read_only=True)
    return SqliteState(Store.open(config.state))


def _refuse_left_behind(state: PostgresState, path: Path, local: Store | None = None) -> None:
    """Stop before the first write to a PostgreSQL database that holds nothing while the
    state folder's SQLite file at *path* holds the site's state from before: without it a
    digest would go to those who unsubscribed, and the feeds would give every post a new id.
    The file (*local*, else opened read-only here) is only read when the database is
    empty: one EXISTS per open otherwise."""
    if state.holds_state():
        return
    from .pg_copy import summary

    found = _left_in(path, local)
    if found is not None:
        raise StateError(path, "this site's state from before database_env ("
                         + summary(found) + f") is here, and the database {state.path} "
                         "holds none of it",
                         "copy it there first with `digest copy-state`; or, to start afresh "
                         "on PostgreSQL, move this file out of the state folder")


def _left_in(path: Path, local: Store | None = None) -> dict[str, int] | None:
    """What the SQLite state at *path* (or the open *local*) holds that a site would lose
    (pg_copy.worth_keeping); None if nothing, or if the file cannot be read (damaged: its
    caches are rebuilt), which stops nothing where it is only looked at."""
    from .pg_copy import worth_keeping

    source = local if local is not None else _readable(path)
    if source is None:
        return None
    try:
        return worth_keeping(source.db)
    finally:
        if local is None:
            source.close()


def _readable(path: Path) -> Store | None:
    """The SQLite file at *path* opened read-only; None if it cannot be read (damaged: its
    caches are rebuilt), which stops nothing where it is only looked at for left-behind
    state."""
    try:
        return Store(path, read_only=True)
    except StateError:
        return None


def schedule_store_url(config: Config) -> str:
    """Where the daemon's scheduler keeps its jobs (an SQLAlchemy URL): beside the shared
    state, so every machine sees one schedule; next_run reads it from there."""
    url = database_url(config)
    if url is not None:
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return f"sqlite:///{config.state / DATABASE}"


def left_behind(config: Config) -> dict[str, int] | None:
    """For `digest status`: what the state folder's SQLite file holds that the PostgreSQL
    database *config* names lacks (see _refuse_left_behind); None when nothing is, or the
    state is SQLite. Only reads."""
    url = database_url(config)
    path = config.state / DATABASE
    if url is None or not path.exists():
        return None
    from .postgres import PostgresState, has_tables

    if has_tables(url, str(config.database_env)):  # else nothing is there at all yet
        state = PostgresState(url, read_only=True, variable=str(config.database_env),
                              wait_seconds=config.database_wait_seconds)
        try:
            if state.holds_state():
                return None
        finally:
            state.close()
    return _left_in(path)


def left_behind_line(config: Config, counts: dict[str, int]) -> str:
    from .pg_copy import summary

    return (f"not in the database yet: {summary(counts)} in {config.state / DATABASE}; "
            "every command that writes refuses until `digest copy-state` copies them there "
            "(or the file is moved out of the state folder)")


def has_state(config: Config) -> bool:
    """Whether *config*'s shared state exists yet (a read-only open needs it to)."""
    url = database_url(config)
    if url is not None:
        from .postgres import has_tables

        return has_tables(url, str(config.database_env))
    return (config.state / DATABASE).exists()

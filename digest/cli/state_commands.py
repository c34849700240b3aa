"""`digest copy-state`: a site's state moved from SQLite into PostgreSQL (state/pg_copy.py),
once, when the config starts to name `database_env`."""

from __future__ import annotations

import click

from ..errors import ConfigError, Problem
from .base import load, subcommand


@subcommand
@click.option("--dry-run", is_flag=True,
              help="Copy and count inside a transaction that is rolled back: nothing kept.")
@click.pass_context
def copy_state(ctx: click.Context, dry_run: bool) -> None:
    """Copy the state folder's SQLite state into the PostgreSQL database `database_env` names.

    For a site moving to PostgreSQL: its digests and deliveries, suppression list, tag
    choices, members, sign-ups, bounces, entry ids and archive go into the new database in
    one transaction, all or nothing. The database must hold no digest state yet (run this
    before any other command uses it; until then they refuse to start). state.sqlite3 is
    left as it was. Heartbeats, leases, rate-limit counts and the daemon's schedule are not
    copied: they are about the old machine's moment, and the daemon schedules again.
    """
    config = load(ctx)
    if config.database_env is None:
        raise ConfigError([Problem(config.path, None, "copy-state copies into the PostgreSQL "
                                   "database database_env names, and the config names none",
                                   "add database_env: DIGEST_DATABASE_URL (and export it) "
                                   "first")])
    from ..state.locks import daemon_lock
    from ..state.open import database_url
    from ..state.pg_copy import copy_state as copy
    from ..state.pg_copy import summary
    from ..state.postgres import PostgresState
    from ..state.store import DATABASE, Store

    url = database_url(config)
    assert url is not None
    source = config.state / DATABASE
    if not source.exists():
        click.echo(f"error: {source}: there is no SQLite state to copy; check `state:` in "
                   f"{config.path}", err=True)
        ctx.exit(2)
    with daemon_lock(config.state):  # no daemon writes to state.sqlite3 meanwhile
        store = Store.open(config.state)  # at the newest schema, as the copy reads it
        try:
            target = PostgresState(url, variable=str(config.database_env), wait_seconds=0)
            try:
                copied = copy(store.db, source, target, dry_run=dry_run)
            finally:
                target.close()
        finally:
            store.close()
    click.echo(("dry run, rolled back: would copy " if dry_run else "copied ")
               + f"{summary(copied.counts)} from {copied.source} into {copied.target}")
    if not dry_run:
        click.echo("every command with database_env now uses PostgreSQL; state.sqlite3 keeps "
                   "its copy (caches stay in it); not copied: heartbeats, leases, rate-limit "
                   "counts, and the daemon's schedule, which `digest run` makes again")

"""`digest subscribers import`: a Mailchimp audience export or a CSV into the list.

Reading and checking is subscribers/imports.py, putting it into the state
subscribers/import_apply.py; here the file is read (bounded), the posts' tags and the
subscribers file looked up, and the counts printed. --dry-run applies the import to a
private copy of the state (Store.scratch, as `send --dry-run`), so its counts are exactly
what a real run would print, and the state folder is left as it was.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ..errors import Problem, SubscribersUnreadable
from .base import load_and_scan, subscribers_command

if TYPE_CHECKING:
    from ..config import Config
    from ..state.interface import SharedState


def _import(ctx: click.Context, file: Path, format_: str | None, dry_run: bool) -> None:
    """Add a Mailchimp audience export (its ZIP, or one of its CSVs) or a CSV to the list.

    A CSV has a header row naming its columns: `email` (or `Email Address`), and optionally
    `name` (or `First Name` and `Last Name`), `tags` and `status` (subscribed,
    unsubscribed, cleaned, bounced). Subscribed rows become members; unsubscribed, cleaned
    and bounced ones go on the suppression list with their reason. A suppression always
    wins, and an address in the subscribers file is left to it. Running it again changes
    nothing. Exit 1 if some rows were rejected (the others are imported), 2 if the file
    cannot be used at all.
    """
    config, scanned = load_and_scan(ctx)
    from ..posts.reader import read_posts
    from ..state.open import open_state
    from ..state.store import Store
    from ..subscribers.import_apply import apply_import
    from ..subscribers.imports import parse_import

    data = _read(ctx, file, config.limits.subscribers_bytes)
    store = Store.scratch(config.state) if dry_run else Store.open(config.state)
    state = open_state(config, local=store)
    try:
        now = datetime.now(config.site.tz)
        known = read_posts(config, store, now=now, scanned=scanned).terms
        try:
            parsed = parse_import(file, data, known, limits=config.limits,
                                  format=None if format_ is None else
                                  "mailchimp" if format_ == "mailchimp" else "csv")
        except SubscribersUnreadable as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(2)
        applied = apply_import(state, parsed.records, listed=_listed(config, state), now=now)
    finally:
        state.close()
    for warning in parsed.warnings:
        click.echo(f"warning: {warning}", err=True)
    click.echo(("dry run, nothing written: " if dry_run else "")
               + f"new {applied.new}, updated {applied.updated}, "
               f"unchanged {applied.unchanged}, suppressed {applied.suppressed}, "
               f"kept suppressed {applied.kept_suppressed}, "
               f"already in the subscribers file {applied.listed}, "
               f"rejected {len(parsed.rejected)}"
               + (f", skipped {parsed.skipped} never subscribed" if parsed.skipped else "")
               + f" ({parsed.format})")
    for problem in parsed.rejected:
        click.echo(f"rejected: {problem}", err=True)
    ctx.exit(1 if parsed.rejected else 0)


_import.__name__ = "import"  # a keyword, so the command's function cannot be named that
import_command = subscribers_command(
    click.option("--dry-run", is_flag=True,
                 help="Count what would change; write nothing.")(
        click.option("--format", "format_", type=click.Choice(["mailchimp", "csv"]),
                     help="Mailchimp's export, or a CSV with named columns (default: "
                          "told by the file's name and columns).")(
            click.argument("file", type=click.Path(dir_okay=False, path_type=Path))(
                click.pass_context(_import)))))


def _read(ctx: click.Context, file: Path, limit: int) -> bytes:
    """The file's bytes, no more than *limit* read; exit 2 if it cannot be read."""
    try:
        with file.open("rb") as handle:
            data = handle.read(limit + 1)
    except OSError as exc:
        problem = Problem(file, None, f"cannot read: {exc.strerror or exc}",
                          "check the path and its permissions")
        click.echo(f"error: {problem}", err=True)
        ctx.exit(2)
    if len(data) > limit:
        problem = Problem(file, None, f"the file is over {limit:,} bytes",
                          "raise limits.subscribers_bytes in config.yaml if it really is "
                          "that long")
        click.echo(f"error: {problem}", err=True)
        ctx.exit(2)
    return data


def _listed(config: Config, state: SharedState) -> set[str]:
    """The keys in the owner's subscribers file (or its last good copy); none if neither."""
    from ..subscribers.load import load_subscribers, parse_subscribers

    if config.subscribers is None:
        return set()
    try:
        found = load_subscribers(config.subscribers, (), config.limits)
    except SubscribersUnreadable:
        snapshot = state.snapshot()
        if snapshot is None:
            return set()
        found = parse_subscribers(config.subscribers, snapshot[1], (), config.limits)
    return {sub.key for sub in found.subscribers}

"""`digest bounces`: read the bounces mailbox now."""

from __future__ import annotations

import click

from .base import load, subcommand


@subcommand
@click.option("--verbose-ignored", "show_ignored", is_flag=True,
              help="Also list each message left alone and why it is not feedback.")
@click.pass_context
def bounces(ctx: click.Context, show_ignored: bool) -> None:
    """Read the bounces mailbox (bounces: maildir or imap) now, as `digest run` does on its
    schedule: bounces, complaints and replies to the List-Unsubscribe address become
    suppressions; every other message is left exactly as it was, never deleted.

    Exit 2 if no mailbox is configured or it cannot be read.
    """
    from ..feedback.process import read_feedback

    config = load(ctx)
    if config.bounces is None or (config.bounces.maildir is None and config.bounces.imap is None):
        click.echo(f"error: {config.path}: no bounces mailbox is configured (add 'bounces:' "
                   "with 'maildir: PATH' or 'imap: {host, username, password_env}')", err=True)
        ctx.exit(2)
    read = read_feedback(config)
    click.echo(f"{read.where}: {read.examined} message(s) examined, {read.feedback} "
               f"feedback, {read.examined - read.feedback} left alone")
    click.echo(read.summary())
    for address, reason in read.suppressed:
        click.echo(f"  suppressed {address}: {reason}")
    if show_ignored:
        for where, why in read.ignored:
            click.echo(f"  left alone: {where}: {why}", err=True)

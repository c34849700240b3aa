"""`digest send` and `digest preview`: the digest; `digest pause`, `resume` and `cancel`: the
owner's hand on a digest in progress."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..config import Config
from .base import (
    DEFERRED_EXIT,
    as_of_given,
    as_of_option,
    digest_errors,
    fetch_option,
    load,
    poll_sources_of,
    subcommand,
)

if TYPE_CHECKING:  # imported where used: `digest preview` need not load the send machinery
    from ..delivery.send import RunReport


def _print_problems(subscribers: Any) -> int:
    if subscribers is None:
        return 0
    for problem in subscribers.problems:
        click.echo(f"skipped subscriber: {problem}", err=True)
    for problem in subscribers.warnings:
        click.echo(f"warning: {problem}", err=True)
    return len(subscribers.problems)


@subcommand
@as_of_option
@click.option("--dry-run", is_flag=True, help="Render every message, send and record nothing.")
@click.option("--to", "to", metavar="EMAIL",
              help="Send one test copy to this address instead (not logged as a delivery).")
@click.option("--subscriber", metavar="EMAIL", help="With --to: that subscriber's digest.")
@click.option("--i-lost-the-state", "state_lost", is_flag=True,
              help="The state database is lost and there is no backup: rebuild the past "
                   "digests from state/archive and send from a new send log (who "
                   "unsubscribed is lost with it).")
@fetch_option
@click.pass_context
def send(ctx: click.Context, as_of_text: str | None, dry_run: bool, to: str | None,
         subscriber: str | None, state_lost: bool, fetch: bool) -> None:
    """Send this period's digest to every subscriber (resuming any unfinished run first).

    Exit 1 if any delivery failed permanently, the run paused, or entries of the subscribers
    file were skipped; else exit 3 if some deliveries were deferred (the server kept
    answering "try again later"): `digest run` retries them on its own, or run `digest
    send` again later; after smtp.give_up_days they count as failed.
    """
    config = load(ctx)
    as_of = as_of_given(ctx, as_of_text, config)
    poll_sources_of(config, fetch)
    with digest_errors(ctx):
        if to is not None:
            _send_test(ctx, config, as_of, to, subscriber)
        elif dry_run:
            _send_dry(ctx, config, as_of)
        else:
            _send_all(ctx, config, as_of, state_lost)


def _send_test(ctx: click.Context, config: Config, as_of: datetime, to: str,
               subscriber: str | None) -> None:
    """--to: one test copy, not logged as a delivery."""
    from ..delivery.send import send_test

    outcome = send_test(config, as_of=as_of, to=to, subscriber=subscriber)
    if outcome is None:
        click.echo("nothing to send: no posts for that digest")
        return
    click.echo(f"test copy to {to}: {outcome.status} ({outcome.reply})")
    ctx.exit(0 if outcome.status == "sent" else 1)


def _send_dry(ctx: click.Context, config: Config, as_of: datetime) -> None:
    """--dry-run: every message made, none sent, nothing recorded."""
    from ..delivery.preview import dry_run

    dry = dry_run(config, as_of=as_of)
    skipped = _print_problems(dry.subscribers)
    click.echo(dry.summary())
    ctx.exit(1 if skipped else 0)


def _send_all(ctx: click.Context, config: Config, as_of: datetime, state_lost: bool) -> None:
    """The digest to every subscriber, an unfinished run resumed first."""
    from ..delivery.progress import make_progress
    from ..delivery.send import send
    from ..feedback.process import after_send

    report = send(config, as_of=as_of, progress=make_progress(), state_lost=state_lost)
    refused = after_send(config, [run.run for run in report.runs]).suppressed
    skipped = _print_problems(report.subscribers)
    if report.nothing_new:
        click.echo(report.nothing_new)
    for run in report.runs:
        _print_run(run)
    if refused:
        click.echo(f"{len(refused)} address(es) refused for good (5xx) are now suppressed: "
                   "`digest subscribers list --suppressed` lists them", err=True)
    if config.smtp is None and report.runs:
        click.echo(f"(no smtp: configured: messages are in the outbox "
                   f"{config.state / 'outbox'})")
    if report.failed or report.paused or skipped:
        ctx.exit(1)
    if report.deferred:
        click.echo(f"{report.deferred} deliveries deferred: `digest run` retries them, "
                   "or run `digest send` again later", err=True)
        ctx.exit(DEFERRED_EXIT)


def _print_run(run: RunReport) -> None:
    """One run's counts on stdout; its failures and a pause on stderr."""
    from ..delivery.session import when

    c = run.counts
    click.echo(f"digest {run.run.slug} ({when(run.run.period_start)} → "
               f"{when(run.run.period_end)}, {run.posts} posts): "
               f"sent {c.get('sent', 0)}, skipped-empty {c.get('empty', 0)}, "
               f"failed {c.get('failed', 0)}, deferred {c.get('deferred', 0)}, "
               f"suppressed {c.get('suppressed', 0)}, pending {c.get('pending', 0)}")
    mine = run.mine
    if mine.get("sent", 0) != c.get("sent", 0):  # other senders took part, or earlier sends
        click.echo(f"  by this process: sent {mine.get('sent', 0)}, failed "
                   f"{mine.get('failed', 0)}, deferred {mine.get('deferred', 0)}")
    for email, state, code, reply in run.failures:
        click.echo(f"  {state}: {email}: {code or ''} {reply}".rstrip(), err=True)
    if run.paused:
        click.echo(f"paused: {run.paused}", err=True)
    if run.held:
        click.echo(f"  {run.held}")


# the owner's hand on a run in progress (delivery/control.py) --------------------------------
def _by() -> str:
    """Who is acting, as the actions record it: the login name of whoever runs the command."""
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container): still an owner
        return "owner"


def _control(ctx: click.Context, act: str, slug: str, reason: str) -> None:
    from datetime import UTC

    from ..delivery import control
    from ..state.open import open_state

    config = load(ctx)
    actions = {"pause": control.pause_run, "resume": control.resume_run,
               "cancel": control.cancel_run}
    with digest_errors(ctx):
        state = open_state(config)
        try:
            run = actions[act](state, slug, reason=reason, by=_by(), now=datetime.now(UTC))
            counts = state.counts(run)
            told = control.run_control(state, slug)
        finally:
            state.close()
        assert told is not None
        left = counts.get("pending", 0) + counts.get("deferred", 0)
        if act == "pause":
            click.echo(f"digest {slug} paused {control.describe(told)}; {left} still to "
                       "send. A send in progress stops after the messages in flight; no "
                       f"send resumes it until `digest resume {slug}`")
        elif act == "resume":
            click.echo(f"digest {slug} resumed {control.describe(told)}; {left} still to "
                       "send: `digest run` continues it at its next retry, or run "
                       "`digest send`")
        else:
            click.echo(f"digest {slug} cancelled {control.describe(told)}; "
                       f"{counts.get('cancelled', 0)} deliveries not sent are closed as "
                       "cancelled and never go. A send in progress stops after the messages "
                       "in flight")


@subcommand
@click.argument("slug")
@click.option("--reason", required=True, metavar="TEXT", help="Why (kept with who and when).")
@click.pass_context
def pause(ctx: click.Context, slug: str, reason: str) -> None:
    """Pause the digest SLUG (as `digest status` names it) until `digest resume SLUG`.

    A send in progress, here or in the daemon, stops after the messages in flight; neither
    `digest send` nor the daemon sends it again until it is resumed.
    """
    _control(ctx, "pause", slug, reason)


@subcommand
@click.argument("slug")
@click.option("--reason", default="", metavar="TEXT", help="Why (kept with who and when).")
@click.pass_context
def resume(ctx: click.Context, slug: str, reason: str) -> None:
    """Resume the paused digest SLUG: the daemon or the next `digest send` sends the rest."""
    _control(ctx, "resume", slug, reason)


@subcommand
@click.argument("slug")
@click.option("--reason", required=True, metavar="TEXT", help="Why (kept with who and when).")
@click.pass_context
def cancel(ctx: click.Context, slug: str, reason: str) -> None:
    """Cancel the digest SLUG for good: whoever it has not reached never gets it.

    A send in progress stops after the messages in flight; its posts are not sent again in
    a later digest.
    """
    _control(ctx, "cancel", slug, reason)

@subcommand
@as_of_option
@click.option("--subscriber", metavar="EMAIL", help="Only this subscriber's digest.")
@click.option("--out", "out", type=click.Path(file_okay=False), metavar="DIR",
              help="Where to write the files; default: a new private folder in the "
                   "system's temporary folder (the state is left untouched).")
@click.pass_context
def preview(ctx: click.Context, as_of_text: str | None, subscriber: str | None,
            out: str | None) -> None:
    """Write the next digest's editions as HTML, text and .eml files; send nothing."""
    import tempfile

    from ..delivery import preview as looking
    from ..delivery.session import when

    config = load(ctx)
    # not under the state folder, which preview leaves byte for byte as it was; 0700, as
    # the .eml files carry subscribers' addresses
    target = Path(out) if out else Path(tempfile.mkdtemp(prefix="digest-preview-"))
    with digest_errors(ctx):
        result = looking.preview(config, as_of=as_of_given(ctx, as_of_text, config), out=target,
                                 subscriber=subscriber)
    click.echo(f"period {when(result.period.start)} → {when(result.period.end)}: "
               f"{result.posts} new posts, {result.editions} distinct editions for "
               f"{result.recipients} subscribers ({result.empty} with nothing new)")
    for note in result.notes:
        click.echo(note, err=True)
    for path in result.files:
        click.echo(str(path))

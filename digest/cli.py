"""The `digest` command line: a thin layer that loads config, calls the library, sets exit codes.

Exit codes: 0 success, 1 some input was rejected (everything else was still done),
2 usage or configuration errors. Logging is configured here and nowhere else.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .config import Config, load_config
from .errors import ConfigError, DigestError, Problem

if TYPE_CHECKING:
    from .scan import Scan

log = logging.getLogger("digest")


def _now(value: str | None, config: Config) -> datetime:
    if value is None:
        return datetime.now(config.site.tz)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"'{value}' is not an ISO 8601 date-time") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=config.site.tz)


def _load_and_scan(ctx: click.Context) -> tuple[Config, Scan]:
    """The config, and a scan of its posts folder under way (scan.py): started before the
    config is validated when a plain read of the file names the folder, so a first build
    scans while pydantic loads, and a later one before the config cache is checked."""
    from .config import posts_folder_hint
    from .scan import Scan

    hint = posts_folder_hint(Path(ctx.obj["config"]))
    early = Scan.start(hint) if hint is not None else None
    try:
        config = _load(ctx)
    except BaseException:
        if early is not None:
            early.cancel()
        raise
    if early is not None and early.root == config.posts:
        return config, early
    if early is not None:
        early.cancel()
    return config, Scan.start(config.posts)


def _load(ctx: click.Context) -> Config:
    try:
        return load_config(Path(ctx.obj["config"]))
    except ConfigError as exc:
        for problem in exc.problems:
            click.echo(f"error: {problem}", err=True)
        ctx.exit(2)
        raise  # unreachable: ctx.exit raises


def _problem_json(problem: Problem, root: Path) -> dict[str, Any]:
    try:
        path = str(problem.path.relative_to(root))
    except ValueError:
        path = str(problem.path)
    error = problem.message + (f" ({problem.hint})" if problem.hint else "")
    return {"path": path, "line": problem.line, "error": error}


class _Boundary(click.Group):
    """The one error boundary around every command: nothing reaches a user as a traceback.

    A DigestError (library errors are translated into these where they enter: SQLite,
    files, YAML) is its message and exit 2; anything else is a bug, told in one line with
    what to do, exit 2 too, and its traceback shown under -v. click's own exits and usage
    errors pass through untouched.
    """

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except Exception as exc:
            if ctx.params.get("verbose"):  # for debugging: where it came from
                import traceback

                traceback.print_exc()
            _explain(exc)
        raise click.exceptions.Exit(2)


def _explain(exc: Exception) -> None:
    """One error as the lines a user reads: what, where, what to do."""
    if isinstance(exc, ConfigError):
        for problem in exc.problems:
            click.echo(f"error: {problem}", err=True)
    elif isinstance(exc, DigestError):
        click.echo(f"error: {exc}", err=True)
    elif isinstance(exc, OSError):  # one not translated where it entered: still say where
        where = f"{exc.filename}: " if exc.filename else ""
        click.echo(f"error: {where}{exc.strerror or exc}; check that it exists and that this "
                   "user may read and write it, then run the command again", err=True)
    else:
        click.echo(f"error: digest failed unexpectedly ({type(exc).__name__}: {exc}); this is "
                   "a bug: run the command again with -v and report what it prints", err=True)


@click.group(cls=_Boundary, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", default="config.yaml", show_default=True,
              type=click.Path(dir_okay=False), help="The config file to use.")
@click.option("-v", "--verbose", is_flag=True, help="Log every step.")
@click.version_option(package_name="digest")
@click.pass_context
def main(ctx: click.Context, config_path: str, verbose: bool) -> None:
    """Jekyll-style posts → Atom/RSS feeds per tag, and a weekly email digest."""
    ctx.ensure_object(dict)
    ctx.obj["config"] = config_path
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(levelname)s %(message)s", stream=sys.stderr)


_now_option = click.option("--now", "now_text", metavar="DATETIME",
                           help="Act as if it were this time (ISO 8601); default: now.")
_future_option = click.option("--future", is_flag=True,
                              help="Include posts dated in the future.")


@main.command()
@_now_option
@_future_option
@click.pass_context
def build(ctx: click.Context, now_text: str | None, future: bool) -> None:
    """Write the site feed and one feed per tag and category (Atom and RSS), and feeds.opml."""
    config, scanned = _load_and_scan(ctx)  # the scan runs while the libraries load
    from .build import build as run_build
    from .build import preload

    if scanned.running:  # idle time: a small site's scan is done already, so no waiting
        preload()
    report = run_build(config, now=_now(now_text, config), future=future, scanned=scanned)
    found = report.found
    for problem in found.rejected:
        click.echo(f"rejected: {problem}", err=True)
    for problem in found.warnings:
        click.echo(f"warning: {problem}", err=True)
    click.echo(f"{found.posts} posts ({found.parsed} parsed, "
               f"{len(found.rejected)} rejected, {found.future} future, "
               f"{found.unpublished} unpublished); {report.feeds} feeds: "
               f"{len(report.written)} files written, {report.skipped} feeds unchanged "
               f"→ {config.output}")
    ctx.exit(1 if found.rejected else 0)


@contextmanager
def _read(ctx: click.Context, now_text: str | None,
          future: bool) -> Iterator[tuple[Config, Any, Any]]:
    """Config, the posts read, and the open state store (closed on leaving)."""
    config, scanned = _load_and_scan(ctx)  # the scan runs while the libraries load
    from .reader import read_posts
    from .store import Store

    store = Store.open(config.state)
    try:
        yield config, read_posts(config, store, now=_now(now_text, config), future=future,
                                 scanned=scanned), store
    finally:
        store.close()


@main.command()
@_now_option
@_future_option
@click.pass_context
def check(ctx: click.Context, now_text: str | None, future: bool) -> None:
    """Report every problem in the posts and the subscribers file; exit 1 if there is any."""
    from .selection import terms
    from .subscribers import SubscribersUnreadable, load_subscribers

    with _read(ctx, now_text, future) as (config, corpus, _store):
        problems = len(corpus.rejected) + len(corpus.warnings)
    for problem in corpus.rejected:
        click.echo(f"error: {problem}")
    for problem in corpus.warnings:
        click.echo(f"warning: {problem}")
    click.echo(f"{len(corpus.posts)} posts OK; {len(corpus.rejected)} rejected, "
               f"{len(corpus.warnings)} warnings", err=True)
    if config.subscribers is not None:
        known = {t for p in corpus.posts for t in terms(p)}
        try:
            found = load_subscribers(config.subscribers, known)
        except SubscribersUnreadable as exc:
            click.echo(f"error: {exc}")
            ctx.exit(1)
        for problem in found.problems:
            click.echo(f"error: {problem}")
        for problem in found.warnings:
            click.echo(f"warning: {problem}")
        problems += len(found.problems) + len(found.warnings)
        click.echo(f"{len(found.subscribers)} subscribers OK; {len(found.problems)} skipped, "
                   f"{len(found.warnings)} warnings", err=True)
    ctx.exit(1 if problems else 0)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@_now_option
@_future_option
@click.pass_context
def posts(ctx: click.Context, as_json: bool, now_text: str | None, future: bool) -> None:
    """List the posts that would be published, and the files rejected."""
    from .build import absolute, render_posts

    with _read(ctx, now_text, future) as (config, corpus, store):
        rendered = render_posts(config, store, corpus.posts, corpus.stats, corpus.posts) \
            if as_json else {}
    site = config.site
    if not as_json:
        for post in corpus.posts:
            click.echo(f"{post.date:%Y-%m-%d}  {absolute(site, post.url)}  {', '.join(post.tags)}")
    else:
        root = config.posts
        out = {
            "posts": [{
                "path": p.path, "url": absolute(site, p.url), "date": p.date.isoformat(),
                "title": p.title, "tags": list(p.tags), "categories": list(p.categories),
                "slug": p.slug, "excerpt": rendered[p.path].summary,
            } for p in corpus.posts],
            "rejected": [_problem_json(p, root) for p in corpus.rejected],
            "warnings": [_problem_json(p, root) for p in corpus.warnings],
        }
        click.echo(json.dumps(out, indent=2, ensure_ascii=False))
    ctx.exit(1 if corpus.rejected else 0)


_as_of_option = click.option("--as-of", "as_of_text", metavar="DATETIME",
                             help="Run as if it were this time (ISO 8601; naive = site "
                                  "timezone); default: now.")


def _print_problems(subscribers: Any) -> int:
    if subscribers is None:
        return 0
    for problem in subscribers.problems:
        click.echo(f"skipped subscriber: {problem}", err=True)
    for problem in subscribers.warnings:
        click.echo(f"warning: {problem}", err=True)
    return len(subscribers.problems)


@contextmanager
def _digest_errors(ctx: click.Context) -> Iterator[None]:
    """Config and input errors of the digest commands → a clean message and exit 2."""
    from .errors import DigestError

    try:
        yield
    except ConfigError as exc:
        for problem in exc.problems:
            click.echo(f"error: {problem}", err=True)
        ctx.exit(2)
    except DigestError as exc:
        click.echo(f"error: {exc}", err=True)
        ctx.exit(2)


@main.command()
@_as_of_option
@click.option("--dry-run", is_flag=True, help="Render every message, send and record nothing.")
@click.option("--to", "to", metavar="EMAIL",
              help="Send one test copy to this address instead (not logged as a delivery).")
@click.option("--subscriber", metavar="EMAIL", help="With --to: that subscriber's digest.")
@click.option("--i-lost-the-state", "state_lost", is_flag=True,
              help="The state database is lost and there is no backup: rebuild the past "
                   "digests from state/archive and send from a new send log (who "
                   "unsubscribed is lost with it).")
@click.pass_context
def send(ctx: click.Context, as_of_text: str | None, dry_run: bool, to: str | None,
         subscriber: str | None, state_lost: bool) -> None:
    """Send this period's digest to every subscriber (resuming any unfinished run first).

    Exit 1 if any delivery failed permanently, the run paused, or entries of the subscribers
    file were skipped.
    """
    from . import preview as looking
    from . import send as sending
    from .progress import make_progress
    from .session import when

    config = _load(ctx)
    as_of = _now(as_of_text, config)
    with _digest_errors(ctx):
        if to is not None:
            outcome = sending.send_test(config, as_of=as_of, to=to, subscriber=subscriber)
            if outcome is None:
                click.echo("nothing to send: no posts for that digest")
                return
            click.echo(f"test copy to {to}: {outcome.status} ({outcome.reply})")
            ctx.exit(0 if outcome.status == "sent" else 1)
        if dry_run:
            dry = looking.dry_run(config, as_of=as_of)
            skipped = _print_problems(dry.subscribers)
            click.echo(dry.summary())
            ctx.exit(1 if skipped else 0)
        report = sending.send(config, as_of=as_of, progress=make_progress(),
                              state_lost=state_lost)
        skipped = _print_problems(report.subscribers)
        if report.nothing_new:
            click.echo(report.nothing_new)
        for run in report.runs:
            c = run.counts
            click.echo(f"digest {run.run.slug} ({when(run.run.period_start)} → "
                       f"{when(run.run.period_end)}, {run.posts} posts): "
                       f"sent {c.get('sent', 0)}, skipped-empty {c.get('empty', 0)}, "
                       f"failed {c.get('failed', 0)}, deferred {c.get('deferred', 0)}, "
                       f"suppressed {c.get('suppressed', 0)}, pending {c.get('pending', 0)}")
            for email, state, code, reply in run.failures:
                click.echo(f"  {state}: {email}: {code or ''} {reply}".rstrip(), err=True)
            if run.paused:
                click.echo(f"paused: {run.paused}", err=True)
        if config.smtp is None and report.runs:
            click.echo(f"(no smtp: configured: messages are in the outbox "
                       f"{config.state / 'outbox'})")
        ctx.exit(1 if report.failed or report.paused or skipped else 0)


@main.command()
@_as_of_option
@click.option("--subscriber", metavar="EMAIL", help="Only this subscriber's digest.")
@click.option("--out", "out", type=click.Path(file_okay=False), metavar="DIR",
              help="Where to write the files; default: STATE/preview.")
@click.pass_context
def preview(ctx: click.Context, as_of_text: str | None, subscriber: str | None,
            out: str | None) -> None:
    """Write the next digest's editions as HTML, text and .eml files; send nothing."""
    from . import preview as looking
    from .session import when

    config = _load(ctx)
    target = Path(out) if out else config.state / "preview"
    with _digest_errors(ctx):
        result = looking.preview(config, as_of=_now(as_of_text, config), out=target,
                                 subscriber=subscriber)
    click.echo(f"period {when(result.period.start)} → {when(result.period.end)}: "
               f"{result.posts} new posts, {result.editions} distinct editions for "
               f"{result.recipients} subscribers ({result.empty} with nothing new)")
    for path in result.files:
        click.echo(str(path))


def _address_key(ctx: click.Context, email: str) -> str:
    from email_validator import EmailNotValidError, validate_email

    try:
        valid = validate_email(email, check_deliverability=False)
    except EmailNotValidError as exc:
        click.echo(f"error: {email!r} is not an email address: {exc}", err=True)
        ctx.exit(2)
        raise
    return (valid.ascii_email or valid.normalized).lower()


def _change_suppression(ctx: click.Context, email: str, *, suppress: bool) -> tuple[str, bool]:
    """(the address's key, whether the list changed) after adding or removing it."""
    from .sendlog import SendLog
    from .store import Store

    config = _load(ctx)
    key = _address_key(ctx, email)
    store = Store.open(config.state)
    try:
        log = SendLog(store)
        changed = log.suppress(key, "digest unsubscribe") if suppress else log.unsuppress(key)
    finally:
        store.close()
    return key, changed


@main.command()
@click.argument("email")
@click.pass_context
def unsubscribe(ctx: click.Context, email: str) -> None:
    """Put EMAIL on the suppression list: no more digests, whatever the subscribers file says."""
    key, added = _change_suppression(ctx, email, suppress=True)
    click.echo(f"{key}: unsubscribed" if added else f"{key}: was already unsubscribed")


@main.command()
@click.argument("email")
@click.pass_context
def resubscribe(ctx: click.Context, email: str) -> None:
    """Take EMAIL off the suppression list (it must also be in the subscribers file)."""
    key, removed = _change_suppression(ctx, email, suppress=False)
    click.echo(f"{key}: resubscribed" if removed else f"{key}: was not unsubscribed")


@main.command()
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="text: one readable line per event; json: one JSON "
                                      "object per line (for log collectors).")
@click.option("--fake-now", "fake_now", metavar="DATETIME", hidden=True,
              envvar="DIGEST_FAKE_NOW",
              help="Testing only: start the daemon's clock at this time (ISO 8601).")
@click.pass_context
def run(ctx: click.Context, log_format: str, fake_now: str | None) -> None:
    """Run as a daemon: rebuild the feeds when posts change, send the digest on schedule.

    One per state folder. SIGTERM or SIGINT stops it cleanly (exit 0); SIGHUP, or an edit
    of config.yaml or the subscribers file, reloads them.
    """
    from .clock import Clock
    from .daemon import run_daemon
    from .logs import configure

    verbose = logging.getLogger().getEffectiveLevel() <= logging.DEBUG
    configure("json" if log_format == "json" else "text", verbose=verbose)
    config = _load(ctx)
    clock = Clock.starting_at(_now(fake_now, config)) if fake_now else Clock()
    with _digest_errors(ctx):
        ctx.exit(run_daemon(config, clock))


@main.command()
@click.option("--listen", metavar="HOST:PORT",
              help="Where to listen; default: web.listen in the config (127.0.0.1:8080).")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="text or json log lines.")
@click.option("--fake-now", "fake_now", metavar="DATETIME", hidden=True,
              envvar="DIGEST_FAKE_NOW", help="Testing only: the clock starts at this time.")
@click.pass_context
def serve(ctx: click.Context, listen: str | None, log_format: str,
          fake_now: str | None) -> None:
    """Serve the web front alone: one-click unsubscribe, tags, archive, feeds, /healthz.

    `digest run` serves the same in its own process when the config has a `web:` section;
    use this to run it apart (another host, another user). Stops on SIGTERM/SIGINT.
    """
    from .clock import Clock
    from .logs import configure
    from .tokens import Signer
    from .web.app import Web
    from .web.server import serve as serve_web

    verbose = logging.getLogger().getEffectiveLevel() <= logging.DEBUG
    configure("json" if log_format == "json" else "text", verbose=verbose)
    config = _load(ctx)
    if config.web is None:
        click.echo(f"error: {config.path}: no 'web:' section, so there is nothing to serve "
                   "(add web: {base_url: https://…, secret_env: DIGEST_SECRET})", err=True)
        ctx.exit(2)
    assert config.web is not None
    clock = Clock.starting_at(_now(fake_now, config)) if fake_now else Clock()
    with _digest_errors(ctx):
        web = Web(config, clock, Signer.from_env(config.web.secret_env))
        try:
            code = serve_web(web, listen or config.web.listen or "127.0.0.1:8080")
        except OSError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(2)
        ctx.exit(code)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """Show the next digest, the last digests, the last feed build and the problems found.

    Reads the state database without writing to it, so it works while `digest run` runs.
    """
    from .status import read_status, render

    config = _load(ctx)
    found = read_status(config)
    if as_json:
        click.echo(json.dumps(found.to_json(), indent=2, ensure_ascii=False, default=str))
    else:
        for line in render(found, config):
            click.echo(line)

"""The `digest` command line: a thin layer that loads config, calls the library, sets exit codes.

Exit codes: 0 success, 1 some input was rejected (everything else was still done),
2 usage or configuration errors. Logging is configured here and nowhere else.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..config import Config, load_config
from ..errors import ConfigError, DigestError, Problem

if TYPE_CHECKING:
    from ..posts.scan import Scan

log = logging.getLogger("digest")
DEFERRED_EXIT = 3  # `digest send`: some deliveries deferred, to be retried (README, exit codes)


def _now(value: str | None, config: Config) -> datetime:
    if value is None:
        return datetime.now(config.site.tz)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"'{value}' is not an ISO 8601 date-time") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=config.site.tz)


def _load_and_scan(ctx: click.Context) -> tuple[Config, Scan]:
    """The config, and a scan of its posts folder under way (posts/scan.py): started before the
    config is validated when a plain read of the file names the folder, so a first build
    scans while pydantic loads, and a later one before the config cache is checked."""
    from ..config import posts_folder_hint
    from ..posts.scan import Scan

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
    from ..util.logs import configure_command

    configure_command(verbose=verbose)


def _config_given(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value is not None:  # after the command: wins over the group's --config (or default)
        ctx.ensure_object(dict)["config"] = value


def _command(f: Any) -> Any:
    """A subcommand of `digest`, with --config accepted after it as well as before."""
    f = click.option("--config", type=click.Path(dir_okay=False), expose_value=False,
                     callback=_config_given, is_eager=True,
                     help="The config file to use (default: config.yaml; also accepted "
                          "before the command).")(f)
    return main.command()(f)


def _old_now(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value is not None:
        ctx.meta["digest.now"] = value


def _as_of_option(f: Any) -> Any:
    """--as-of DATETIME, and the hidden --now it replaced (kept so scripts go on working)."""
    f = click.option("--now", expose_value=False, hidden=True, callback=_old_now,
                     help="Old name of --as-of.")(f)
    return click.option("--as-of", "as_of_text", metavar="DATETIME",
                        help="Run as if it were this time (ISO 8601; naive = site "
                             "timezone); default: now.")(f)


def _as_of(ctx: click.Context, as_of_text: str | None, config: Config) -> datetime:
    old = ctx.meta.get("digest.now")
    if old is not None and as_of_text is not None and old != as_of_text:
        raise click.UsageError("--now is the old name of --as-of: give only one of them")
    return _now(as_of_text or old, config)


_future_option = click.option("--future", is_flag=True,
                              help="Include posts dated in the future.")


@_command
@_as_of_option
@_future_option
@click.pass_context
def build(ctx: click.Context, as_of_text: str | None, future: bool) -> None:
    """Write the site feed and one feed per tag and category (Atom and RSS), and feeds.opml."""
    config, scanned = _load_and_scan(ctx)  # the scan runs while the libraries load
    from ..feeds.build import build as run_build
    from ..feeds.build import preload

    if scanned.running:  # idle time: a small site's scan is done already, so no waiting
        preload()
    report = run_build(config, now=_as_of(ctx, as_of_text, config), future=future,
                       scanned=scanned)
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
def _read(ctx: click.Context, as_of_text: str | None,
          future: bool) -> Iterator[tuple[Config, Any, Any]]:
    """Config, the posts read, and the open state store (closed on leaving)."""
    config, scanned = _load_and_scan(ctx)  # the scan runs while the libraries load
    from ..posts.reader import read_posts
    from ..state.store import Store

    store = Store.open(config.state)
    try:
        yield config, read_posts(config, store, now=_as_of(ctx, as_of_text, config),
                                 future=future, scanned=scanned), store
    finally:
        store.close()


@_command
@_as_of_option
@_future_option
@click.option("--smtp", "smtp", is_flag=True,
              help="Also connect to the SMTP server (EHLO, STARTTLS, AUTH); send nothing.")
@click.pass_context
def check(ctx: click.Context, as_of_text: str | None, future: bool, smtp: bool) -> None:
    """Report every problem in the posts, the subscribers and all else commands will need.

    The posts and the subscribers file; digest.from, the secrets in the environment
    (SMTP password, link secret, DKIM key); the templates (one digest is rendered); the
    schedule (the next digest is shown); the values the daemon's scheduler and the SMTP
    client take. Nothing is written but the caches a build writes too.

    Exit 1 if some posts or subscriber entries would be rejected; exit 2 if a command
    would fail: the config, a secret, a template, the schedule, or (--smtp) the server.
    """
    from .preflight import check as preflight
    from .preflight import probe_smtp

    config, scanned = _load_and_scan(ctx)  # the scan runs while the libraries load
    report = preflight(config, as_of=_as_of(ctx, as_of_text, config), future=future,
                       scanned=scanned)
    if smtp:
        report.findings.extend(probe_smtp(config).findings)
    prefix = {"rejected": "error: ", "error": "error: ", "warning": "warning: "}
    for finding in report.findings:
        if finding.level == "note":
            click.echo(finding.text, err=True)
        else:
            click.echo(prefix[finding.level] + finding.text)
    ctx.exit(report.exit_code)


@_command
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@_as_of_option
@_future_option
@click.pass_context
def posts(ctx: click.Context, as_json: bool, as_of_text: str | None, future: bool) -> None:
    """List the posts that would be published, and the files rejected."""
    from ..posts.ids import absolute
    from ..posts.rendered import render_posts

    with _read(ctx, as_of_text, future) as (config, corpus, store):
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
    from ..errors import DigestError

    try:
        yield
    except ConfigError as exc:
        for problem in exc.problems:
            click.echo(f"error: {problem}", err=True)
        ctx.exit(2)
    except DigestError as exc:
        click.echo(f"error: {exc}", err=True)
        ctx.exit(2)


@_command
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
    file were skipped; else exit 3 if some deliveries were deferred (the server kept
    answering "try again later"): `digest run` retries them on its own, or run `digest
    send` again later; after smtp.give_up_days they count as failed.
    """
    from ..delivery import preview as looking
    from ..delivery import send as sending
    from ..delivery.progress import make_progress
    from ..delivery.session import when

    config = _load(ctx)
    as_of = _as_of(ctx, as_of_text, config)
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
        if report.failed or report.paused or skipped:
            ctx.exit(1)
        if report.deferred:
            click.echo(f"{report.deferred} deliveries deferred: `digest run` retries them, "
                       "or run `digest send` again later", err=True)
            ctx.exit(DEFERRED_EXIT)


@_command
@_as_of_option
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

    config = _load(ctx)
    # not under the state folder, which preview leaves byte for byte as it was; 0700, as
    # the .eml files carry subscribers' addresses
    target = Path(out) if out else Path(tempfile.mkdtemp(prefix="digest-preview-"))
    with _digest_errors(ctx):
        result = looking.preview(config, as_of=_as_of(ctx, as_of_text, config), out=target,
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


def _not_listed(config: Config, sendlog: Any, key: str) -> str | None:
    """Why *key* is not on the list (the subscribers file, or the last good copy of it that
    sends fall back on), or None if it is."""
    from ..errors import SubscribersUnreadable
    from ..subscribers.current import read_subscribers

    if config.subscribers is None:
        return "no subscribers file is configured"
    try:
        found = read_subscribers(config, sendlog, set(), keep=False)
    except SubscribersUnreadable:
        return f"{config.subscribers.name} cannot be read"
    if any(sub.key == key for sub in found.subscribers):
        return None
    return f"not in {config.subscribers.name}"


def _change_suppression(ctx: click.Context, email: str, *,
                        suppress: bool) -> tuple[str, bool, str | None]:
    """(the address's key, whether the list changed, why it is not on the subscribers list
    if it is not) after adding or removing it."""
    from ..state.open import open_state

    config = _load(ctx)
    key = _address_key(ctx, email)
    log = open_state(config)
    try:
        changed = log.suppress(key, "digest unsubscribe") if suppress else log.unsuppress(key)
        unlisted = _not_listed(config, log, key)
    finally:
        log.close()
    return key, changed, unlisted


@_command
@click.argument("email")
@click.pass_context
def unsubscribe(ctx: click.Context, email: str) -> None:
    """Put EMAIL on the suppression list: no more digests, whatever the subscribers file says.

    An address not on the list is suppressed too (and said so): it then gets no digest if
    it is ever added to the subscribers file.
    """
    key, added, unlisted = _change_suppression(ctx, email, suppress=True)
    if unlisted is None:
        click.echo(f"{key}: unsubscribed" if added else f"{key}: was already unsubscribed")
    elif added:
        click.echo(f"{key}: not on the list ({unlisted}); added to the suppression list "
                   "anyway, so it gets no digest if it is added later")
    else:
        click.echo(f"{key}: not on the list ({unlisted}), and already on the suppression list")


@_command
@click.argument("email")
@click.pass_context
def resubscribe(ctx: click.Context, email: str) -> None:
    """Take EMAIL off the suppression list (it must also be in the subscribers file)."""
    key, removed, unlisted = _change_suppression(ctx, email, suppress=False)
    click.echo(f"{key}: resubscribed" if removed else f"{key}: was not unsubscribed")
    if unlisted is not None:
        click.echo(f"note: {key} is not on the list ({unlisted}): add it there too, or it "
                   "gets no digest", err=True)


@_command
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
    from ..daemon.service import run_daemon
    from ..util.clock import Clock
    from ..util.logs import configure

    verbose = logging.getLogger().getEffectiveLevel() <= logging.DEBUG
    configure("json" if log_format == "json" else "text", verbose=verbose)
    config = _load(ctx)
    clock = Clock.starting_at(_now(fake_now, config)) if fake_now else Clock()
    with _digest_errors(ctx):
        ctx.exit(run_daemon(config, clock))


@_command
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
    from ..subscribers.tokens import Signer
    from ..util.clock import Clock
    from ..util.logs import configure
    from ..web.app import Web
    from ..web.server import serve as serve_web

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
        # an address that cannot be had is a ServeError, told by _digest_errors
        code = serve_web(web, listen or config.web.listen or "127.0.0.1:8080")
        ctx.exit(code)


@_command
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """Show the next digest, the last digests, the last feed build and the problems found.

    Reads the state database without writing to it, so it works while `digest run` runs.
    """
    from ..daemon.status import read_status, render

    config = _load(ctx)
    found = read_status(config)
    if as_json:
        click.echo(json.dumps(found.to_json(), indent=2, ensure_ascii=False, default=str))
    else:
        for line in render(found, config):
            click.echo(line)


@_command
@click.argument("site_folder", default=".", type=click.Path(file_okay=False),
                metavar="[SITE_FOLDER]")
@click.pass_context
def init(ctx: click.Context, site_folder: str) -> None:
    """Write a commented config.yaml (at --config) and an example subscribers.yaml beside it
    for the Jekyll site in SITE_FOLDER (default: here). Never overwrites a file (exit 2)."""
    from .init import init_site

    config_path = Path(ctx.obj["config"])
    with _digest_errors(ctx):
        done = init_site(Path(site_folder), config_path)
    click.echo(f"wrote {done.config}")
    click.echo(f"wrote {done.subscribers} (example subscribers: replace them)")
    click.echo(f"{done.posts} posts, {len(done.tags)} tags and categories: "
               + (", ".join(t for t, _ in done.tags[:10]) or "none")
               + (" …" if len(done.tags) > 10 else ""))
    if done.inside_site:
        click.echo(f"note: both files are inside the site folder: add {done.config.name} "
                   f"and {done.subscribers.name} to `exclude:` in _config.yml, or Jekyll "
                   "publishes them (the subscribers' addresses with them)", err=True)
    given = "" if config_path == Path("config.yaml") else f" --config {config_path}"
    click.echo("next:")
    for command, why in (("check", "everything the commands need"),
                         ("build", "the feeds"),
                         ("preview", "the first digest, as files; nothing is sent")):
        click.echo(f"  digest {command}{given}   # {why}")

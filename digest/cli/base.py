"""What every `digest` command shares: the group, its one error boundary, the options, loading
the config.

The commands are in feeds_commands.py, digest_commands.py and admin_commands.py; commands.py
gathers them.

Exit codes: 0 success, 1 some input was rejected (everything else was still done),
2 usage or configuration errors. Logging is configured here and nowhere else.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..config import Config, load_config
from ..errors import ConfigError, DigestError, Problem

if TYPE_CHECKING:
    from ..posts.scan import Scan

DEFERRED_EXIT = 3  # `digest send`: some deliveries deferred, to be retried (README, exit codes)


def parse_now(value: str | None, config: Config) -> datetime:
    if value is None:
        return datetime.now(config.site.tz)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"'{value}' is not an ISO 8601 date-time") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=config.site.tz)


def address_key(ctx: click.Context, email: str) -> str:
    """*email* as the send log and the suppression list key it (Subscriber.key); a
    usage error (exit 2) if it is not an address."""
    from email_validator import EmailNotValidError, validate_email

    try:
        valid = validate_email(email, check_deliverability=False)
    except EmailNotValidError as exc:
        click.echo(f"error: {email!r} is not an email address: {exc}", err=True)
        ctx.exit(2)
        raise
    return (valid.ascii_email or valid.normalized).lower()


def load_and_scan(ctx: click.Context) -> tuple[Config, Scan]:
    """The config, and a scan of its posts folder under way (posts/scan.py): started before the
    config is validated when a plain read of the file names the folder, so a first build
    scans while pydantic loads, and a later one before the config cache is checked."""
    from ..config import posts_folder_hint
    from ..posts.scan import Scan

    hint = posts_folder_hint(Path(ctx.obj["config"]))
    early = Scan.start(hint) if hint is not None else None
    try:
        config = load(ctx)
    except BaseException:
        if early is not None:
            early.cancel()
        raise
    if early is not None and early.root == config.posts:
        return config, early
    if early is not None:
        early.cancel()
    return config, Scan.start(config.posts)


def load(ctx: click.Context) -> Config:
    try:
        return load_config(Path(ctx.obj["config"]))
    except ConfigError as exc:
        for problem in exc.problems:
            click.echo(f"error: {problem}", err=True)
        ctx.exit(2)
        raise  # unreachable: ctx.exit raises


def problem_json(problem: Problem, root: Path) -> dict[str, Any]:
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
        except BrokenPipeError:  # `digest status | head`: the reader has all it wanted
            _quiet_stdout()
            raise click.exceptions.Exit(141) from None  # as a shell reports SIGPIPE
        except Exception as exc:
            if ctx.params.get("verbose"):  # for debugging: where it came from
                import traceback

                traceback.print_exc()
            _explain(exc)
        raise click.exceptions.Exit(2)


def _quiet_stdout() -> None:
    """Standard output to /dev/null, so the interpreter's last flush of what the closed
    pipe did not take raises nothing more (Python's documented way, signal module)."""
    try:
        fileno = sys.stdout.fileno()
    except (OSError, ValueError):  # not a file (click's test runner): nothing to flush
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fileno)
    os.close(devnull)


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


def subcommand(f: Any) -> Any:
    """A subcommand of `digest`, with --config accepted after it as well as before."""
    f = click.option("--config", type=click.Path(dir_okay=False), expose_value=False,
                     callback=_config_given, is_eager=True,
                     help="The config file to use (default: config.yaml; also accepted "
                          "before the command).")(f)
    return main.command()(f)


@main.group()
def subscribers() -> None:
    """Who is on the list beside the subscribers file: sign-ups, imports, suppressions."""


def subscribers_command(f: Any) -> Any:
    """A command under `digest subscribers`, with --config accepted after it too."""
    return _under_subscribers(f, None)


def named_subscribers_command(name: str) -> Callable[[Callable[..., Any]], click.Command]:
    """subscribers_command, named *name* rather than after the function (click before 8.2
    keeps a `_command` suffix that 8.2 drops, and pyproject allows both)."""
    return lambda f: _under_subscribers(f, name)


def _under_subscribers(f: Callable[..., Any], name: str | None) -> click.Command:
    f = click.option("--config", type=click.Path(dir_okay=False), expose_value=False,
                     callback=_config_given, is_eager=True,
                     help="The config file to use (default: config.yaml; also accepted "
                          "before the command).")(f)
    return subscribers.command(name)(f)


def _old_now(ctx: click.Context, _param: click.Parameter, value: str | None) -> None:
    if value is not None:
        ctx.meta["digest.now"] = value


def as_of_option(f: Any) -> Any:
    """--as-of DATETIME, and the hidden --now it replaced (kept so scripts go on working)."""
    f = click.option("--now", expose_value=False, hidden=True, callback=_old_now,
                     help="Old name of --as-of.")(f)
    return click.option("--as-of", "as_of_text", metavar="DATETIME",
                        help="Run as if it were this time (ISO 8601; naive = site "
                             "timezone); default: now.")(f)


def as_of_given(ctx: click.Context, as_of_text: str | None, config: Config) -> datetime:
    old = ctx.meta.get("digest.now")
    if old is not None and as_of_text is not None and old != as_of_text:
        raise click.UsageError("--now is the old name of --as-of: give only one of them")
    return parse_now(as_of_text or old, config)


future_option = click.option("--future", is_flag=True,
                              help="Include posts dated in the future.")

@contextmanager
def digest_errors(ctx: click.Context) -> Iterator[None]:
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


# --- feed sources (issue 16) ---------------------------------------------------------------
fetch_option = click.option(
    "--fetch/--no-fetch", "fetch", default=True,
    help="Fetch the feed sources that are due first (the default); --no-fetch uses the "
         "entries fetched last.")


def poll_sources_of(config: Config, fetch: bool) -> None:
    """Fetch the feed sources that are due; a failing one is a warning, never an exit."""
    if not fetch or not config.sources:
        return
    from ..posts.poll import poll_sources

    for result in poll_sources(config):
        if result.error:
            click.echo(f"warning: feed source '{result.name}': {result.error}; its last "
                       "good entries are kept (`digest status` shows when it last worked)",
                       err=True)
        if result.redirect:
            click.echo(f"warning: feed source '{result.name}' has moved for good to "
                       f"{result.redirect}: update its 'feed:' in config.yaml", err=True)

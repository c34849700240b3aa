"""`digest unsubscribe`, `resubscribe`, `run`, `serve`, `status`, `init` and
`admin-password`: the list, the daemon, the web front, the state, a new site, the
dashboard's password."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import click

from ..config import Config
from .base import address_key, digest_errors, load, parse_now, subcommand


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

    config = load(ctx)
    key = address_key(ctx, email)
    log = open_state(config)
    try:
        changed = log.suppress(key, "digest unsubscribe") if suppress else log.unsuppress(key)
        unlisted = _not_listed(config, log, key)
    finally:
        log.close()
    return key, changed, unlisted


@subcommand
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


@subcommand
@click.argument("email")
@click.pass_context
def resubscribe(ctx: click.Context, email: str) -> None:
    """Take EMAIL off the suppression list (it must also be in the subscribers file)."""
    key, removed, unlisted = _change_suppression(ctx, email, suppress=False)
    click.echo(f"{key}: resubscribed" if removed else f"{key}: was not unsubscribed")
    if unlisted is not None:
        click.echo(f"note: {key} is not on the list ({unlisted}): add it there too, or it "
                   "gets no digest", err=True)


@subcommand
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
    config = load(ctx)
    clock = Clock.starting_at(parse_now(fake_now, config)) if fake_now else Clock()
    with digest_errors(ctx):
        ctx.exit(run_daemon(config, clock))


@subcommand
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
    config = load(ctx)
    if config.web is None:
        click.echo(f"error: {config.path}: no 'web:' section, so there is nothing to serve "
                   "(add web: {base_url: https://…, secret_env: DIGEST_SECRET})", err=True)
        ctx.exit(2)
    assert config.web is not None
    clock = Clock.starting_at(parse_now(fake_now, config)) if fake_now else Clock()
    with digest_errors(ctx):
        web = Web(config, clock, Signer.from_env(config.web.secret_env))
        # an address that cannot be had is a ServeError, told by digest_errors
        code = serve_web(web, listen or config.web.listen or "127.0.0.1:8080")
        ctx.exit(code)


@subcommand
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """Show the next digest, the last digests, the last feed build and the problems found.

    Reads the state database without writing to it, so it works while `digest run` runs.
    """
    from ..daemon.status import lines, read_status

    config = load(ctx)
    found = read_status(config)
    if as_json:
        click.echo(json.dumps(found.to_json(), indent=2, ensure_ascii=False, default=str))
    else:
        for line in lines(found, config):
            click.echo(line)


@subcommand
@click.argument("site_folder", default=".", type=click.Path(file_okay=False),
                metavar="[SITE_FOLDER]")
@click.pass_context
def init(ctx: click.Context, site_folder: str) -> None:
    """Write a commented config.yaml (at --config) and an example subscribers.yaml beside it
    for the Jekyll site in SITE_FOLDER (default: here). Never overwrites a file (exit 2)."""
    from .init import init_site

    config_path = Path(ctx.obj["config"])
    with digest_errors(ctx):
        done = init_site(Path(site_folder), config_path)
    click.echo(f"wrote {done.config}")
    click.echo(f"wrote {done.subscribers} (example subscribers: replace them)")
    click.echo(f"{done.posts} posts, {len(done.tags)} tags and categories: "
               + (", ".join(t for t, _ in done.tags[:10]) or "none")
               + (" …" if len(done.tags) > 10 else ""))
    if done.inside_site and done.hugo:
        click.echo("note: both files are inside a folder Hugo publishes (content/ or "
                   "static/): move them out, or Hugo publishes them (the subscribers' "
                   "addresses with them)", err=True)
    elif done.inside_site:
        click.echo(f"note: both files are inside the site folder: add {done.config.name} "
                   f"and {done.subscribers.name} to `exclude:` in _config.yml, or Jekyll "
                   "publishes them (the subscribers' addresses with them)", err=True)
    given = "" if config_path == Path("config.yaml") else f" --config {config_path}"
    click.echo("next:")
    for command, why in (("check", "everything the commands need"),
                         ("build", "the feeds"),
                         ("preview", "the first digest, as files; nothing is sent")):
        click.echo(f"  digest {command}{given}   # {why}")


MIN_ADMIN_PASSWORD = 10  # characters; the login's rate limit does the rest


@subcommand
@click.pass_context
def admin_password(ctx: click.Context) -> None:
    """Make the argon2 hash of a password for the owner's dashboard (/admin/).

    Asks for the password twice on a terminal, or reads its first line from standard
    input; prints the hash, for the environment variable `admin: password_hash_env:`
    names (DIGEST_ADMIN_PASSWORD_HASH by default). The password itself is kept nowhere.
    """
    import sys

    from ..web.admin_auth import PasswordHasher

    config = load(ctx)
    variable = config.admin.password_hash_env if config.admin else "DIGEST_ADMIN_PASSWORD_HASH"
    if sys.stdin.isatty():
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True,
                                err=True)
    else:
        password = sys.stdin.readline(4096).rstrip("\r\n")
    if len(password) < MIN_ADMIN_PASSWORD:
        click.echo(f"error: the password must have at least {MIN_ADMIN_PASSWORD} characters",
                   err=True)
        ctx.exit(2)
    hashed = PasswordHasher().hash(password)
    click.echo(hashed)
    click.echo(f"put it in the environment of `digest run` / `digest serve`, e.g. "
               f"export {variable}='{hashed}'", err=True)

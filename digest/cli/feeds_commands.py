"""`digest build`, `digest check` and `digest posts`: the posts and the feeds."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click

from ..config import Config
from .base import (
    as_of_given,
    as_of_option,
    fetch_option,
    future_option,
    load_and_scan,
    poll_sources_of,
    problem_json,
    subcommand,
)


@subcommand
@as_of_option
@future_option
@fetch_option
@click.pass_context
def build(ctx: click.Context, as_of_text: str | None, future: bool, fetch: bool) -> None:
    """Write the site feed and one feed per tag and category (Atom and RSS), and feeds.opml."""
    config, scanned = load_and_scan(ctx)  # the scan runs while the libraries load
    poll_sources_of(config, fetch)
    from ..feeds.build import build as run_build
    from ..feeds.build import preload

    if scanned.running:  # idle time: a small site's scan is done already, so no waiting
        preload()
    report = run_build(config, now=as_of_given(ctx, as_of_text, config), future=future,
                       scanned=scanned)
    found = report.found
    for problem in found.rejected:
        click.echo(f"rejected: {problem}", err=True)
    for problem in found.warnings:
        click.echo(f"warning: {problem}", err=True)
    click.echo(f"{found.count} posts ({found.parsed} parsed, "
               f"{len(found.rejected)} rejected, {found.future} future, "
               f"{found.unpublished} unpublished); {report.feeds} feeds: "
               f"{len(report.written)} files written, {report.skipped} feeds unchanged "
               f"→ {config.output}")
    if config.hub:  # after the summary: the feeds are on disk whatever the hub says
        from ..feeds.websub import announce

        ping = announce(config, report.written)
        if ping is not None and ping.error:
            click.echo(f"warning: WebSub hub {config.hub} not told of {len(ping.urls)} "
                       f"changed feeds: {ping.error}", err=True)
    ctx.exit(1 if found.rejected else 0)


@contextmanager
def _read(ctx: click.Context, as_of_text: str | None,
          future: bool) -> Iterator[tuple[Config, Any, Any]]:
    """Config, the posts read, and the open state store (closed on leaving)."""
    config, scanned = load_and_scan(ctx)  # the scan runs while the libraries load
    from ..posts.reader import read_posts
    from ..state.store import Store

    store = Store.open(config.state)
    try:
        yield config, read_posts(config, store, now=as_of_given(ctx, as_of_text, config),
                                 future=future, scanned=scanned), store
    finally:
        store.close()


@subcommand
@as_of_option
@future_option
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
    Advice on settings (no bounce handling, no VERP) is shown as a warning and does not
    change the exit status.
    """
    from .preflight import check as preflight
    from .preflight import probe_smtp

    config, scanned = load_and_scan(ctx)  # the scan runs while the libraries load
    report = preflight(config, as_of=as_of_given(ctx, as_of_text, config), future=future,
                       scanned=scanned)
    if smtp:
        report.findings.extend(probe_smtp(config).findings)
    prefix = {"rejected": "error: ", "error": "error: ", "warning": "warning: "}
    for finding in report.findings:
        if finding.level == "note":
            click.echo(finding.text, err=True)
        elif finding.level == "advice":  # beside the notes: stdout lists what is wrong
            click.echo("warning: " + finding.text, err=True)
        else:
            click.echo(prefix[finding.level] + finding.text)
    ctx.exit(report.exit_code)


@subcommand
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@as_of_option
@future_option
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
            "rejected": [problem_json(p, root) for p in corpus.rejected],
            "warnings": [problem_json(p, root) for p in corpus.warnings],
        }
        click.echo(json.dumps(out, indent=2, ensure_ascii=False))
    ctx.exit(1 if corpus.rejected else 0)

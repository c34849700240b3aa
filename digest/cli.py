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
from typing import Any

import click

from .config import Config, load_config
from .errors import ConfigError, Problem

log = logging.getLogger("digest")


def _now(value: str | None, config: Config) -> datetime:
    if value is None:
        return datetime.now(config.site.tz)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"'{value}' is not an ISO 8601 date-time") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=config.site.tz)


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


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
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
    from .build import build as run_build

    config = _load(ctx)
    report = run_build(config, now=_now(now_text, config), future=future)
    corpus = report.corpus
    for problem in corpus.rejected:
        click.echo(f"rejected: {problem}", err=True)
    for problem in corpus.warnings:
        click.echo(f"warning: {problem}", err=True)
    click.echo(f"{len(corpus.posts)} posts ({corpus.parsed} parsed, "
               f"{len(corpus.rejected)} rejected, {corpus.future} future, "
               f"{corpus.unpublished} unpublished); {report.feeds} feeds: "
               f"{len(report.written)} files written, {report.skipped} feeds unchanged "
               f"→ {config.output}")
    ctx.exit(1 if corpus.rejected else 0)


@contextmanager
def _read(ctx: click.Context, now_text: str | None,
          future: bool) -> Iterator[tuple[Config, Any, Any]]:
    """Config, the posts read, and the open state store (closed on leaving)."""
    from .reader import read_posts
    from .store import Store

    config = _load(ctx)
    store = Store.open(config.state)
    try:
        yield config, read_posts(config, store, now=_now(now_text, config), future=future), store
    finally:
        store.close()


@main.command()
@_now_option
@_future_option
@click.pass_context
def check(ctx: click.Context, now_text: str | None, future: bool) -> None:
    """Report every problem in the posts; exit 1 if there is any."""
    with _read(ctx, now_text, future) as (_config, corpus, _store):
        problems = len(corpus.rejected) + len(corpus.warnings)
    for problem in corpus.rejected:
        click.echo(f"error: {problem}")
    for problem in corpus.warnings:
        click.echo(f"warning: {problem}")
    click.echo(f"{len(corpus.posts)} posts OK; {len(corpus.rejected)} rejected, "
               f"{len(corpus.warnings)} warnings", err=True)
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

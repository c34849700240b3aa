"""`digest signup-form`: the sign-up form to paste into the site."""

from __future__ import annotations

import click

from .base import digest_errors, load, subcommand


@subcommand
@click.pass_context
def signup_form(ctx: click.Context) -> None:
    """Print an HTML sign-up form to paste into the site.

    A plain form that posts to the web front's /subscribe (web.base_url), with the site's
    tags as checkboxes and a hidden field that only bots fill. The same form is at
    /subscribe itself. Exit 2 when sign-up (signup:) or web.base_url is not configured.
    Nothing is written.
    """
    config = load(ctx)
    if config.signup is None or config.web is None or not config.web.base_url:
        missing = "signup:" if config.signup is None else "web: base_url:"
        click.echo(f"error: {config.path}: '{missing}' is not set, so there is no sign-up "
                   "page to post to; add 'signup: {}' and 'web: {base_url: https://...}' "
                   "(see the README, \"Letting people sign up\")", err=True)
        ctx.exit(2)
    from ..posts.reader import read_posts
    from ..state.store import Store
    from ..util.clock import Clock
    from ..web.catalogue import count_terms
    from ..web.pages import Pages
    from ..web.signup import form_context, site_tags

    with digest_errors(ctx):
        store = Store.scratch(config.state)  # only looks: the state stays as it was
        try:
            corpus = read_posts(config, store, now=Clock().now(config.site.tz))
        finally:
            store.close()
        pages = Pages(config.site, config.digest.templates)
        context = form_context(site_tags(count_terms(corpus.posts)),
                               action=f"{config.web.base_url}/subscribe")
        click.echo(pages.html("signup_form", context).strip())

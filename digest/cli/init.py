"""`digest init`: a commented config.yaml and an example subscribers.yaml for a Jekyll site,
or a Hugo site (its hugo.toml or config.*, and the content section that holds the posts).

The site's `_config.yml` (or Hugo's config) gives the title and the sender's address; its
posts are read with the reader every command uses (the state it needs kept in a temporary
folder, so nothing is left behind but the two files), for the count and the tags the
example subscribers follow.
The config written is loaded before the subscribers file is written: a config `init` writes
and `digest check` refuses is a bug, and leaves nothing behind. Existing files are never
overwritten.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import textwrap
from collections import Counter
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from ..config import load_config
from ..errors import InitRefused
from ..util.yamlsource import load_located

JEKYLL_CONFIGS = ("_config.yml", "_config.yaml")
# as Hugo looks for them, first found wins
HUGO_CONFIGS = tuple(f"{stem}.{ext}" for stem in ("hugo", "config")
                     for ext in ("toml", "yaml", "yml", "json"))
HUGO_SECTIONS = ("posts", "post", "blog", "news", "articles")  # the usual names, in this order
TAGS_LISTED = 20  # tags named in the subscribers file's header comment


@dataclass(frozen=True)
class Initialised:
    config: Path
    subscribers: Path
    posts: int
    tags: list[tuple[str, int]]  # every tag and category, most used first
    inside_site: bool  # the files are in the site's folder, where Jekyll would publish them
    hugo: bool = False  # a Hugo site: it publishes only content/ and static/, so no note


def _q(text: str) -> str:
    """A YAML double-quoted scalar (JSON's string syntax is a subset of it)."""
    return json.dumps(text, ensure_ascii=False)


def _rel(target: Path, start: Path) -> str:
    """Relative when the two are close (the files move together), else absolute."""
    relative = Path(os.path.relpath(target, start))
    return (target if relative.parts[:2] == ("..", "..") else relative).as_posix()


def _sender(settings: dict[str, Any]) -> str:
    """`Title <address>` from _config.yml: author.email, email, or digest@ the url's host."""
    title = re.sub(r'[<>",;\r\n]', "", str(settings.get("title") or "")).strip() or "Digest"
    author = settings.get("author")
    candidates = [author.get("email") if isinstance(author, dict) else None,
                  settings.get("email")]
    address = next((str(c).strip() for c in candidates
                    if isinstance(c, str) and re.fullmatch(r"[^@\s<>]+@[^@\s<>]+", c.strip())),
                   None)
    if address is None:
        host = re.sub(r"^[a-z]+://", "", str(settings.get("url") or "")).split("/")[0]
        host = host.split(":")[0].lower()
        address = f"digest@{host}" if re.fullmatch(r"[a-z0-9-]+(\.[a-z0-9-]+)+", host) \
            else "digest@example.org"
    return f"{title} <{address}>"


def config_text(site: Path, folder: Path, jekyll: Path | None, sender: str,
                hugo: tuple[Path, Path] | None = None) -> str:
    """The commented config.yaml for *site*, written into *folder*; *hugo*: the Hugo
    config file and the section folder, for a Hugo site."""
    posts_line = f"posts: {_q(_rel(site, folder))}   # the site root: its _posts folder is read"
    if hugo is not None:
        posts_line = f"posts: {_q(_rel(hugo[1], folder))}   # the content section of the posts"
        site_lines = (f"  hugo_config: {_q(_rel(hugo[0], folder))}   # baseURL, title, "
                      "timeZone, permalinks, taxonomies from here\n"
                      "  # any of url, baseurl, title, description, timezone set here wins\n")
    elif jekyll is not None:
        site_lines = (f"  jekyll_config: {_q(_rel(jekyll, folder))}   # url, baseurl, title, "
                      "timezone, permalink… from here\n"
                      "  # any of url, baseurl, title, description, timezone, permalink,\n"
                      "  # excerpt_separator, author, lang set here wins over _config.yml\n")
    else:
        site_lines = ("  # no _config.yml found: set the site here\n"
                      "  url: \"https://example.org\"\n  title: \"My site\"\n"
                      "  timezone: UTC\n")
    return f"""\
# digest's configuration, written by `digest init`. Paths are relative to this file.
# Every key is described in the README; `digest check` checks all of it.
site:
{site_lines}{posts_line}
output: public          # where the feeds are written (feed.xml, feed/by_tag/TAG.xml, …)
state: .digest          # digest's own state (database, caches, the outbox): keep it
feeds:
  # entries: 20         # entries per feed; unset: _config.yml's jekyll-feed posts_limit,
                        # 10 if the site uses jekyll-feed, else 20 (a longer feed would
                        # bring old posts back to readers as new)
  stylesheet: false     # true: feed.xsl styles a feed in Firefox/Safari (Chromium has no XSLT)
  # json: true          # also a JSON Feed 1.1 (.json) beside each Atom feed
  # hub: https://pubsubhubbub.appspot.com/   # WebSub: readers get new posts at once

# The weekly email digest. Remove `subscribers:` to only write feeds.
subscribers: subscribers.yaml   # who gets it, and which tags each follows
digest:
  from: {_q(sender)}
  noun: post            # "3 new posts in …"; e.g. job, or opportunity/opportunities
  first_window_days: 7  # the first digest covers this many days back
  schedule: "0 9 * * mon"   # when `digest run` sends it: crontab line, in the site's timezone
  grace_hours: 24       # a digest missed by more than this while digest run was down is skipped
  # templates: my-templates   # your digest.html.j2 / digest.txt.j2 / subject.txt.j2
  # dkim: {{domain: example.org, selector: digest, private_key_env: DKIM_PRIVATE_KEY}}

# Without `smtp:` mail goes to the Maildir .digest/outbox (open it with `mutt -f`), so
# nothing leaves this machine until you add it. Secrets never go in this file: it names
# the environment variable that holds them.
# smtp:
#   host: smtp.example.org
#   port: 587
#   security: starttls    # starttls | tls | none; certificates are always verified
#   username: digest@example.org
#   password_env: SMTP_PASSWORD

# The pages the emails link to (one-click unsubscribe, choose tags, past digests).
# web:
#   base_url: https://example.org/digest   # where they are served, publicly
#   secret_env: DIGEST_SECRET   # links are signed with the secret in this variable
#   listen: 127.0.0.1:8080      # where `digest run` serves them (behind your web server)
"""


def subscribers_text(tags: list[tuple[str, int]]) -> str:
    listed = ", ".join(f"{tag} ({n})" for tag, n in tags[:TAGS_LISTED])
    more = f", and {len(tags) - TAGS_LISTED} more" if len(tags) > TAGS_LISTED else ""
    wrapped = textwrap.fill(listed + more, width=88, initial_indent="#   ",
                            subsequent_indent="#   ", break_on_hyphens=False)
    header = (f"# This site's tags and categories, most used first:\n{wrapped}\n"
              if tags else "# This site's posts have no tags yet.\n")
    example = ("- email: someone@example.org\n"
               f"  tags: [{', '.join(_q(t) for t, _ in tags[:2])}]   # only posts with one "
               "of these\n" if tags else "")
    return ("# Who gets the digest, written by `digest init`: replace these examples.\n"
            "# One entry per person: email (required), name, tags (only posts with one of\n"
            "# them; absent = every post), exclude_tags (never posts with these). Tags match\n"
            "# whatever their case. `digest unsubscribe EMAIL` overrides this file.\n"
            f"{header}"
            "- email: you@example.org\n  name: You\n"
            f"{example}")


def _jekyll_config(site: Path) -> tuple[Path | None, dict[str, Any]]:
    for name in JEKYLL_CONFIGS:
        path = site / name
        if path.is_file():
            data = load_located(path).data  # ConfigError, with file and line, if broken
            return path, data if isinstance(data, dict) else {}
    return None, {}


def _hugo_site(site: Path) -> tuple[Path, Path, dict[str, Any]] | None:
    """A Hugo site's config file, the section its posts are in (posts, blog… or else the
    section with the most pages) and the settings the sender is made from; None if *site*
    has no Hugo config."""
    from ..config.hugoconfig import load_hugo_config

    path = next((site / name for name in HUGO_CONFIGS if (site / name).is_file()), None)
    if path is None:
        return None
    data = load_hugo_config(path).data  # ConfigError, with file and line, if broken
    data = data if isinstance(data, dict) else {}
    content = site / str(data.get("contentdir") or "content")
    sections = sorted(p for p in content.iterdir() if p.is_dir()) if content.is_dir() else []
    if not sections:
        raise InitRefused(f"{content} has no section folder: digest reads the posts of one "
                          "section (content/posts, content/blog…)")
    named = {p.name.lower(): p for p in sections}
    section = next((named[n] for n in HUGO_SECTIONS if n in named), None) or max(
        sections, key=lambda p: sum(1 for f in p.rglob("*.md") if f.name != "_index.md"))
    found = data.get("params")
    params: dict[str, Any] = found if isinstance(found, dict) else {}
    settings = {"title": data.get("title"), "url": data.get("baseurl"),
                "email": params.get("email"), "author": params.get("author")}
    return path, section, settings


def _tags(config_path: Path) -> tuple[int, list[tuple[str, int]]]:
    """The published posts and their tags and categories, read as every command reads them."""
    from ..edition.selection import terms
    from ..posts.reader import read_posts
    from ..state.store import Store

    config = load_config(config_path)
    with tempfile.TemporaryDirectory(prefix="digest-init-") as state:
        store = Store.open(Path(state))
        try:
            corpus = read_posts(replace(config, state=Path(state)), store,
                                now=datetime.now(config.site.tz))
        finally:
            store.close()
    counts = Counter(t for p in corpus.posts for t in dict.fromkeys(terms(p)))
    return len(corpus.posts), sorted(counts.items(), key=lambda kv: (-kv[1], kv[0].casefold()))


def init_site(site: Path, config_path: Path) -> Initialised:
    """Write config.yaml (at *config_path*) and subscribers.yaml beside it for *site*."""
    site = site.resolve()
    config_path = config_path.resolve()
    subscribers = config_path.parent / "subscribers.yaml"
    for path in (config_path, subscribers):
        if path.exists():
            raise InitRefused(f"{path} already exists: not overwriting it (move it away, or "
                              "give another --config path)")
    hugo = None
    if (site / "_posts").is_dir():
        jekyll, settings = _jekyll_config(site)
    elif (found := _hugo_site(site)) is not None:
        jekyll, (hugo_config, section, settings) = None, found
        hugo = (hugo_config, section)
    else:
        raise InitRefused(f"{site} has no _posts folder and no Hugo config: give the folder "
                          "of a Jekyll site (the one with _config.yml and _posts) or of a "
                          "Hugo site (the one with hugo.toml and content/)")
    config_path.parent.mkdir(parents=True, exist_ok=True)
    text = config_text(site, config_path.parent, jekyll, _sender(settings), hugo)
    with config_path.open("x", encoding="utf-8") as handle:  # "x": never over a file
        handle.write(text)
    try:
        posts, tags = _tags(config_path)
        with subscribers.open("x", encoding="utf-8") as handle:
            handle.write(subscribers_text(tags))
    except BaseException:
        config_path.unlink(missing_ok=True)
        raise
    published = [site / "content", site / "static"] if hugo else [site]
    return Initialised(config_path, subscribers, posts, tags,
                       inside_site=any(config_path.parent.is_relative_to(p) for p in published),
                       hugo=hugo is not None)

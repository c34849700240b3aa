"""Posts as the digest templates see them: text tidied, tags named and grouped. Pure.

`summary` is a post cut short, for one that alone is over the digest's budget (clip.py).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from datetime import datetime

from markupsafe import Markup

from ..config import Site
from ..posts.content import flatten, too_deep
from .message import one_line, tidy_text

BLANK_LINES = re.compile(r"\n{3,}")
SUMMARY_TITLE = 200  # characters of a post's title left when it alone is over the budget
SUMMARY_EXCERPT = 300  # and of its excerpt, which becomes plain text
SUMMARY_TERMS = 10  # and tags named


@dataclass(frozen=True)
class DigestPost:
    title: str  # plain text, may contain anything
    url: str  # absolute
    date: datetime  # aware
    tags: tuple[str, ...]
    categories: tuple[str, ...]
    excerpt: str  # plain text
    excerpt_html: str  # already sanitised by nh3


@dataclass(frozen=True)
class PostView:
    """A post as the templates see it: text tidied to what a reader should see."""

    title: str  # one line
    url: str
    date: datetime  # in the site's timezone
    tags: tuple[str, ...]
    categories: tuple[str, ...]
    terms: tuple[str, ...]  # tags then categories, once each: what subscribers follow
    excerpt: str
    excerpt_html: Markup


def view(post: DigestPost, site: Site) -> PostView:
    tags = tuple(t for t in (one_line(t) for t in post.tags) if t)
    categories = tuple(c for c in (one_line(c) for c in post.categories) if c)
    excerpt = BLANK_LINES.sub("\n\n", tidy_text(post.excerpt)).strip()
    # render_post flattens deep HTML already; an excerpt cached by an older version may not
    # be, and css-inline dies of a stack overflow (SIGSEGV) on it, taking the send along
    excerpt_html = flatten(post.excerpt_html) if too_deep(post.excerpt_html) \
        else post.excerpt_html
    return PostView(one_line(post.title), one_line(post.url).replace(" ", "%20"),
                    post.date.astimezone(site.tz), tags, categories,
                    tuple(dict.fromkeys((*tags, *categories))), excerpt,
                    Markup(tidy_text(excerpt_html).strip()))  # nh3 made it safe


def summary(post: PostView) -> PostView:
    """*post* cut short, for when it alone would take the digest over its budget: its
    title, tags and excerpt (as plain text) bounded, so that the footer still fits."""
    terms = post.terms[:SUMMARY_TERMS]
    excerpt = cut(" ".join(post.excerpt.split()), SUMMARY_EXCERPT)
    return PostView(cut(post.title, SUMMARY_TITLE), post.url, post.date,
                    tuple(t for t in post.tags if t in terms),
                    tuple(c for c in post.categories if c in terms), terms, excerpt,
                    Markup("<p>{}</p>").format(excerpt) if excerpt else Markup(""))


def counts_of(posts: list[PostView]) -> Counter[str]:
    return Counter(term for post in posts for term in post.terms)


def named_tags(posts: list[PostView], followed: tuple[str, ...] | None) -> list[str]:
    """Tags to name, most posts first: those followed, or all when following everything."""
    counts = counts_of(posts)
    if followed is None:
        return sorted(counts, key=lambda t: (-counts[t], t.casefold()))
    spelt = {t.casefold(): t for t in counts}
    present = [spelt[f.casefold()] for f in dict.fromkeys(followed) if f.casefold() in spelt]
    return sorted(present, key=lambda t: -counts[t])


def groups(posts: list[PostView], named: list[str]) -> list[tuple[str | None, list[PostView]]]:
    """(tag, its posts newest first) per named tag; posts in none of them under None, last."""
    groups: list[tuple[str | None, list[PostView]]] = [
        (tag, [p for p in posts if tag in p.terms]) for tag in named]
    rest = [p for p in posts if not set(named) & set(p.terms)]
    if rest:
        groups.append((None, rest))
    return groups


def cut(text: str, limit: int) -> str:
    """*text* cut to about *limit* characters at a word boundary, with an ellipsis if cut."""
    if len(text) <= limit:
        return text
    return (text[:limit].rsplit(" ", 1)[0] or text[:limit]).rstrip(" ,;:") + " …"

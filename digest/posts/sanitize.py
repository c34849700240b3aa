"""HTML sanitising for what leaves us (feeds, email): nh3, the Rust ammonia sanitiser.

A post may hold raw HTML; feed readers and mail clients should never receive its scripts,
iframes, event handlers or javascript: links. nh3 is maintained, fast (Rust) and strict.
"""

from __future__ import annotations

import nh3

from .content import flatten, too_deep

_TAGS = set(nh3.ALLOWED_TAGS) | {"figure", "figcaption", "picture", "source", "video", "audio"}
_ATTRIBUTES = {k: set(v) for k, v in nh3.ALLOWED_ATTRIBUTES.items()}
_ATTRIBUTES.setdefault("*", set()).update({"title", "lang", "dir"})
_ATTRIBUTES.setdefault("img", set()).update({"src", "alt", "width", "height"})
_ATTRIBUTES.setdefault("a", set()).update({"href", "title"})
_ATTRIBUTES.setdefault("code", set()).add("class")
_ATTRIBUTES.setdefault("source", set()).update({"src", "srcset", "type"})
_ATTRIBUTES.setdefault("video", set()).update({"src", "poster", "controls"})
_ATTRIBUTES.setdefault("audio", set()).update({"src", "controls"})


def sanitize(fragment: str) -> str:
    """Keep formatting, links and images; drop anything that runs or embeds.

    HTML nested too deep for the native code (content.MAX_DEPTH) is reduced to its text
    first; render_post has done so already for posts, this is for anything else.
    """
    if too_deep(fragment):
        fragment = flatten(fragment)
    return nh3.clean(fragment, tags=_TAGS, attributes=_ATTRIBUTES,
                     link_rel="noopener noreferrer")

"""How many posts fit a digest's HTML under a byte budget. Pure functions.

Gmail shows "[Message clipped]" past about 102 KB of a message's HTML and hides the rest,
the unsubscribe and "manage tags" links in the footer with it. So a digest's HTML part is
kept under `digest.clip_bytes`: the posts that do not fit become "and N more", linked to
the web archive. Sizes are of the decoded HTML part (UTF-8, CRLF line ends), which is what
Gmail counts, not of its quoted-printable encoding on the wire (a few percent larger).

An edition is laid out once for all its recipients, with placeholders where their own
values go, so a size counts each placeholder as the most its value can take once
substituted (`RESERVE`): no recipient's copy is larger than what was measured.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable, Mapping

from .message import MAX_NAME

# one character HTML-escaped is at most six bytes (&quot; &#x27;; UTF-8 takes at most four)
_ESCAPED = 6
MAX_ADDRESS = 254  # check_address
MAX_URL = len("https://") + 900  # check_url
LINK = 512  # a signed link (base_url + /unsubscribe/ + a 22-character token) is far shorter

# bytes set aside for each personal value, per place it appears: name and address at their
# bound; links at a generous LINK, and at their bound (`WIDE`) for a recipient whose link
# is longer than that, who gets a layout of their own (see `wide`)
RESERVE: Mapping[str, int] = {"name": MAX_NAME * _ESCAPED, "email": MAX_ADDRESS * _ESCAPED,
                              "unsubscribe_url": LINK, "preferences_url": LINK}
WIDE: Mapping[str, int] = {**RESERVE, "unsubscribe_url": MAX_URL * _ESCAPED,
                           "preferences_url": MAX_URL * _ESCAPED}


def html_size(page: str, placeholder: re.Pattern[str], reserve: Mapping[str, int]) -> int:
    """Decoded bytes of *page* as sent: UTF-8, each "\\n" a CRLF, each placeholder (whose
    group 1 names the value) counted as *reserve* says."""
    size = len(page.encode("utf-8")) + page.count("\n")
    for match in placeholder.finditer(page):
        size += reserve[match.group(1)] - len(match.group(0).encode("utf-8"))
    return size


def wide(values: Mapping[str, str]) -> bool:
    """Whether some HTML-escaped value of a recipient's is longer than `RESERVE` allows."""
    return any(len(html.escape(value).encode("utf-8")) > RESERVE[key]
               for key, value in values.items())


def most(count: int, fits: Callable[[int], bool], hint: int = 0) -> int:
    """The largest k in 0..count with fits(k) (fits is true up to some k, false after: more
    posts, more bytes); 0 when none does. By bisection, about log2(count) calls; with a
    *hint* (what fitted another layout of the same posts), by steps out from it first,
    doubling, so a hint off by d costs about 2·log2(d) calls."""
    low, high = 0, count
    if 0 < hint <= count:
        step = 1
        if fits(hint):
            low = hint
            while (probe := low + step) <= count and fits(probe):
                low, step = probe, step * 2
            high = min(count, probe - 1)
        else:
            high = hint - 1
            while (probe := hint - step) >= 1 and not fits(probe):
                high, step = probe - 1, step * 2
            low = max(probe, 0)
    while low < high:
        middle = (low + high + 1) // 2
        if fits(middle):
            low = middle
        else:
            high = middle - 1
    return low

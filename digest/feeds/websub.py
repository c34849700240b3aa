"""WebSub (https://www.w3.org/TR/websub/): name the hub in every feed, and tell it which
feeds changed, so readers subscribed through it get a post at once instead of at their
next poll.

The ping is a best effort: a hub that cannot be reached costs a warning, never a build.
All changed feeds go in one form-encoded request with `hub.url` repeated (PubSubHubbub 0.4,
which the common hubs speak, allows it): a post with 30 tags changes ~60 feeds, and one
request per feed would cost 60 round trips and 60 times the retries when the hub is down.
Batches are bounded so that no request body grows past what a hub will take.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlencode
from xml.sax.saxutils import quoteattr

from ..config import Config
from ..posts.ids import absolute

FEED_SUFFIXES = (".xml", ".rss", ".json")  # what the build writes as feeds (not .opml, .xsl)
BATCH = 100  # hub.url values per request: ~10 KB of body
ATTEMPTS = 3
FIRST_DELAY = 1.0  # seconds before the second attempt; doubles before each next one
TIMEOUT = 5.0  # seconds for one request
DEADLINE = 12.0  # seconds for the whole ping, however many batches and retries
_SELF = {"atom": b'rel="self" type="application/atom+xml"/>',
         "rss": b'rel="self" type="application/rss+xml"/>'}


def with_hub(data: bytes, kind: Literal["atom", "rss"], hub: str | None) -> bytes:
    """*data* with a `rel="hub"` link right after the feed's self link.

    feedgen writes Atom links of any rel but only the self link into RSS, so both are done
    here the same way: the first self link is the feed's own (entries have none), and no
    text can pass for it, since lxml writes every '>' in text and attributes as '&gt;'.
    """
    if not hub:
        return data
    at = data.find(_SELF[kind])
    if at < 0:
        return data
    at += len(_SELF[kind])
    element = "link" if kind == "atom" else "atom:link"
    # the same indentation as the self link's
    line = data[data.rfind(b"\n", 0, at) + 1:at]
    indent = line[:len(line) - len(line.lstrip(b" "))]
    link = f"\n{indent.decode()}<{element} href={quoteattr(hub)} rel=\"hub\"/>".encode()
    return data[:at] + link + data[at:]


@dataclass(frozen=True)
class Ping:
    """What a ping did: the feeds announced, the requests made, and why it failed, if it did."""

    urls: tuple[str, ...]
    requests: int = 0
    error: str | None = None


def changed_feed_urls(config: Config, written: Sequence[str]) -> list[str]:
    """The public URLs of the feeds among *written* (paths relative to the output folder)."""
    return [absolute(config.site, "/" + rel) for rel in written if rel.endswith(FEED_SUFFIXES)]


def announce(config: Config, written: Sequence[str], *,
             sleep: Callable[[float], None] = time.sleep, first_delay: float = FIRST_DELAY,
             deadline: float = DEADLINE) -> Ping | None:
    """Tell the configured hub which of the *written* files are changed feeds.

    None when there is nothing to do (no hub, no feed changed). Never raises: a failure is
    in Ping.error, for the caller to report its way (the CLI on stderr, the daemon's log).
    """
    hub = config.hub
    urls = changed_feed_urls(config, written)
    if not hub or not urls:
        return None
    if not all(url.startswith(("https://", "http://")) for url in urls):
        ping = Ping(tuple(urls), 0, "site.url is not set, so the feeds have no public URL")
    else:
        ping = publish(hub, urls, sleep=sleep, first_delay=first_delay, deadline=deadline)
    return ping


def publish(hub: str, urls: Sequence[str], *, sleep: Callable[[float], None] = time.sleep,
            attempts: int = ATTEMPTS, first_delay: float = FIRST_DELAY,
            timeout: float = TIMEOUT, deadline: float = DEADLINE) -> Ping:
    """POST `hub.mode=publish` with the *urls* to *hub*, retrying with backoff; never raises."""
    ends = time.monotonic() + deadline
    requests = 0
    for start in range(0, len(urls), BATCH):
        body = urlencode([("hub.mode", "publish"),
                          *(("hub.url", url) for url in urls[start:start + BATCH])]).encode()
        delay = first_delay
        for attempt in range(1, attempts + 1):
            left = ends - time.monotonic()
            if left <= 0:
                return Ping(tuple(urls), requests, "gave up: the time for the ping ran out")
            requests += 1
            error, retry = _post(hub, body, min(timeout, left))
            if error is None:
                break
            if not retry or attempt == attempts or time.monotonic() + delay >= ends:
                return Ping(tuple(urls), requests, error)
            sleep(delay)
            delay *= 2
    return Ping(tuple(urls), requests)


def _post(hub: str, body: bytes, timeout: float) -> tuple[str | None, bool]:
    """One request: (None, _) if the hub took it, else (why, whether to try again)."""
    request = urllib.request.Request(hub, data=body, method="POST", headers={
        "Content-Type": "application/x-www-form-urlencoded", "User-Agent": "digest (WebSub)"})
    try:
        # urllib verifies TLS certificates and host names by default (ssl default context)
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read(4096)
        return None, False
    except urllib.error.HTTPError as exc:
        # 5xx and 429: the hub is busy or broken for now; another 4xx will not change
        return f"HTTP {exc.code} {exc.reason}", exc.code >= 500 or exc.code == 429
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return f"{type(exc).__name__}: {reason}", True

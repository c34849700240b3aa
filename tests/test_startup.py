"""`digest run` misses nothing at start-up: it watches first, then looks again.

The daemon runs in this process (its real event loop, real inotify watches, real files), so
a test can act at an exact point of its start-up: right after the start-up build, before
the watches exist, the moment a post used to wait for the next refresh (minutes).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from conftest import make_site, post, write_posts

from digest.config import Config, load_config
from digest.daemon.feeds import Feeds
from digest.daemon.service import Daemon
from digest.daemon.work import BuildResult
from digest.util.clock import Clock

POSTS = {"2024-06-04-first.md": post("First Job", tags="[union]")}
LATE = {"2024-06-05-late.md": post("Written During Start-up", tags="[union]")}


class WritesAfterTheStartUpBuild(Feeds):
    """The daemon's feeds, with a post written once the start-up build is done."""

    def build(self, config: Config, reason: str) -> BuildResult | None:
        result = super().build(config, reason)
        if reason == "start-up":
            write_posts(config.posts.parent, LATE)
        return result


class WithThoseFeeds(Daemon):
    feeds_part = WritesAfterTheStartUpBuild


async def _feed_gets(daemon: Daemon, feed: Path, text: str, timeout: float) -> float:
    """Seconds until *feed* holds *text* (inf if it never does), the daemon then stopped."""
    running = asyncio.create_task(daemon.run())
    started = time.monotonic()
    took = float("inf")
    while time.monotonic() - started < timeout and not running.done():
        if feed.exists() and text in feed.read_text(encoding="utf-8"):
            took = time.monotonic() - started
            break
        await asyncio.sleep(0.05)
    daemon.stop("test over")
    assert await asyncio.wait_for(running, 30) == 0
    return took


def test_post_written_between_the_start_up_build_and_the_watch_reaches_the_feed(
        tmp_path: Path) -> None:
    cfg = make_site(tmp_path, dict(POSTS), feeds={"refresh_minutes": 60})
    daemon = WithThoseFeeds(load_config(cfg), Clock())
    took = asyncio.run(_feed_gets(daemon, tmp_path / "public" / "feed.xml",
                                  "Written During Start-up", timeout=10))
    assert took < 5, "the post waited for the hourly refresh"

"""The daemon's reloads: SIGHUP, or an edit of config.yaml, the site's _config.yml or the
subscribers file, reloads; a new version that does not load is logged and the old one kept.

The watches (watch.py) live here too, as what they watch is what the config says: a reload
that changes the posts folder or the files restarts them.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from ..config import Config, load_config
from ..errors import ConfigError, DigestError, Problem
from ..util.logs import event
from .bounces import BounceReader
from .digest import DigestSender
from .feeds import Feeds
from .host import Host
from .watch import Watch, changes, files_watch, posts_watch
from .web import WebFront
from .work import check_can_send, check_subscribers, log_problems, shown

log = logging.getLogger(__name__)

WATCH_READY_SECONDS = 30.0  # setting up inotify watches on a huge tree takes a while


class Reloader:
    def __init__(self, host: Host, feeds: Feeds, digest: DigestSender, web: WebFront,
                 bounces: BounceReader) -> None:
        self.host = host
        self.feeds = feeds
        self.digest = digest
        self.web = web
        self.bounces = bounces
        self.watchers: dict[str, tuple[Watch, asyncio.Event, asyncio.Task[None]]] = {}
        self._reloading = asyncio.Lock()

    def spawn(self, why: str) -> None:
        """Reload in the background (from a signal handler or a watch)."""
        if not self.host.stopping.is_set():
            self.host.task(self.reload(why))

    async def reload(self, why: str) -> None:
        """Load the config again; keep the running one if the new one does not load."""
        host = self.host
        async with self._reloading:
            new = await self._load(why)
            if new is None:
                return
            if new == host.config:
                log.info("config reloaded (%s): unchanged", why,
                         extra=event("config.reloaded", why=why, changed=False))
            else:
                host.config = new
                log.info("config reloaded (%s)", why,
                         extra=event("config.reloaded", why=why, changed=True))
                self.feeds.schedule_refresh()
                self.digest.schedule()
                self.bounces.schedule()
                self.restart_watchers()
                self.web.reload(new)
                self.feeds.request_build("config reloaded")
            await asyncio.to_thread(self.check_subscribers, host.config)

    async def _load(self, why: str) -> Config | None:
        """The config as it now reads, or None (logged) if it cannot replace the running one."""
        old = self.host.config
        try:
            new = await asyncio.to_thread(load_config, old.path)
            if new.state != old.state:
                raise ConfigError([Problem(old.path, None, "'state' cannot change while "
                                           "`digest run` runs", "restart it")])
            check_can_send(new)
        except ConfigError as exc:
            log_problems(f"config not reloaded ({why}); keeping the running one",
                         exc.problems, "config.rejected")
            return None
        except DigestError as exc:
            log.error("config not reloaded (%s); keeping the running one: %s", why, exc,
                      extra=event("config.rejected", errors=[str(exc)]))
            return None
        return new

    def check_subscribers(self, config: Config) -> None:
        """Check the subscribers file (in a worker thread); sends read it again themselves."""
        if config.subscribers is None:
            return
        try:
            self.host.note("subscribers", check_subscribers(config, self.feeds.known_terms))
        except Exception as exc:  # the next edit, reload or send tries again; keep running
            log.error("subscribers not checked: %r", exc, exc_info=exc,
                      extra=event("subscribers.failed", error=repr(exc)))

    async def catch_up(self, ready: list[asyncio.Event]) -> None:
        """Once the watches are in place, look again at what they watch: a post (or a config
        edit) written between the start-up build and the watch was seen by neither."""
        await asyncio.wait_for(asyncio.gather(*(r.wait() for r in ready)), WATCH_READY_SECONDS)
        self.feeds.request_build("start-up: changes while the watches were set up")
        if await asyncio.to_thread(self._config_changed):
            self.spawn("changed during start-up")

    def _config_changed(self) -> bool:
        try:
            return load_config(self.host.config.path) != self.host.config
        except Exception:  # reload() says what is wrong with it
            return True

    def restart_watchers(self) -> list[asyncio.Event]:
        """Start the watches that changed; the events that say when the new ones are set."""
        ready: list[asyncio.Event] = []
        config = self.host.config
        files = [p for p in (config.path, config.jekyll_config, config.subscribers) if p]
        for name, watch in (("posts", posts_watch(config.posts)),
                            ("config", files_watch(files))):
            running = self.watchers.get(name)
            if running is not None and running[0] == watch:
                continue
            if running is not None:
                running[1].set()
            stop = asyncio.Event()
            ready.append(asyncio.Event())
            self.watchers[name] = (watch, stop,
                                   self.host.task(self._watch(name, watch, stop, ready[-1])))
        return ready

    def stop_watchers(self) -> list[asyncio.Task[None]]:
        """Tell every watch to stop; their tasks."""
        for _watch, stop, _task in self.watchers.values():
            stop.set()
        return [task for _watch, _stop, task in self.watchers.values()]

    async def _watch(self, name: str, watch: Watch, stop: asyncio.Event,
                     ready: asyncio.Event) -> None:
        host = self.host
        async for paths in changes(watch, stop, ready):
            if name == "posts":
                self.feeds.request_build(
                    f"changed: {shown([_relative(p, host.config.posts) for p in paths], 5)}")
            elif paths == [host.config.subscribers]:
                log.info("subscribers file changed: checking it",
                         extra=event("subscribers.changed"))
                host.task(asyncio.to_thread(self.check_subscribers, host.config))
            else:
                self.spawn(f"changed: {', '.join(p.name for p in paths)}")


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)

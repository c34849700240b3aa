"""Serving the web front with uvicorn: alone (`digest serve`) or inside `digest run`.

Inside the daemon the server shares the event loop and leaves the signals to the daemon,
which stops it with the rest. The access log is off: its lines would carry the tokens.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from collections.abc import Callable, Iterator

import uvicorn

from ..config import LISTEN, Config
from ..errors import ConfigError, Problem, ServeError
from ..subscribers.tokens import Signer
from ..util.clock import Clock
from ..util.loop import run_async
from .app import Web, make_app
from .guard import Limits, protocol_for

log = logging.getLogger(__name__)
GRACE_SECONDS = 5  # open connections get this long to finish when the server stops


def listen_address(text: str) -> tuple[str, int]:
    """`HOST:PORT` or `[V6]:PORT` → (host, port); ValueError with what is wrong."""
    found = LISTEN.match(text.strip())
    if not found or not 0 <= int(found["port"]) <= 65535:
        raise ValueError(f"'{text}' is not HOST:PORT (e.g. 127.0.0.1:8080 or [::1]:8080)")
    return found["v6"] or found["host"], int(found["port"])


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: ours stops it and exits 0 (uvicorn's would
    re-raise the signal after shutting down, and the daemon owns SIGTERM/SIGINT/SIGHUP)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def bind(listen: str) -> socket.socket:
    """The listening socket, bound here so that a taken port is a plain OSError for us to
    report, as a ServeError naming the address (uvicorn would exit the whole process)."""
    host, port = listen_address(listen)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP named, or asyncio skips TCP_NODELAY on accepted connections and every
    # small response waits ~40 ms for Nagle + delayed ACK
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise ServeError(listen, exc.strerror or str(exc), exc.errno) from None
    return sock


def _config(current: Callable[[], Web], limits: Limits) -> uvicorn.Config:
    # h11 by name (through guard.py), not "auto": httptools would bypass the guard
    return uvicorn.Config(make_app(current), lifespan="off", http=protocol_for(limits),
                          access_log=False, server_header=False, log_config=None,
                          timeout_graceful_shutdown=GRACE_SECONDS,
                          timeout_keep_alive=limits.keep_alive_seconds,
                          limit_concurrency=limits.connections,
                          h11_max_incomplete_event_size=limits.max_head)


class Front:
    """The web front inside the daemon: start, the address it got, reload, stop."""

    def __init__(self, web: Web, listen: str, limits: Limits | None = None,
                 on_resume: Callable[[str], None] | None = None) -> None:
        self.web = web
        self.listen = listen
        self.on_resume = on_resume  # the daemon's sender, told of a resume (Web.on_resume)
        web.on_resume = on_resume
        self.server = _Server(_config(lambda: self.web, limits or Limits()))
        self.task: asyncio.Task[None] | None = None

    @classmethod
    def for_config(cls, config: Config, clock: Clock,
                   on_resume: Callable[[str], None] | None = None) -> Front | None:
        """The front *config* asks for; None when it has no `web:` or `listen: null`.
        Raises MissingSecret when the token secret is not in the environment."""
        if config.web is None or config.web.listen is None:
            return None
        return cls(Web(config, clock, Signer.from_env(config.web.secret_env)),
                   config.web.listen, on_resume=on_resume)

    def reload(self, config: Config) -> None:
        """Serve *config* from the next request on; the address only changes on restart."""
        web = config.web
        if web is None or web.listen != self.listen:
            log.warning("web.listen changed: the web front keeps serving on %s until "
                        "`digest run` is restarted", self.listen)
        if web is not None:
            self.web = Web(config, self.web.clock, Signer.from_env(web.secret_env))
            self.web.on_resume = self.on_resume

    async def start(self) -> str:
        """Listen; the URL it listens on (the real port when 0 was asked for). ServeError
        when the address cannot be had."""
        sock = bind(self.listen)
        self.task = asyncio.get_running_loop().create_task(self.server.serve([sock]))
        while not self.server.started:
            if self.task.done():
                self.task.result()  # raises what stopped it
                raise ServeError(self.listen, "the web front did not start (is the address "
                                              "in use?)")
            await asyncio.sleep(0.01)
        return url_of(self.server)

    async def stop(self) -> None:
        if self.task is None:
            return
        self.server.should_exit = True
        with contextlib.suppress(Exception, SystemExit):
            await self.task


def url_of(server: uvicorn.Server) -> str:
    host, port = server.servers[0].sockets[0].getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def serve(web: Web, listen: str) -> int:
    """`digest serve`: the web front alone, until SIGTERM/SIGINT; the exit status."""
    try:
        sock = bind(listen)
    except ValueError as exc:
        raise ConfigError([Problem(web.config.path, None, str(exc),
                                   "set 'web: listen:' or pass --listen HOST:PORT")]) from None
    server = _Server(_config(lambda: web, Limits()))

    def stop(name: str) -> None:
        log.info("stopping (%s)", name)
        server.should_exit = True

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop, sig.name)
        task = loop.create_task(server.serve([sock]))
        while not server.started and not task.done():
            await asyncio.sleep(0.01)
        if server.started:
            log.info("web front listening on %s", url_of(server))
        await task

    try:
        run_async(main())
    except SystemExit as exc:  # uvicorn exits when it cannot bind
        return int(exc.code or 1)
    return 0 if server.started else 1

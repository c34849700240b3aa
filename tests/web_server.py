"""The real web front (uvicorn + the Starlette app) on a loopback port, in a thread."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from types import TracebackType

from digest.config import Config
from digest.subscribers.tokens import Signer
from digest.util.clock import Clock
from digest.web.app import Web
from digest.web.guard import Limits
from digest.web.server import Front


class WebServer:
    """`with WebServer(config) as server:` → server.url is http://127.0.0.1:PORT."""

    def __init__(self, config: Config, limits: Limits | None = None,
                 on_resume: Callable[[str], None] | None = None) -> None:
        assert config.web is not None
        self.web = Web(config, Clock(), Signer.from_env(config.web.secret_env))
        self.front = Front(self.web, "127.0.0.1:0", limits, on_resume=on_resume)
        self.url = ""
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._error: BaseException | None = None

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self.url = self._loop.run_until_complete(self.front.start())
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        self._loop.run_until_complete(self.front.task)  # type: ignore[arg-type]

    def __enter__(self) -> WebServer:
        self._thread.start()
        self._ready.wait(10)
        if self._error is not None:
            raise self._error
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.front.server.should_exit = True
        self._thread.join(10)
        self._loop.close()

"""The event loop every long-running command runs on: uvloop where it is installed.

uvloop (libuv) costs about a tenth less CPU per message than asyncio's own loop with
aiosmtplib, and serves more requests per second under uvicorn; asyncio's loop is the
fallback where uvloop cannot be imported (it is a dependency, except on Windows).
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

R = TypeVar("R")


def run_async(main: Coroutine[Any, Any, R]) -> R:
    """asyncio.run(main) on uvloop when available."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency, but optional at heart
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)

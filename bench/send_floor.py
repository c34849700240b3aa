"""aiosmtplib alone: one message sent N times over K connections, with nothing of digest's.

Why this exists: the issue asks `digest send` for half of smtp-source's message rate and
keeps aiosmtplib as the client. This is the most any sender built on aiosmtplib can do
here: the same MAIL / RCPT / DATA calls digest makes (SIZE given, uvloop when installed),
with no rendering, no send log and no queue. If this row is under the target, the target
cannot be met without replacing or patching aiosmtplib.

    python bench/send_floor.py PORT COUNT CONNECTIONS MESSAGE.eml [smtpdata | pipelined]

The message is sent with CRLF line ends, as digest composes it. With "smtpdata", MAIL /
RCPT / DATA go through digest.delivery.smtpdata one command at a time; with "pipelined",
as `digest send` sends them where the server offers PIPELINING (smtp-sink does): MAIL,
RCPT and DATA in one write, the message in another. Each is the adapter's effect alone.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import aiosmtplib

try:
    import uvloop
except ImportError:  # pragma: no cover
    uvloop = None


async def _connection(port: int, data: bytes, todo: list[int], adapter: str | None) -> None:
    if adapter:  # imported only here: the stock row also runs against trees without it
        from digest.delivery import smtpdata
    smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=30,
                           local_hostname="localhost")
    await smtp.connect()
    await smtp.ehlo()
    while todo:
        n = todo.pop()
        if adapter == "pipelined":
            recipient = f"user{n}@example.org"
            plan = smtpdata.pipelined(smtp, "jobs@example.org", recipient, data)
            if plan is None:
                raise SystemExit("the server does not offer PIPELINING")
            await smtpdata.envelope(smtp, plan, [f"SIZE={len(data)}"])
            await smtpdata.content(smtp, plan.wire)
            continue
        if adapter:
            await smtpdata.mail(smtp, "jobs@example.org", [f"SIZE={len(data)}"])
            await smtpdata.rcpt(smtp, f"user{n}@example.org")
            await smtpdata.data(smtp, data)
            continue
        await smtp.mail("jobs@example.org", options=[f"SIZE={len(data)}"])
        await smtp.rcpt(f"user{n}@example.org")
        await smtp.data(data)
    await smtp.quit()


async def _main(port: int, count: int, connections: int, data: bytes,
                adapter: str | None) -> None:
    todo = list(range(count))
    started = time.perf_counter()
    await asyncio.gather(*(_connection(port, data, todo, adapter) for _ in range(connections)))
    seconds = time.perf_counter() - started
    loop = ("uvloop" if uvloop is not None else "asyncio") + (f", {adapter}" if adapter else "")
    print(f"sent {count} x {len(data)} B over {connections} connections ({loop}): "
          f"{seconds:.2f} s, {count / seconds:.0f} msg/s")


def main() -> int:
    port, count, connections = (int(a) for a in sys.argv[1:4])
    data = Path(sys.argv[4]).read_bytes()
    adapter = sys.argv[5] if sys.argv[5:] in (["smtpdata"], ["pipelined"]) else None
    # CRLF line ends, as digest composes it (`digest preview` writes the .eml with LF)
    data = data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    coro = _main(port, count, connections, data, adapter)
    if uvloop is not None:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(coro)
    else:
        asyncio.run(coro)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

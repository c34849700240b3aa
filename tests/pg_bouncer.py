"""PgBouncer (Debian's `pgbouncer`) in front of the tests' PostgreSQL server (pg_server.py), in
a temp folder on a free port, as a site with many machines may put it between digest and its
database: `url` is the database's URL through the pooler, in the pool mode asked for."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from pg_server import free_port
from psycopg.conninfo import conninfo_to_dict


def binary() -> str | None:
    return shutil.which("pgbouncer") or shutil.which("pgbouncer", path="/usr/sbin")


class PgBouncer:
    def __init__(self, database_url: str, mode: str, *, pool_size: int = 20) -> None:
        found = binary()
        assert found is not None
        parts = conninfo_to_dict(database_url)
        self.port = free_port()
        self.base = Path(tempfile.mkdtemp(prefix="digest-pgbouncer-"))
        (self.base / "users.txt").write_text(f'"{parts["user"]}" "{parts["password"]}"\n')
        (self.base / "pgbouncer.ini").write_text(f"""[databases]
* = host={parts.get("host", "127.0.0.1")} port={parts.get("port", 5432)}
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {self.port}
auth_type = scram-sha-256
auth_file = {self.base}/users.txt
pool_mode = {mode}
default_pool_size = {pool_size}
unix_socket_dir =
logfile = {self.base}/pgbouncer.log
""")
        self.url = database_url.replace(f":{parts['port']}/", f":{self.port}/")
        # PgBouncer refuses to run as root: as postgres then, which must read its files
        self._as_root = os.geteuid() == 0
        if self._as_root:
            for path in (self.base, *self.base.iterdir()):
                shutil.chown(path, "postgres", "postgres")
        command = [found, *(["-u", "postgres"] if self._as_root else []),
                   str(self.base / "pgbouncer.ini")]
        self._process = subprocess.Popen(command, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if self._process.poll() is not None or time.monotonic() > deadline:
                    log = self.base / "pgbouncer.log"
                    raise RuntimeError("pgbouncer did not start: " + (
                        log.read_text() if log.exists() else "no log")) from None
                time.sleep(0.05)

    def __enter__(self) -> PgBouncer:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self._process.terminate()
        try:
            self._process.wait(10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        shutil.rmtree(self.base, ignore_errors=True)

"""A throwaway PostgreSQL server for the tests: initdb in a temp folder, pg_ctl start on a free
loopback port (its unix socket in the same folder), a fresh database per test, all removed at
the end. Debian's binaries are found in /usr/lib/postgresql/*/bin; run as root, the server
runs as the `postgres` user (PostgreSQL refuses root), in a folder given to it.

Connections use TCP and a password (scram-sha-256), as a real deployment does, so the tests
see the password in the URL and can check that digest never prints it.

The tests' server skips fsync (nothing in it needs to outlive a crash of the machine);
`durable=True` keeps PostgreSQL's defaults, for the benches, which measure a normal server.
stop_server() and start_server() stop and restart it on the same port with its data, for the
tests of a database lost mid-run.
"""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import psycopg

SUPERUSER = "postgres"


def binaries() -> Path | None:
    """The newest PostgreSQL's bin folder, or None if there is none."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parent.parent.name) if
                   Path(p).parent.parent.name.isdigit() else 0)
    return Path(found[-1]).parent if found else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgServer:
    """One server; `url(db)` names a database on it with the superuser's password."""

    def __init__(self, bin_dir: Path, *, durable: bool = False) -> None:
        self.bin = bin_dir
        self.durable = durable
        self.base = Path(tempfile.mkdtemp(prefix="digest-pg-"))
        self.data = self.base / "data"
        self.socket_dir = self.base / "sock"
        self.socket_dir.mkdir()
        self.password = "pw-" + secrets.token_hex(12)
        self.port = free_port()
        self._as_root = os.geteuid() == 0
        self._count = 0

    def _run(self, *args: str) -> None:
        command = [*(["runuser", "-u", "postgres", "--"] if self._as_root else []), *args]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120,
                              cwd=self.base)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(args[:2])} failed: {done.stdout}{done.stderr}")

    def start(self) -> PgServer:
        pwfile = self.base / "pw"
        pwfile.write_text(self.password + "\n")
        if self._as_root:
            shutil.chown(self.base, "postgres", "postgres")
            shutil.chown(self.socket_dir, "postgres", "postgres")
            shutil.chown(pwfile, "postgres", "postgres")
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", SUPERUSER,
                  "-E", "UTF8", "--locale=C", "--auth-local=trust",
                  "--auth-host=scram-sha-256", f"--pwfile={pwfile}", "--no-sync")
        self.start_server()
        return self

    def start_server(self) -> None:
        """Start the initialised server (again) on its port."""
        options = f"-p {self.port} -k {self.socket_dir} -c listen_addresses=127.0.0.1"
        if not self.durable:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l",
                  str(self.base / "log"), "-w", "-t", "60", "-o", options, "start")

    def stop_server(self, mode: str = "fast") -> None:
        """Stop the server, keeping its data: `fast` closes every connection, `immediate`
        kills it as a crash would."""
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def url(self, database: str = "postgres") -> str:
        return (f"postgresql://{SUPERUSER}:{self.password}@127.0.0.1:{self.port}/"
                f"{database}")

    def create_database(self) -> str:
        """A new, empty database; its URL."""
        self._count += 1
        name = f"t{self._count}_{secrets.token_hex(3)}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def stop(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                self.stop_server("immediate")
        finally:
            shutil.rmtree(self.base, ignore_errors=True)

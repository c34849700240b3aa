"""A real IMAP server for tests: Debian's dovecot (package dovecot-imapd), started in a temp
folder on free ports of 127.0.0.1, with TLS from a throwaway trustme CA:

    with ImapServer(users={"bounces": "s3cret"}) as server:
        uid = server.append("bounces", b"From: ...")          # deliver a message
        ...read imaps://127.0.0.1:server.port, trusting server.ca_file...
        assert server.flags("bounces")[uid] == {"\\\\Seen"}

`port` is implicit TLS (imaps), `starttls_port` plain IMAP that requires STARTTLS before
login. Users live in a passwd-file; their mail in Maildirs under the temp folder.

Run as an ordinary user, dovecot's internal and login processes run as that user. Run as
root (CI), dovecot keeps its packaged users for those (it refuses to run the login process
as root) and the mail user is `nobody` (it refuses mail access as UID 0), so the folders are
made reachable for them. A missing dovecot fails the test, naming the package to install.
"""

from __future__ import annotations

import grp
import imaplib
import os
import pwd
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

import trustme

HOST = "127.0.0.1"
PACKAGE = "dovecot-imapd"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def find_dovecot() -> str:
    """The dovecot binary; an AssertionError naming the package if it is not installed."""
    path = os.environ.get("PATH", "") + os.pathsep + "/usr/sbin:/sbin"
    found = shutil.which("dovecot", path=path)
    assert found, (f"dovecot is not installed: the IMAP tests need a real server; install "
                   f"Debian's {PACKAGE} (`apt-get install -y {PACKAGE}`; .ci/run does)")
    return found


class ImapServer:
    """dovecot in its own temp folder; see the module doc."""

    def __init__(self, *, users: dict[str, str] | None = None,
                 cert_names: tuple[str, ...] = ("localhost", HOST)) -> None:
        self.binary = find_dovecot()
        self.users = users or {"bounces": "s3cret"}
        self.host = HOST
        self._dir = tempfile.TemporaryDirectory(prefix="imap-server-")
        self.root = Path(self._dir.name)
        self.ca = trustme.CA()
        self.ca_file = self.root / "ca.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_file))
        issued = self.ca.issue_cert(*cert_names)
        issued.private_key_and_cert_chain_pem.write_to_path(str(self.root / "server.pem"))
        self.port = 0
        self.starttls_port = 0
        self._process: subprocess.Popen[bytes] | None = None

    def _write_config(self) -> Path:
        root = self.root
        as_root = os.geteuid() == 0
        mail_user = pwd.getpwnam("nobody") if as_root else pwd.getpwuid(os.geteuid())
        mail = root / "mail"
        mail.mkdir(exist_ok=True)
        if as_root:  # dovecot's own users must reach base_dir; `nobody` owns the mail
            os.chmod(root, 0o755)
            os.chown(mail, mail_user.pw_uid, mail_user.pw_gid)
        (root / "passwd").write_text("".join(
            f"{name}:{{PLAIN}}{password}:{mail_user.pw_uid}:{mail_user.pw_gid}::"
            f"{mail / name}::\n" for name, password in self.users.items()))
        users = "" if as_root else (
            f"default_internal_user = {mail_user.pw_name}\n"
            f"default_internal_group = {grp.getgrgid(mail_user.pw_gid).gr_name}\n"
            f"default_login_user = {mail_user.pw_name}\n")
        config = root / "dovecot.conf"
        config.write_text(f"""\
protocols = imap
listen = {HOST}
base_dir = {root / "run"}
state_dir = {root / "state"}
instance_name = imap-server-{os.getpid()}-{self.port}
log_path = {root / "dovecot.log"}
ssl = required
ssl_cert = <{root / "server.pem"}
ssl_key = <{root / "server.pem"}
disable_plaintext_auth = yes
first_valid_uid = 1
mail_location = maildir:~/Maildir
{users}passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root / "passwd"}
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {root / "passwd"}
}}
service anvil {{
  chroot =
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    port = {self.starttls_port}
  }}
  inet_listener imaps {{
    port = {self.port}
    ssl = yes
  }}
}}
""")
        return config

    def start(self) -> ImapServer:
        for _attempt in range(3):  # another process may take a free port before dovecot
            self.port, self.starttls_port = _free_port(), _free_port()
            config = self._write_config()
            self._process = subprocess.Popen([self.binary, "-F", "-c", str(config)],
                                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            if self._wait_until_listening():
                return self
            self._halt()
        raise AssertionError(f"dovecot did not start:\n{self.log()}")

    def _wait_until_listening(self) -> bool:
        assert self._process is not None
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                return False
            try:
                with socket.create_connection((HOST, self.port), timeout=1), \
                        socket.create_connection((HOST, self.starttls_port), timeout=1):
                    return True
            except OSError:
                time.sleep(0.05)
        return False

    def log(self) -> str:
        """What dovecot wrote: its log file, then its own output if it stopped."""
        path = self.root / "dovecot.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        process = self._process
        if process is not None and process.poll() is not None and process.stdout:
            text += process.stdout.read().decode(errors="replace")
        return text

    def _halt(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout:
            process.stdout.close()

    def stop(self) -> None:
        self._halt()
        self._dir.cleanup()

    def __enter__(self) -> ImapServer:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.stop()

    # what a test does as another client of the server -------------------------------

    def client(self, user: str, folder: str = "INBOX") -> imaplib.IMAP4_SSL:
        """A logged-in connection with *folder* selected (the caller logs out)."""
        context = ssl.create_default_context(cafile=str(self.ca_file))
        imap = imaplib.IMAP4_SSL(self.host, self.port, ssl_context=context, timeout=10)
        imap.login(user, self.users[user])
        if folder != "INBOX":
            imap.create(folder)
        assert imap.select(folder)[0] == "OK"
        return imap

    def append(self, user: str, message: bytes, *, folder: str = "INBOX",
               flags: str = "") -> int:
        """Deliver *message* to *user*'s *folder* (created if missing); its UID."""
        imap = self.client(user, folder)
        try:
            status, data = imap.append(folder, f"({flags})" if flags else None, None, message)
            assert status == "OK", data
            text = data[0].decode() if isinstance(data[0], bytes) else str(data[0])
            return int(text.split("APPENDUID ")[1].split()[1].rstrip("]"))
        finally:
            imap.logout()

    def flags(self, user: str, folder: str = "INBOX") -> dict[int, set[str]]:
        """Each message's flags by UID (\\Recent left out: it depends on who looked first)."""
        context = ssl.create_default_context(cafile=str(self.ca_file))
        imap = imaplib.IMAP4_SSL(self.host, self.port, ssl_context=context, timeout=10)
        try:
            imap.login(user, self.users[user])
            assert imap.select(folder, readonly=True)[0] == "OK"
            status, data = imap.uid("FETCH", "1:*", "(FLAGS)")
            assert status == "OK", data
            found: dict[int, set[str]] = {}
            for item in data:
                if not isinstance(item, bytes):
                    continue
                uid = int(item.split(b"UID ")[1].split()[0].rstrip(b")"))
                flags = item.split(b"FLAGS (")[1].split(b")")[0].decode().split()
                found[uid] = set(flags) - {"\\Recent"}
            return found
        finally:
            imap.logout()

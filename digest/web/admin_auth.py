"""Who may see the owner's dashboard (/admin/): the password, sessions, CSRF tokens and the
login rate limit.

The password is checked against an argon2 hash read from the environment variable the config
names (argon2-cffi verifies in constant time). A login makes a NEW random session id
(a cookie sent before the login never becomes valid: no fixation), kept server-side in the
shared state as a note under the SHA-256 of the id (so every web node agrees, and the
state never holds the id itself); the cookie carries the id with an HMAC of it. Logging out
ends the session on the server, so a copied cookie dies with it. Each session's CSRF token
is an HMAC of its id: per session, never stored, compared in constant time. The login form,
before any session, has its own: a random nonce in a short-lived cookie and its HMAC in the
form.

A stranger guessing from many addresses fills the overall login limit, which would lock the
owner out too; so a correct login also leaves a device cookie (a random id and its HMAC, for
400 days), and a login from a browser holding one is counted against that device's own
limit instead of the address's and the overall one (OWASP's "device cookies"). Only a right
password mints one, and it lets its holder only try passwords, not skip them.

Behind a reverse proxy that authenticates the owner, `admin: trust_proxy_header:` names the
header it sets (X-Forwarded-User): then the header is trusted instead of the password. That
is only safe when every request passes through a proxy that strips the header from what
clients send; the option is off by default.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from ..config import AdminSettings
from ..state.interface import SharedState

COOKIE = "digest_admin"
LOGIN_COOKIE = "digest_admin_login"  # the login form's own CSRF nonce, before any session
DEVICE_COOKIE = "digest_admin_device"  # a browser that logged in before: its own throttle
DEVICE_DAYS = 400  # the longest lifetime browsers keep a cookie for
ADMIN_NOTES = "admin-"  # the dashboard's own notes in the shared state (not for status)
NOTE_PREFIX = ADMIN_NOTES + "session:"  # the shared state's notes under this are sessions
MAX_PASSWORD = 1024  # characters of a password checked; argon2 takes longer ones, we do not


@dataclass(frozen=True)
class Session:
    """Someone logged in: their user name and the CSRF token every form of theirs carries."""

    user: str
    csrf: str
    sid: str | None  # None: authenticated by the proxy's header, no session of ours


class PasswordHasher:
    """argon2id with argon2-cffi's defaults (RFC 9106's second recommendation)."""

    def __init__(self) -> None:
        import argon2  # imported when a dashboard is configured, not by every command

        self._hasher = argon2.PasswordHasher()
        self._errors: tuple[type[Exception], ...] = (argon2.exceptions.VerificationError,
                                                     argon2.exceptions.InvalidHashError)

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, hashed: str, password: str) -> bool:
        try:
            return bool(self._hasher.verify(hashed, password[:MAX_PASSWORD]))
        except self._errors:
            return False


def _mac(secret: bytes, purpose: str, value: str) -> str:
    return hmac.new(secret, f"admin-{purpose}\0{value}".encode(), hashlib.sha256).hexdigest()


def _signed(secret: bytes, purpose: str, cookie: str | None) -> str | None:
    """The value of a cookie made as `value.HMAC(value)` for *purpose*; None if absent,
    oversized or not ours."""
    if not cookie or len(cookie) > 200:
        return None
    value, _, mac = cookie.partition(".")
    if not value or not hmac.compare_digest(mac.encode(),
                                            _mac(secret, purpose, value).encode()):
        return None
    return value


def _note_key(sid: str) -> str:
    return NOTE_PREFIX + hashlib.sha256(sid.encode()).hexdigest()[:40]


class Auth:
    """The dashboard's gate for one config (a reload makes a new one)."""

    def __init__(self, settings: AdminSettings, secret: bytes,
                 state: Callable[[], SharedState], now: Callable[[], datetime]) -> None:
        self.settings = settings
        self.secret = secret
        self.state = state
        self.now = now
        self.hasher = PasswordHasher()

    # the password ------------------------------------------------------------------------
    def password_hash(self) -> str | None:
        """The hash in the named variable; None when it is unset (nobody can log in)."""
        found = os.environ.get(self.settings.password_hash_env, "").strip()
        return found or None

    def check_password(self, user: str, password: str) -> bool:
        """Both compared in constant time; the hash is verified even for a wrong user name,
        so the time taken does not tell which of the two was wrong."""
        hashed = self.password_hash()
        if hashed is None:
            return False
        right_user = hmac.compare_digest(user.encode()[:200], self.settings.user.encode())
        right_password = self.hasher.verify(hashed, password)
        return right_user and right_password

    def allowed(self, ip: str, device: str | None = None) -> bool:
        """Count one login attempt from *ip*; False once it or everyone together made too
        many in the window (counted in the shared state: every web node agrees). From a
        browser with a genuine device cookie (*device*), only that device's attempts count,
        so strangers filling the overall limit do not lock its owner out."""
        s = self.settings
        window = s.login_window_minutes * 60
        now = self.now()
        state = self.state()
        known = self._device(device)
        if known is not None:
            bucket = "admin-login-device:" + hashlib.sha256(known.encode()).hexdigest()[:32]
            return state.hit(bucket, s.logins_per_ip, window, now)
        return (state.hit(f"admin-login:{ip}", s.logins_per_ip, window, now)
                and state.hit("admin-login", s.logins_overall, window, now))

    def device_cookie(self, device: str | None) -> str:
        """The device cookie to (re)set after a right password: the browser's own if it
        holds a genuine one, else a new one."""
        known = self._device(device)
        if known is None:
            known = secrets.token_urlsafe(18)
        return f"{known}.{_mac(self.secret, 'device', known)}"

    def _device(self, cookie: str | None) -> str | None:
        return _signed(self.secret, "device", cookie)

    # sessions ----------------------------------------------------------------------------
    def login(self) -> str:
        """A new session; the cookie's value. Never reuses an id a client sent."""
        sid = secrets.token_urlsafe(32)
        expires = self.now().astimezone(UTC) + timedelta(hours=self.settings.session_hours)
        state = self.state()
        state.note(_note_key(sid), {"user": self.settings.user,
                                    "expires": expires.isoformat()})
        # each login leaves a note; those of sessions over are forgotten here, so that the
        # notes (read whole at every request) do not grow with every login ever made
        state.drop_notes([key for key, data in state.notes().items()
                          if key.startswith(NOTE_PREFIX) and not self._alive(data)])
        return f"{sid}.{_mac(self.secret, 'session', sid)}"

    def session(self, cookie: str | None, proxy_user: str | None) -> Session | None:
        """Who the request comes from; None when nobody is logged in."""
        if self.settings.trust_proxy_header is not None:
            if not proxy_user:
                return None
            user = proxy_user.strip()[:200]
            return Session(user, _mac(self.secret, "csrf-proxy", user), None)
        sid = self._sid(cookie)
        if sid is None:
            return None
        data = self._stored(sid)
        if data is None:
            return None
        return Session(str(data["user"]), _mac(self.secret, "csrf", sid), sid)

    def logout(self, session: Session) -> None:
        """End *session* on the server: its cookie is worth nothing from now on."""
        if session.sid is not None:
            self.state().drop_notes([_note_key(session.sid)])

    def login_nonce(self) -> str:
        """A fresh nonce for the login form's cookie (no session exists yet)."""
        return secrets.token_urlsafe(16)

    def login_token(self, nonce: str) -> str:
        """The login form's CSRF token: an HMAC of the nonce in its cookie (double submit,
        signed, so a cookie planted by a sibling host is not enough)."""
        return _mac(self.secret, "csrf-login", nonce)

    def login_token_ok(self, nonce: str | None, token: object) -> bool:
        if not nonce or len(nonce) > 100 or not isinstance(token, str):
            return False
        return hmac.compare_digest(token.encode()[:200], self.login_token(nonce).encode())

    def csrf_ok(self, session: Session, token: object) -> bool:
        return isinstance(token, str) and hmac.compare_digest(token.encode()[:200],
                                                              session.csrf.encode())

    def _sid(self, cookie: str | None) -> str | None:
        return _signed(self.secret, "session", cookie)

    def _stored(self, sid: str) -> dict[str, Any] | None:
        data = self.state().notes().get(_note_key(sid))
        return data if data is not None and self._alive(data) else None

    def _alive(self, data: dict[str, Any]) -> bool:
        """Whether a session's note is of one not ended (an older digest marked a logout
        with 'ended') and not expired."""
        if data.get("ended") or "expires" not in data:
            return False
        try:
            expires = datetime.fromisoformat(str(data["expires"]))
        except ValueError:
            return False
        return expires > self.now()

"""A site with the owner's dashboard configured, and logging in to it over real HTTP: what
tests/test_admin_security.py and tests/test_admin_browser.py share."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import yaml
from conftest import build_site
from helpers import MONDAY, digest_site

from digest.web.admin_auth import COOKIE, DEVICE_COOKIE, LOGIN_COOKIE, PasswordHasher

PASSWORD = "correct horse battery staple"
HASH_ENV = "DIGEST_ADMIN_PASSWORD_HASH"
OWNER = "owner@example.org"
_HASH: list[str] = []


def password_hash() -> str:
    """The hash of PASSWORD, made once per test process (argon2 takes a while on purpose)."""
    if not _HASH:
        _HASH.append(PasswordHasher().hash(PASSWORD))
    return _HASH[0]


def admin_site(tmp_path: Path, *, base_url: str = "https://jobs.example.org/digest",
               smtp: dict[str, Any] | None = None, **admin: Any) -> Path:
    """The test site (helpers.digest_site) with `admin:` (and *admin* in it), built;
    *smtp*: an `smtp:` section (else mail goes to the outbox)."""
    cfg = digest_site(tmp_path)
    data = yaml.safe_load(cfg.read_text(encoding="utf-8"))
    data["web"]["base_url"] = base_url
    if smtp is not None:
        data["smtp"] = smtp
    data["admin"] = {"test_address": OWNER, **admin}
    cfg.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    build_site(cfg, now=MONDAY)
    return cfg


def cookie_of(answer: httpx.Response, name: str) -> str | None:
    """The cookie *name* a response sets (read from the header: the test site's cookies are
    Secure, and httpx keeps Secure cookies away from http://)."""
    for header in answer.headers.get_list("set-cookie"):
        found = re.match(rf"{name}=([^;]*)", header)
        if found and found[1] and found[1] != '""':
            return found[1]
    return None


def session_cookie(answer: httpx.Response) -> str | None:
    return cookie_of(answer, COOKIE)


def login(client: httpx.Client, password: str = PASSWORD, user: str = "admin",
          cookie: str | None = None, csrf: bool = True,
          device: str | None = None) -> httpx.Response:
    """Log in as a browser does: the form (its nonce cookie and token), then the POST.
    *cookie*: a session cookie sent along (as if planted); *csrf*: False sends neither;
    *device*: the device cookie a browser keeps from an earlier login."""
    form = client.get("/admin/login")
    nonce = cookie_of(form, LOGIN_COOKIE)
    cookies = [f"{COOKIE}={cookie}"] if cookie else []
    if device:
        cookies.append(f"{DEVICE_COOKIE}={device}")
    data = {"user": user, "password": password}
    if csrf:
        cookies.append(f"{LOGIN_COOKIE}={nonce}")
        data["csrf"] = csrf_of(form.text)
    return client.post("/admin/login", data=data,
                       headers={"Cookie": "; ".join(cookies)} if cookies else {})


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, "no CSRF token in the page"
    return found[1]

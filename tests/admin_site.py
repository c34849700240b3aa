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

from digest.web.admin_auth import COOKIE, PasswordHasher

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
               **admin: Any) -> Path:
    """The test site (helpers.digest_site) with `admin:` (and *admin* in it), built."""
    cfg = digest_site(tmp_path)
    data = yaml.safe_load(cfg.read_text(encoding="utf-8"))
    data["web"]["base_url"] = base_url
    data["admin"] = {"test_address": OWNER, **admin}
    cfg.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    build_site(cfg, now=MONDAY)
    return cfg


def session_cookie(answer: httpx.Response) -> str | None:
    """The session cookie a response sets (read from the header: the test site's cookie is
    Secure, and httpx keeps Secure cookies away from http://)."""
    for header in answer.headers.get_list("set-cookie"):
        found = re.match(rf"{COOKIE}=([^;]*)", header)
        if found and found[1] and found[1] != '""':
            return found[1]
    return None


def login(client: httpx.Client, password: str = PASSWORD, user: str = "admin",
          cookie: str | None = None) -> httpx.Response:
    headers = {"Cookie": f"{COOKIE}={cookie}"} if cookie else {}
    return client.post("/admin/login", data={"user": user, "password": password},
                       headers=headers)


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, "no CSRF token in the page"
    return found[1]

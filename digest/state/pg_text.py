"""Text as PostgreSQL can keep it: its `text` type cannot hold NUL, which SQLite's can.

Much of what the shared state keeps comes from strangers (a bounce's diagnostic, a sign-up's
name, a webhook's reason) and may carry a NUL; refused by the server, one such value would
stop a whole bounce pass or answer a sign-up with an error. Every string a PostgresState
sends is dumped with NUL replaced by U+FFFD (what a decoder puts for a character it cannot
keep), the same for writes and for the lookups that find them again. The one value whose
NUL matters, a post's twin key, is sent as bytes (bytea) and is not touched.
"""

from __future__ import annotations

import psycopg
from psycopg.types.string import StrDumper, StrDumperUnknown

REPLACEMENT = "\ufffd"


class _NulFreeUnknown(StrDumperUnknown):
    def dump(self, obj: str) -> bytes:
        return obj.replace("\0", REPLACEMENT).encode(self._encoding)


class _NulFreeText(StrDumper):
    def dump(self, obj: str) -> bytes:
        return obj.replace("\0", REPLACEMENT).encode(self._encoding)


def nul_free(conn: psycopg.Connection[object]) -> None:
    """Make *conn* send every str without NUL (registered last: its defaults)."""
    conn.adapters.register_dumper(str, _NulFreeText)
    conn.adapters.register_dumper(str, _NulFreeUnknown)

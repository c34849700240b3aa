"""Import records (imports.py) put into the shared state: members to add, addresses to
suppress. Running it twice with the same records changes nothing the second time.

The rules, each so that an import can never mail someone who left:
- a suppression always wins: a "subscribed" row for a suppressed address leaves it
  suppressed (counted as kept suppressed), whatever the export says;
- an unsubscribed or cleaned row suppresses the address, with Mailchimp's reason, and takes
  away a member an earlier import added;
- an address in the owner's subscribers file is left to the file (not made a member too):
  removing someone from the file must stop their mail, which a hidden member copy would not;
- someone who signed up on the web keeps what they chose there: a row for them changes
  nothing.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime

from ..state.interface import Member, SharedState
from .imports import Record


@dataclass
class Applied:
    """What an import did, row by row; rejected rows are counted by the caller."""

    new: int = 0
    updated: int = 0
    unchanged: int = 0
    suppressed: int = 0
    kept_suppressed: int = 0  # subscribed in the file, but on the suppression list
    listed: int = 0  # in the subscribers file already: left to it


BATCH = 1000  # rows per commit: one fsync each, not one a row (100,000 rows took 30 s)


def apply_import(state: SharedState, records: Iterable[Record], *, listed: Collection[str],
                 now: datetime) -> Applied:
    """Put *records* into *state*; *listed*: the keys in the owner's subscribers file.
    Committed every BATCH rows, so an import stopped half-way keeps what it did."""
    applied = Applied()
    batch: list[Record] = []
    for record in records:
        batch.append(record)
        if len(batch) == BATCH:
            _apply(state, batch, listed, now, applied)
            batch.clear()
    _apply(state, batch, listed, now, applied)
    return applied


def _apply(state: SharedState, records: list[Record], listed: Collection[str], now: datetime,
           applied: Applied) -> None:
    with state.batch():
        for record in records:
            _one(state, record, listed, now, applied)


def _one(state: SharedState, record: Record, listed: Collection[str], now: datetime,
         applied: Applied) -> None:
    """One row by the rules above."""
    key = record.key
    if record.status != "subscribed":
        added = state.suppress_with(key, record.reason, record.evidence)
        member = state.member(key)
        removed = member is not None and member.source == "import" \
            and state.remove_member(key)
        if added or removed:
            applied.suppressed += 1
        else:
            applied.unchanged += 1
    elif state.suppression(key) is not None:
        applied.kept_suppressed += 1
    elif key in listed:
        applied.listed += 1
    else:
        member = state.member(key)
        if member is not None and member.source == "signup":
            applied.unchanged += 1
            return
        done = state.put_member(Member(key, record.email, record.name, record.tags,
                                       "import", now))
        if done == "new":
            applied.new += 1
        elif done == "updated":
            applied.updated += 1
        else:
            applied.unchanged += 1

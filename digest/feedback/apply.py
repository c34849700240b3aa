"""Feedback into suppressions, by one set of rules whatever it came from (feedback/events.py).

- A complaint, a hard bounce or an unsubscribe reply suppresses the address at once.
- A soft bounce suppresses it once the last *soft_limit* digests sent to it each soft-bounced
  (a full mailbox for three weeks running is a dead mailbox; one bad day is not).
- A 5xx reply at SMTP time is a bounce too (from_runs reads them from the send log), hard or
  soft by the same rule as a DSN (events.bounce_kind): a 5.7.x refusal is the receiver's
  policy about us (reputation, PTR, DMARC), not a dead address, and 5.2.2 or "mailbox full"
  is a live one, so they count as soft; suppressing every Gmail reader after one bad day
  would lose a list.

Every report is recorded once by its ident, so reading the same mailbox twice, or a relay
posting its webhook again, changes nothing. Feedback about an address that is on no list is
still recorded and suppressed: a bounce for it means the next list that adds it bounces too.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from ..state.interface import Bounce, Run, SharedState
from .events import ENHANCED, EVIDENCE_CHARS, Feedback, bounce_kind

REASONS = {"hard": "hard bounce", "complaint": "complaint (marked as spam)",
           "unsubscribe": "unsubscribed by reply to the List-Unsubscribe address"}


@dataclass
class Applied:
    """What one batch of feedback did, for the command's summary and the daemon's log."""

    recorded: dict[str, int] = field(default_factory=dict)  # kind → new reports
    repeated: int = 0  # reports already recorded
    suppressed: list[tuple[str, str]] = field(default_factory=list)  # (address, reason)

    def add(self, other: Applied) -> None:
        for kind, n in other.recorded.items():
            self.recorded[kind] = self.recorded.get(kind, 0) + n
        self.repeated += other.repeated
        self.suppressed += other.suppressed

    def summary(self) -> str:
        kinds = ", ".join(f"{n} {kind}" for kind, n in sorted(self.recorded.items())) or "none"
        return (f"feedback recorded: {kinds}; {self.repeated} already known; "
                f"{len(self.suppressed)} address(es) suppressed")


def apply(state: SharedState, items: Iterable[Feedback], *, soft_limit: int,
          now: datetime) -> Applied:
    """Record each report and suppress what the rules say; one report at a time, each its
    own transaction, so a failure halfway keeps what was done."""
    applied = Applied()
    for item in items:
        key = item.address.strip().lower()
        evidence = item.evidence[:EVIDENCE_CHARS]
        bounce = Bounce(key, item.kind, now, item.origin, item.ident, item.status,
                        item.diagnostic[:EVIDENCE_CHARS], item.run, evidence)
        if not state.record_bounce(bounce):
            applied.repeated += 1
            continue
        applied.recorded[item.kind] = applied.recorded.get(item.kind, 0) + 1
        reason = REASONS.get(item.kind)
        if reason is None and soft_in_a_row(state, key, soft_limit):
            reason = f"soft bounces in {soft_limit} digests in a row"
        if reason is not None:
            proof = "; ".join(p for p in (item.status, item.diagnostic, evidence) if p)
            if state.suppress_with(key, reason, proof[:EVIDENCE_CHARS]):
                applied.suppressed.append((key, reason))
    return applied


def soft_in_a_row(state: SharedState, key: str, limit: int) -> bool:
    """Whether each of the last *limit* digests that went to *key* soft-bounced (or was
    still deferred at the end); a report that names no digest counts for the latest one
    sent before it arrived."""
    sent = [d for d in state.deliveries_of(key, limit) if d.state in ("sent", "deferred",
                                                                       "failed")]
    if len(sent) < limit:
        return False
    bounced: set[str] = set()
    for bounce in state.bounces(key, limit=10 * limit):
        if bounce.kind != "soft":
            continue
        if bounce.run is not None:
            bounced.add(bounce.run)
        else:
            before = [d.run for d in sent if d.updated_at is None or d.updated_at <= bounce.at]
            if before:
                bounced.add(before[0])
    return all(d.run in bounced or d.state == "deferred" for d in sent)


def from_runs(state: SharedState, runs: Iterable[Run], *, soft_limit: int,
              now: datetime) -> Applied:
    """The 5xx replies at SMTP time in *runs* as hard bounces (idempotent: one ident per
    run and address)."""
    items = []
    for run in runs:
        for d in state.deliveries(run, failed=True):
            if d.state != "failed" or d.code is None or not 500 <= d.code < 600:
                continue
            reply = d.reply or ""
            status = ENHANCED.search(reply)
            items.append(Feedback(
                bounce_kind(status[0] if status else None, reply, permanent=True), d.email,
                "smtp",
                f"smtp|{run.slug}|{d.key}", status=status[0] if status else None,
                diagnostic=reply[:EVIDENCE_CHARS], run=run.slug,
                evidence=f"SMTP {d.code} at send time"))
    return apply(state, items, soft_limit=soft_limit, now=now)

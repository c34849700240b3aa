"""`digest status`: what the daemon is doing and has done, readable while it runs.

The shared state is opened read-only (with SQLite, WAL lets a reader in beside the daemon's
writes, and a read-only connection cannot write by mistake). The send log says which digests
went out; the shared schedule says when the next one is due; what only the daemon knows (its
last feed build, the problems it found in the posts and the subscribers file) it notes with
`SharedState.note()`, one JSON document per key.
"""
from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ..config import Config
from ..delivery.control import describe
from ..state.interface import Bounce, Node, Run, RunControl, SharedState
from ..state.locks import DAEMON_LOCK, holder
from ..state.open import has_state, left_behind, left_behind_line, open_state
from ..state.sendlog import counts_text
from ..util.clock import Clock
from ..web.admin_auth import ADMIN_NOTES

# Gmail's bulk-sender rules: complaints (spam reports) must stay under 0.3% of the mail sent,
# and Google recommends keeping them under 0.1%
COMPLAINT_LIMIT = 0.003
COMPLAINT_CEILING = 0.001
RECENT_DAYS = 7  # "confirmed lately" for sign-ups
FEEDBACK_KINDS = ("hard", "soft", "complaint", "unsubscribe")


@dataclass(frozen=True)
class RunStatus:
    run: Run
    counts: dict[str, int]
    failures: list[tuple[str, str, int | None, str]]
    feedback: dict[str, int] = field(default_factory=dict)  # bounces etc. naming this run
    control: RunControl | None = None  # the owner's last pause, resume or cancel, if any

    @property
    def held(self) -> str | None:
        """'paused by the owner' or 'cancelled', with who, when and why; else None."""
        control = self.control
        if control is None:
            return None
        if control.state == "cancelled":
            return f"cancelled {describe(control)}"
        if control.owner_paused:
            return (f"paused by the owner {describe(control)}; no send resumes it: "
                    f"`digest resume {self.run.slug}` does")
        return None

    @property
    def complaint_rate(self) -> float | None:
        """Complaints about this digest per message it sent; None if it sent none."""
        sent = self.counts.get("sent", 0)
        return self.feedback.get("complaint", 0) / sent if sent else None

    @property
    def complaint_level(self) -> str | None:
        """'over' Gmail's limit, 'high' (over Google's recommended ceiling), 'ok', or None."""
        rate = self.complaint_rate
        if rate is None:
            return None
        return "over" if rate >= COMPLAINT_LIMIT else \
            "high" if rate >= COMPLAINT_CEILING else "ok"


@dataclass(frozen=True)
class ListStatus:
    """Who is on the list beside the file, and the feedback since the oldest run shown."""

    pending: int  # sign-ups waiting for their confirmation
    members: dict[str, int]  # by source: signup, import
    confirmed_lately: int  # sign-ups confirmed in the last RECENT_DAYS days
    suppressed: int
    feedback: dict[str, int]  # by kind, since *since*
    since: datetime | None  # the oldest run shown was due then; None: no runs

    def to_json(self) -> dict[str, Any]:
        return {"pending_signups": self.pending, "members": self.members,
                f"signups_confirmed_last_{RECENT_DAYS}_days": self.confirmed_lately,
                "suppressed": self.suppressed,
                "feedback": {**self.feedback,
                             "since": self.since.isoformat() if self.since else None}}


@dataclass(frozen=True)
class NextDigest:
    at: datetime | None  # as the daemon's clock shows it, in the site's timezone; None: paused
    schedule: str
    late: timedelta | None  # how overdue it is (the daemon is not running), if it is


@dataclass(frozen=True)
class NodeStatus:
    """A sending process or daemon by its heartbeat (delivery/nodes.py)."""

    node: Node
    silent: timedelta  # since its last heartbeat

    @property
    def gone(self) -> bool:
        """Silent longer than its lease: killed or lost; its leases are others' now."""
        return self.node.gone(self.node.beat_at + self.silent)

    def to_json(self) -> dict[str, Any]:
        n = self.node
        return {"node": n.node, "role": n.role, "started_at": n.started_at.isoformat(),
                "heartbeat_age_seconds": round(self.silent.total_seconds(), 1),
                "run": n.run, "leased": n.leased, "lease_seconds": n.lease_seconds,
                "gone": self.gone}


@dataclass(frozen=True)
class Status:
    state: Path
    daemon_pid: int | None  # the running daemon's PID; None if none runs
    nodes: list[NodeStatus]  # every sending process and daemon that beats, or died beating
    next_digest: NextDigest | None
    runs: list[RunStatus] = field(default_factory=list)
    notes: dict[str, dict[str, Any]] = field(default_factory=dict)
    lists: ListStatus | None = None
    sources: list[dict[str, Any]] = field(default_factory=list)  # feed sources (poll.py)
    # table -> rows that state.sqlite3 holds and the PostgreSQL database lacks (copy-state)
    left_behind: dict[str, int] | None = None

    def to_json(self) -> dict[str, Any]:
        nd = self.next_digest
        found: dict[str, Any] = {
            "state": str(self.state), "daemon_pid": self.daemon_pid,
            "nodes": [n.to_json() for n in self.nodes],
            "next_digest": None if nd is None else {
                "at": nd.at.isoformat() if nd.at else None, "schedule": nd.schedule,
                "late_seconds": nd.late.total_seconds() if nd.late else None},
            "digests": [{
                "slug": r.run.slug, "period_start": r.run.period_start.isoformat(),
                "period_end": r.run.period_end.isoformat(), "state": r.run.state,
                "counts": r.counts,
                "failures": [{"email": e, "state": s, "code": c, "reply": m}
                             for e, s, c, m in r.failures],
                "feedback": {**r.feedback, "complaint_rate": r.complaint_rate,
                             "complaint_level": r.complaint_level},
                "control": None if r.control is None or r.control.action is None else {
                    "owner_paused": r.control.owner_paused, "action": r.control.action,
                    "by": r.control.by, "reason": r.control.reason,
                    "at": r.control.at.isoformat() if r.control.at else None},
            } for r in self.runs],
            **self.notes,
            "list": self.lists.to_json() if self.lists else None,
        }
        if self.sources:
            found["sources"] = self.sources
        if self.left_behind:
            found["left_behind"] = self.left_behind
        return found


def _alive(pid: int | None) -> int | None:
    if pid is None:
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # it exists, as another user
    return pid


def _next_digest(state: SharedState, config: Config,
                 daemon: dict[str, Any]) -> NextDigest | None:
    """From the shared schedule's next run time only (see state/sqlite.py for why not the
    job itself). So the schedule shown is the config's (the daemon puts it in the job at
    every start and reload) and the clock offset (tests) is the one the daemon noted when
    it started."""
    from .schedule import DIGEST_JOB

    found = state.next_run(DIGEST_JOB)
    if found is None:
        return None
    offset = daemon.get("clock_offset_seconds")
    shift = timedelta(seconds=offset) if isinstance(offset, int | float) else timedelta(0)
    schedule = f"'{config.digest.schedule}', {config.site.timezone}"
    if found.at is None:
        return NextDigest(None, schedule, None)
    real = found.at
    late = datetime.now(UTC) - real
    return NextDigest(Clock(shift).shown(real, config.site.tz), schedule,
                      late if late > timedelta(0) else None)


def read_status(config: Config, *, runs: int = 5) -> Status:
    """Everything `digest status` shows; writes nothing, anywhere."""
    state = config.state
    daemon_pid = _alive(holder(state / DAEMON_LOCK))
    sources = _sources(config)
    behind = left_behind(config)
    if not has_state(config):
        return Status(state, daemon_pid, [], None, sources=sources, left_behind=behind)
    shared = open_state(config, read_only=True)
    try:
        notes = {key: data for key, data in shared.notes().items()
                 if not key.startswith(ADMIN_NOTES)}  # the dashboard's sessions, its records
        last = shared.runs(runs)
        since = last[-1].period_end if last else None  # sent then: the feedback follows
        bounces = shared.bounces(since=since, limit=10_000_000) if since else []
        recent = [RunStatus(run, shared.counts(run), shared.failures(run, limit=5),
                            _by_kind(b for b in bounces if b.run == run.slug),
                            shared.run_control(run))
                  for run in last]
        now = datetime.now(UTC)
        nodes = [NodeStatus(node, max(now - node.beat_at, timedelta(0)))
                 for node in shared.nodes()]
        return Status(state, daemon_pid, nodes,
                      _next_digest(shared, config, notes.get("daemon", {})), recent, notes,
                      _list_status(shared, _by_kind(bounces), since), sources, behind)
    finally:
        shared.close()


# --- feed sources (issue 16) ---------------------------------------------------------------
def _sources(config: Config) -> list[dict[str, Any]]:
    if not config.sources:
        return []
    from ..posts.poll import describe

    return describe(config)


def _source_lines(status: Status, config: Config) -> list[str]:
    out = ["feed sources:"] if status.sources else []
    for item in status.sources:
        state = item["last_status"] or "not fetched yet"
        out.append(f"  {item['name']}: {item['url']}")
        out.append(f"    last fetch {_when(item['last_fetch'], config)} ({state}), "
                   f"{item['entries']} entries, next fetch "
                   f"{'now' if item['due'] else _when(item['next_fetch'], config)}")
        if item["error"]:
            out.append(f"    last error: {item['error']}; last worked "
                       f"{_when(item['last_ok'], config)}")
        if item["redirect"]:
            out.append(f"    moved for good to {item['redirect']}: update its 'feed:' "
                       "in config.yaml")
    return out


# --- end feed sources ----------------------------------------------------------------------


def _by_kind(bounces: Iterable[Bounce]) -> dict[str, int]:
    counted = Counter[str](b.kind for b in bounces)
    return {kind: counted[kind] for kind in FEEDBACK_KINDS}


def _list_status(shared: SharedState, feedback: dict[str, int],
                 since: datetime | None) -> ListStatus:
    members = shared.members()
    lately = datetime.now(UTC) - timedelta(days=RECENT_DAYS)
    return ListStatus(
        shared.pending_count(), {source: sum(m.source == source for m in members)
                                 for source in ("signup", "import")},
        sum(m.source == "signup" and m.since >= lately for m in members),
        len(shared.suppressed()), feedback, since)


def _when(text: str | None, config: Config) -> str:
    if not text:
        return "never"
    return f"{datetime.fromisoformat(text).astimezone(config.site.tz):%Y-%m-%d %H:%M:%S %z}"


def _run_lines(item: RunStatus, config: Config) -> list[str]:
    run, c = item.run, item.counts
    tz = config.site.tz
    lines = [f"  {run.slug}  {run.period_start.astimezone(tz):%Y-%m-%d %H:%M} → "
             f"{run.period_end.astimezone(tz):%Y-%m-%d %H:%M}  {run.state}: {counts_text(c)}"]
    if item.held:
        lines.append(f"      {item.held}")
    lines += [f"      {state}: {email} {code or ''} {reply}".rstrip()
              for email, state, code, reply in item.failures]
    return lines + _feedback_lines(item)


def _feedback_text(feedback: dict[str, int]) -> str:
    words = {"hard": "hard bounces", "soft": "soft bounces", "complaint": "complaints",
             "unsubscribe": "unsubscribe replies"}
    return ", ".join(f"{words[kind]} {feedback.get(kind, 0)}" for kind in FEEDBACK_KINDS)


def _feedback_lines(item: RunStatus) -> list[str]:
    """Its bounces and complaints, and its complaint rate against Gmail's limit."""
    rate = item.complaint_rate
    if rate is None and not any(item.feedback.values()):
        return []
    line = f"      feedback: {_feedback_text(item.feedback)}"
    if rate is not None:
        line += (f"; complaint rate {rate:.2%} of {item.counts.get('sent', 0)} sent "
                 f"(Gmail's limit {COMPLAINT_LIMIT:.1%})")
        level = item.complaint_level
        if level == "over":
            line += ": WARNING: at or over the limit, Gmail may reject or junk the mail"
        elif level == "high":
            line += f": above Google's recommended {COMPLAINT_CEILING:.1%}"
    return [line]


def _list_lines(lists: ListStatus | None, config: Config) -> list[str]:
    if lists is None:
        return []
    out = [f"sign-ups: {lists.pending} waiting for confirmation, "
           f"{lists.confirmed_lately} confirmed in the last {RECENT_DAYS} days; "
           f"members beside the file: {lists.members['signup']} signed up, "
           f"{lists.members['import']} imported; {lists.suppressed} suppressed"]
    if lists.since is not None:
        since = lists.since.astimezone(config.site.tz)
        out.append(f"bounces and complaints since {since:%Y-%m-%d}: "
                   f"{_feedback_text(lists.feedback)}")
    return out


def _problem_lines(title: str, found: list[str], total: int) -> list[str]:
    if not total:
        return []
    more = [f"    … and {total - len(found)} more"] if total > len(found) else []
    return [f"  {title} ({total}):", *(f"    {p}" for p in found), *more]


def lines(status: Status, config: Config) -> list[str]:
    """`digest status` as lines of text for people."""
    out = [f"state: {status.state}", *_daemon_lines(status), _next_digest_line(status)]
    if status.left_behind:
        out.append(left_behind_line(config, status.left_behind))
    out += _build_lines(status, config)
    out += _source_lines(status, config)
    out += _subscriber_lines(status, config)
    out += _list_lines(status.lists, config)
    out.append("last digests:" if status.runs else "last digests: none yet")
    for item in status.runs:
        out += _run_lines(item, config)
    return out


def _daemon_lines(status: Status) -> list[str]:
    out = [f"daemon: running (PID {status.daemon_pid})" if status.daemon_pid
           else "daemon: not running"]
    for item in status.nodes:
        out.append(_node_line(item))
    web = status.notes.get("web")
    if status.daemon_pid and web:
        out.append(f"web front: listening on {web.get('url')}"
                   + (f", public at {web['base_url']}" if web.get("base_url") else ""))
    return out


def _node_line(item: NodeStatus) -> str:
    n = item.node
    what = f"sending digest {n.run}, {n.leased} deliveries leased" if n.run else "idle"
    line = (f"node {n.node} ({'digest run' if n.role == 'daemon' else 'digest send'}): {what}; "
            f"last heartbeat {item.silent.total_seconds():.0f}s ago")
    if item.gone:
        line += (f"; GONE (silent longer than its {n.lease_seconds:g}s lease: its deliveries "
                 "are free for other senders; forgotten a day after)")
    return line


def _next_digest_line(status: Status) -> str:
    nd = status.next_digest
    if nd is None:
        return ("next digest: not scheduled (`digest run` schedules it when "
                "`subscribers:` is set)")
    if nd.at is None:
        return f"next digest: paused (schedule {nd.schedule})"
    late = f"; overdue by {str(nd.late).split('.')[0]}: sent at start-up if still within " \
           f"digest.grace_hours" if nd.late and not status.daemon_pid else ""
    return f"next digest: {nd.at:%Y-%m-%d %H:%M %z} (schedule {nd.schedule}){late}"


def _build_lines(status: Status, config: Config) -> list[str]:
    build = status.notes.get("build")
    if not build:
        return ["feeds last built: not by the daemon yet"]
    return [f"feeds last built: {_when(build.get('at'), config)} "
            f"({build.get('reason')}): {build.get('posts')} posts, "
            f"{build.get('feeds')} feeds, {build.get('written_count', 0)} files written",
            *_problem_lines("problems in posts", build.get("problems", []),
                            build.get("problems_count", 0))]


def _subscriber_lines(status: Status, config: Config) -> list[str]:
    subs = status.notes.get("subscribers")
    if not subs:
        return []
    source = "the last good copy (the file cannot be read now)" if subs.get("fallback") \
        else "the file"
    out = [f"subscribers: {subs.get('count')} from {source}, checked "
           f"{_when(subs.get('at'), config)}"]
    if subs.get("error"):
        out.append(f"  error: {subs['error']}")
    return out + _problem_lines("problems in subscribers", subs.get("problems", []),
                                subs.get("problems_count", 0))

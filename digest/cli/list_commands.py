"""`digest subscribers list|show|export` and `digest deliveries`: who is on the list and who
got what.

All four only look: the state database is opened read-only (nothing created or migrated,
so they work beside a running daemon, and on a database an older digest wrote), and a state
folder that does not exist yet is read as empty, not created. They are the owner's own
tools, so they say who is subscribed; nothing here is reachable from the web.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any

import click

from ..config import Config
from ..subscribers.roster import SOURCES, suppression_json
from .base import address_key, load, named_subscribers_command, subcommand, subscribers_command

if TYPE_CHECKING:  # the rest is loaded when a command runs: every command starts faster
    from ..state.interface import Delivery, Run, SharedState
    from ..subscribers.load import Subscriber
    from ..subscribers.roster import Entry, Unlisted

RECENT = 10  # deliveries and bounces `show` lists; runs an unknown --run names


@contextmanager
def looking(config: Config) -> Iterator[SharedState | None]:
    """The shared state opened read-only, or None if there is none yet (nothing is made)."""
    from ..state.open import has_state, open_state

    if not has_state(config):
        yield None
        return
    state = open_state(config, read_only=True)
    try:
        yield state
    finally:
        state.close()


def file_subscribers(config: Config, state: SharedState | None) -> Sequence[Subscriber]:
    """The subscribers file's entries; if it cannot be read now, its last good copy's (as
    the send would use), said on stderr; if there is none either, SubscribersUnreadable."""
    from ..errors import SubscribersUnreadable
    from ..subscribers.load import load_subscribers, parse_subscribers

    path = config.subscribers
    if path is None:
        return ()
    try:
        return load_subscribers(path, (), config.limits).subscribers
    except SubscribersUnreadable as exc:
        snapshot = state.snapshot() if state is not None else None
        if snapshot is None:
            raise
        click.echo(f"warning: {exc}; showing the last good copy, read at {snapshot[2]}, "
                   "which is what digests go to until the file is fixed", err=True)
        return parse_subscribers(path, snapshot[1], (), config.limits).subscribers


def everyone(config: Config, state: SharedState | None) -> Iterator[Entry]:
    """Every address on the list, with its web choice and its suppression: four reads in
    all, whatever the size of the list."""
    from ..subscribers.roster import entries

    file = file_subscribers(config, state)
    if state is None:
        return entries(file, [], {}, {})
    return entries(file, state.members(), state.preferences(),
                   {s.key: s for s in state.suppressions()})


# digest subscribers list -------------------------------------------------------------------

@named_subscribers_command("list")
@click.option("--source", type=click.Choice(SOURCES),
              help="Only those from the subscribers file (yaml), signed up on the web "
                   "(signup) or imported (import).")
@click.option("--suppressed", is_flag=True,
              help="List the suppression list instead (reason, since, which list they are "
                   "on, if any): the addresses that get nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of objects.")
@click.pass_context
def list_command(ctx: click.Context, source: str | None, suppressed: bool,
                 as_json: bool) -> None:
    """Everyone on the list, one row per address, with the tags they get.

    An address both in the subscribers file and signed up or imported is shown once, as the
    file has it. Tags chosen on the web win over the file's (marked "(web)"). Suppressed
    addresses get nothing, so they are left out (the last line says how many): see them
    with --suppressed.
    """
    from ..subscribers.roster import tags_text

    config = load(ctx)
    with looking(config) as state:
        rows = [e for e in everyone(config, state) if source is None or e.source == source]
        unlisted = [] if state is None or not suppressed or source is not None else \
            _unlisted(state, {e.key for e in rows})
    kept = [e for e in rows if (e.suppression is not None) == suppressed]
    if as_json:
        found = [e.to_json() for e in kept] + [u.to_json() for u in unlisted]
        click.echo(json.dumps(found, indent=1, ensure_ascii=False))
        return
    if suppressed:
        _print_suppressed(kept, unlisted, config)
        return
    columns = [("EMAIL", "NAME", "SOURCE", "TAGS")]
    columns += [(e.email, e.name or "", _where(e, config), tags_text(e)) for e in kept]
    _print_columns(columns)
    by_source = ", ".join(f"{sum(e.source == s for e in kept)} {s}" for s in SOURCES
                          if source in (None, s))
    left_out = len(rows) - len(kept)
    click.echo(f"{len(kept)} on the list ({by_source})"
               + (f"; {left_out} suppressed left out (see --suppressed)" if left_out else ""))


def _unlisted(state: SharedState, listed: set[str]) -> list[Unlisted]:
    from ..subscribers.roster import Unlisted

    return [Unlisted(s) for s in state.suppressions() if s.key not in listed]


def _where(e: Entry, config: Config) -> str:
    if e.source == "yaml":
        return f"yaml:{e.line}" if e.line else "yaml"
    return f"{e.source} {e.since.astimezone(config.site.tz):%Y-%m-%d}" if e.since \
        else e.source


def _print_suppressed(kept: Sequence[Entry], unlisted: Sequence[Unlisted],
                      config: Config) -> None:
    columns = [("EMAIL", "SINCE", "ON THE LIST", "REASON")]
    for e in kept:
        assert e.suppression is not None
        columns.append((e.email, f"{e.suppression.since:%Y-%m-%d}", _where(e, config),
                        e.suppression.reason))
    columns += [(u.suppression.key, f"{u.suppression.since:%Y-%m-%d}", "no",
                 u.suppression.reason) for u in unlisted]
    _print_columns(columns)
    click.echo(f"{len(kept) + len(unlisted)} suppressed ({len(kept)} on the list, "
               f"{len(unlisted)} on no list)")


def _print_columns(rows: Sequence[tuple[str, ...]]) -> None:
    """Rows as aligned columns; the last column is never padded."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        click.echo("  ".join([*(cell.ljust(w) for cell, w in zip(row, widths, strict=False)),
                              row[-1]]).rstrip())


# digest subscribers export -----------------------------------------------------------------

@subscribers_command
@click.option("--all", "everyone_", is_flag=True,
              help="Everyone on the list, the subscribers file's entries too (default: only "
                   "those signed up or imported who are not in the file).")
@click.pass_context
def export(ctx: click.Context, everyone_: bool) -> None:
    """Print the list as entries of the subscribers file, to fold sign-ups into it.

    By default only the sign-ups and imports that the subscribers file does not have, so
    the output can be appended to it as it is (`digest subscribers export >>
    subscribers.yaml`). Suppressed addresses are never exported. Tags are the ones each
    person gets (a choice made on the web included).
    """
    from ..subscribers.roster import export_yaml

    config = load(ctx)
    with looking(config) as state:
        rows = [e for e in everyone(config, state) if everyone_ or e.source != "yaml"]
    out, skipped = [], 0
    for e in rows:
        if e.suppression is not None or e.tags == ():
            skipped += 1  # gets nothing: exporting it would only put it back on a list
            continue
        out.append(export_yaml(e))
    what = "everyone on the list but the suppressed" if everyone_ else \
        "sign-ups and imports not in the subscribers file"
    click.echo(f"# {what} ({len(out)}), exported by `digest subscribers export`")
    click.echo("".join(out), nl=False)
    if skipped:
        click.echo(f"note: {skipped} suppressed (or choosing no tags) not exported", err=True)


# digest subscribers show -------------------------------------------------------------------

@subscribers_command
@click.argument("email")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.pass_context
def show(ctx: click.Context, email: str, as_json: bool) -> None:
    """Everything known of EMAIL: which lists it is on, its tags, its suppression, its
    bounces and its last deliveries with the servers' replies. Exit 1 if nothing is known."""
    config = load(ctx)
    key = address_key(ctx, email)
    with looking(config) as state:
        found = _profile(config, state, key)
    if as_json:
        click.echo(json.dumps(found, indent=1, ensure_ascii=False))
    else:
        for line in _profile_lines(found, config):
            click.echo(line)
    if not found["known"]:
        ctx.exit(1)


def _profile(config: Config, state: SharedState | None, key: str) -> dict[str, Any]:
    """What `show` shows of *key*, as JSON: one query per kind of thing, none per row."""
    from ..subscribers.roster import entries

    in_file = [s for s in file_subscribers(config, state) if s.key == key]
    if state is None:
        member = pending = suppression = None
        chosen, web, bounces, sent = False, None, [], []
    else:
        member, pending, suppression = state.member(key), state.pending(key), \
            state.suppression(key)
        chosen, web = state.preference(key)
        bounces, sent = state.bounces(key, limit=RECENT), state.deliveries_of(key, RECENT)
    entry = next(entries(in_file, [member] if member else [], {key: web} if chosen else {},
                         {key: suppression} if suppression else {}), None)
    lists: list[dict[str, Any]] = [{"source": "yaml", "line": s.line} for s in in_file]
    if member is not None:
        lists.append({"source": member.source, "since": member.since.isoformat()})
    return {
        "email": entry.email if entry else key,
        "known": bool(lists or pending or suppression or bounces or sent),
        "name": entry.name if entry else None,
        "lists": lists,
        "pending_signup": None if pending is None else {
            "requested_at": pending.requested_at.isoformat(),
            "tags": _listed(pending.tags)},
        "tags": None if entry is None else {
            "file": _listed(in_file[0].tags) if in_file else None,
            "signup": _listed(member.tags) if member else None,
            "web": _listed(web) if chosen else None, "chosen_on_web": chosen,
            "exclude_tags": list(entry.exclude_tags), "gets": _listed(entry.tags)},
        "suppression": None if suppression is None else suppression_json(suppression),
        "bounces": [{"at": b.at.isoformat(), "kind": b.kind, "origin": b.origin,
                     "status": b.status, "diagnostic": b.diagnostic, "run": b.run,
                     "evidence": b.evidence} for b in bounces],
        "deliveries": [_delivery_json(d) for d in sent],
    }


def _listed(tags: tuple[str, ...] | None) -> list[str] | None:
    return None if tags is None else list(tags)


def _profile_lines(p: dict[str, Any], config: Config) -> Iterator[str]:
    """`show` for people: a heading, then one indented block per kind of thing."""
    if not p["known"]:
        yield (f"{p['email']}: not known: on no list, never sent a digest, not suppressed, "
               "no bounces")
        return
    yield p["email"] + (f" ({p['name']})" if p["name"] else "")
    name = config.subscribers.name if config.subscribers else "the subscribers file"
    for i, where in enumerate(p["lists"]):
        text = f"{name} line {where['line']}" if where["source"] == "yaml" else \
            f"{'signed up' if where['source'] == 'signup' else 'imported'} " \
            f"{_when(where['since'], config)}"
        yield f"  {'on the list:' if i == 0 else '            '} {text}" + \
            (" (the file's entry is the one served)" if i and p["lists"][0]["source"] == "yaml"
             else "")
    if not p["lists"]:
        yield "  on the list: no"
    if p["pending_signup"]:
        yield (f"  sign-up waiting for confirmation since "
               f"{_when(p['pending_signup']['requested_at'], config)}")
    if p["tags"]:
        tags = p["tags"]
        gets = "every post" if tags["gets"] is None else ", ".join(tags["gets"]) or "none"
        source = p["lists"][0]["source"]
        origin = "chosen on the web" if tags["chosen_on_web"] else \
            {"yaml": "from the file", "signup": "from the sign-up"}.get(source,
                                                                       "from the import")
        excluded = f", except {', '.join(tags['exclude_tags'])}" if tags["exclude_tags"] else ""
        yield f"  tags: {gets}{excluded} ({origin})"
    s = p["suppression"]
    yield ("  suppressed: no" if s is None else
           f"  suppressed: since {_when(s['suppressed_since'], config)}: {s['reason']}"
           + (f" ({s['evidence']})" if s["evidence"] else "")
           + (" — gets nothing" if p["lists"] else ""))
    yield f"  bounces: {'none' if not p['bounces'] else ''}".rstrip()
    for b in p["bounces"]:
        yield (f"    {_when(b['at'], config)}  {b['kind']} ({b['origin']})  "
               f"{b['status'] or ''} {b['diagnostic']}".rstrip()
               + (f"  [digest {b['run']}]" if b["run"] else ""))
    yield f"  last deliveries: {'none' if not p['deliveries'] else ''}".rstrip()
    for d in p["deliveries"]:
        reply = " ".join((d["reply"] or "").split())
        yield (f"    {d['run']}  {d['state']}  attempts {d['attempts']}  "
               f"{d['code'] or ''}  {reply}".rstrip())


def _when(text: str, config: Config) -> str:
    return f"{datetime.fromisoformat(text).astimezone(config.site.tz):%Y-%m-%d %H:%M}"


# digest deliveries -------------------------------------------------------------------------

@subcommand
@click.option("--run", "period", default="latest", show_default=True, metavar="PERIOD",
              help="Which digest: its period's slug (as `digest status` lists them, e.g. "
                   "2024-06-03) or latest.")
@click.option("--failed", is_flag=True, help="Only the failed and deferred deliveries.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of objects.")
@click.pass_context
def deliveries(ctx: click.Context, period: str, failed: bool, as_json: bool) -> None:
    """Who got a digest: each delivery's state, attempts, last SMTP code and reply."""
    from ..state.sendlog import counts_text

    config = load(ctx)
    with looking(config) as state:
        run = _run_named(ctx, state, period)
        if run is None or state is None:
            click.echo("[]" if as_json else "no digest has been sent yet")
            return
        rows, counts = state.deliveries(run, failed=failed), state.counts(run)
    if as_json:
        click.echo(json.dumps([_delivery_json(d) for d in rows], indent=1,
                              ensure_ascii=False))
        return
    tz = config.site.tz
    click.echo(f"digest {run.slug}: {run.period_start.astimezone(tz):%Y-%m-%d %H:%M} → "
               f"{run.period_end.astimezone(tz):%Y-%m-%d %H:%M}, {run.state}: "
               f"{counts_text(counts)}")
    if not rows:
        click.echo("no failed or deferred deliveries" if failed else "no deliveries")
        return
    _print_columns([("EMAIL", "STATE", "ATTEMPTS", "CODE", "REPLY"),
                    *((d.email, d.state, str(d.attempts), str(d.code or ""),
                       " ".join((d.reply or "").split())) for d in rows)])


def _run_named(ctx: click.Context, state: SharedState | None, period: str) -> Run | None:
    """The run *period* names; None if there is none at all yet; exit 2 for an unknown one."""
    runs = state.runs(1_000_000) if state is not None else []
    if period == "latest" or not runs:
        if not runs and period != "latest":
            click.echo(f"error: no digest has been sent yet, so none is called '{period}'",
                       err=True)
            ctx.exit(2)
        return runs[0] if runs else None
    named = next((r for r in runs if r.slug == period), None)
    if named is None:
        known = ", ".join(r.slug for r in runs[:RECENT])
        more = f" (and {len(runs) - RECENT} older)" if len(runs) > RECENT else ""
        click.echo(f"error: no digest '{period}'; the last ones are {known}{more}: give one "
                   "of them, or latest", err=True)
        ctx.exit(2)
    return named


def _delivery_json(d: Delivery) -> dict[str, Any]:
    return {"run": d.run, "email": d.email, "state": d.state, "attempts": d.attempts,
            "code": d.code, "reply": d.reply, "message_id": d.message_id, "posts": d.posts,
            "updated_at": _iso(d.updated_at)}


def _iso(when: datetime | None) -> str | None:
    return when.isoformat() if when else None

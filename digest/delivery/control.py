"""The owner pauses, resumes or cancels a digest run in progress, through the send log.

The send log is where every process looks, so the CLI, the web dashboard and the daemon all
see the same thing: a sender already running reads its run's state between batches
(send.py) and stops after the messages in flight when the owner paused or cancelled it.

The owner's pause is not the run's own (failures in a row, errors.DeliveryPaused): the next
`digest send` or daemon tick resumes the run's own pause, never the owner's, which only
resume_run lifts. Cancel closes the run and its deliveries still to serve ('cancelled'):
they are never sent, and no other run is made for that period (its posts stay its own).
Each action keeps who did it, why and when.
"""

from __future__ import annotations

from datetime import UTC, datetime

from ..errors import ControlError
from ..state.interface import Action, Run, RunAction, RunControl, SharedState

__all__ = ["ControlError", "RunControl", "cancel_run", "describe", "pause_run", "resume_run",
           "run_control"]

MAX_REASON = 500  # characters of a reason kept; a web form's text is bounded here too
MAX_BY = 200


def pause_run(state: SharedState, slug: str, *, reason: str, by: str, now: datetime) -> Run:
    """Pause *slug* until the owner resumes it; a sender serving it stops after the
    messages in flight. A run paused by itself (failures in a row) may be paused by the
    owner too: then the next send leaves it alone."""
    run = _run(state, slug)
    control = state.run_control(run)
    if control.owner_paused:
        raise ControlError(f"digest {slug} is already paused by the owner ({describe(control)})"
                           f"; to send it again: digest resume {slug}")
    _open(state, run, control, "pause")
    return _apply(state, run, "pause", reason, by, now)


def resume_run(state: SharedState, slug: str, *, reason: str, by: str, now: datetime) -> Run:
    """Make a paused *slug* sendable again: the daemon picks it up on its next tick, the
    next `digest send` continues it; nobody served is served again."""
    run = _run(state, slug)
    control = state.run_control(run)
    if control.state != "paused":
        _open(state, run, control, "resume")
        raise ControlError(f"digest {slug} is not paused (it is {control.state}); "
                           f"nothing to resume: `digest send` serves it")
    return _apply(state, run, "resume", reason, by, now)


def cancel_run(state: SharedState, slug: str, *, reason: str, by: str, now: datetime) -> Run:
    """Cancel *slug* for good: whoever it has not served is marked cancelled and never gets
    it; a sender serving it stops after the messages in flight."""
    run = _run(state, slug)
    _open(state, run, state.run_control(run), "cancel")
    return _apply(state, run, "cancel", reason, by, now)


def run_control(state: SharedState, slug: str) -> RunControl | None:
    """Where *slug* stands, with the owner's last action; None if there is no such run."""
    run = state.find_run(slug)
    return None if run is None else state.run_control(run)


def describe(control: RunControl) -> str:
    """The owner's last action in words: 'by alice at 2024-06-10 09:00 UTC: server move'."""
    if control.by is None or control.at is None:
        return "no action recorded"
    at = control.at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"by {control.by} at {at}" + (f": {control.reason}" if control.reason else "")


def _run(state: SharedState, slug: str) -> Run:
    run = state.find_run(slug)
    if run is None:
        known = ", ".join(r.slug for r in state.runs(5)) or "none yet"
        raise ControlError(f"there is no digest {slug!r} (the latest: {known}); "
                           "`digest status` lists them")
    return run


def _open(state: SharedState, run: Run, control: RunControl, act: Action) -> None:
    """Refuse an action on a run that is over: done with nobody left, or cancelled."""
    if control.state == "cancelled":
        raise ControlError(f"digest {run.slug} was cancelled ({describe(control)}); "
                           f"it cannot be {_DONE[act]}")
    if control.state == "done" and not _someone_left(state, run):
        raise ControlError(f"digest {run.slug} is already done: everyone was served; "
                           f"there is nothing to {act}")


_DONE: dict[Action, str] = {"pause": "paused", "resume": "resumed", "cancel": "cancelled again"}
_PAST: dict[Action, str] = {"pause": "paused", "resume": "resumed", "cancel": "cancelled"}


def _someone_left(state: SharedState, run: Run) -> bool:
    counts = state.counts(run)
    return bool(counts.get("pending") or counts.get("deferred"))


def _apply(state: SharedState, run: Run, act: Action, reason: str, by: str,
           now: datetime) -> Run:
    if now.tzinfo is None:
        raise ValueError("now must be an aware datetime")  # a caller's bug, not the owner's
    why = _bounded(reason, MAX_REASON, "the reason")
    if not why and act != "resume":
        raise ControlError(f"say why the digest {run.slug} is to be {_PAST[act]}: "
                           "give a reason (--reason TEXT)")
    action = RunAction(act, _bounded(by, MAX_BY, "who did it") or "owner", why, now)
    if not state.control(run, action):  # another process changed it since we looked
        raise ControlError(f"digest {run.slug} changed while this was asked (it is now "
                           f"{state.run_state(run)}); look at `digest status` and try again")
    updated = state.find_run(run.slug)
    assert updated is not None  # runs are never deleted
    return updated


def _bounded(text: str, limit: int, what: str) -> str:
    """One line, no control characters, at most *limit* characters (a log line, a page and
    the send log's reply column all show it)."""
    cleaned = " ".join("".join(c if c.isprintable() else " " for c in text).split())
    if len(cleaned) > limit:
        raise ControlError(f"{what} is {len(cleaned)} characters long; at most {limit}")
    return cleaned

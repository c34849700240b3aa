"""What marks mail as ours (classify.Ours), from the config and the send log: our From
address, the return path, the List-Unsubscribe mailto:, and a VERP decoder whose candidates
are the recent runs and their deliveries (read from the state once per run, when a token
first names it)."""

from __future__ import annotations

from email.utils import parseaddr

from ..config import Config
from ..delivery.returnpath import Verp
from ..delivery.session import return_path_signer
from ..state.interface import SharedState
from .classify import Ours

RUNS_CONSIDERED = 26  # a bounce can come days late, a complaint weeks: half a year of weeklies


def ours(config: Config, state: SharedState, *, runs: int = RUNS_CONSIDERED) -> Ours:
    """Ours for *config*; MissingSecret if VERP is on and its secret is not set."""
    sender = config.digest.sender or ""
    return_path = config.bounces.return_path if config.bounces else None
    unsubscribe = config.digest.unsubscribe_mailto or parseaddr(sender)[1] or None
    signer = return_path_signer(config, None)
    verp = None
    if signer is not None and return_path is not None:
        recent = {run.slug: run for run in state.runs(runs)}

        def keys(slug: str) -> list[str]:
            return [d.key for d in state.deliveries(recent[slug])]

        verp = Verp(signer, return_path, list(recent), keys).decode
    return Ours((sender,) if sender else (), return_path, unsubscribe, verp)

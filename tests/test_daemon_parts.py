"""The daemon's parts, composed by the thin Daemon, make the jobs `digest check` lists.

`digest check` builds the daemon's jobs with the daemon's own code (Daemon.schedule_on) on
an unstarted in-memory scheduler: what it reports is what `digest run` would schedule.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from conftest import make_site, post

from digest.cli.preflight import daemon_jobs
from digest.config import load_config
from digest.daemon.schedule import DIGEST_JOB

POSTS = {"2024-06-04-first.md": post("First Job", tags="[union]")}


def _site(tmp_path: Path, *, subscribers: bool) -> Path:
    extra: dict[str, Any] = {
        "digest": {"from": "Jobs Board <jobs@example.org>", "schedule": "0 9 * * mon"}}
    if subscribers:
        (tmp_path / "subscribers.yaml").write_text(
            yaml.safe_dump([{"email": "ana@example.org"}]), encoding="utf-8")
        extra["subscribers"] = "subscribers.yaml"
    return make_site(tmp_path, dict(POSTS), feeds={"refresh_minutes": 7}, extra=extra)


def test_check_lists_the_refresh_and_the_digest_the_daemon_schedules(tmp_path: Path) -> None:
    jobs = {job.id: job for job in daemon_jobs(load_config(_site(tmp_path, subscribers=True)))}
    assert set(jobs) == {"refresh", DIGEST_JOB}
    assert jobs["refresh"].trigger.interval.total_seconds() == 7 * 60
    assert "mon" in str(jobs[DIGEST_JOB].trigger)


def test_without_subscribers_the_daemon_schedules_only_the_refresh(tmp_path: Path) -> None:
    jobs = daemon_jobs(load_config(_site(tmp_path, subscribers=False)))
    assert [job.id for job in jobs] == ["refresh"]

"""The digest's schedule: crontab lines in the site's timezone, read on the daemon's clock,
kept in the state database across restarts."""

from __future__ import annotations

import asyncio
import base64
import pickle
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore  # type: ignore[import-untyped]
from apscheduler.schedulers.asyncio import AsyncIOScheduler  # type: ignore[import-untyped]
from conftest import make_site, post, run_cli

from digest.config import load_config
from digest.daemon.schedule import (
    DIGEST_JOB,
    STATE_STORE,
    SiteCron,
    digest_due,
    kept_due,
    make_scheduler,
    next_times,
)
from digest.errors import ConfigError
from digest.state.store import Store
from digest.util.clock import Clock

NEW_YORK = "America/New_York"
NY = ZoneInfo(NEW_YORK)
# The digest job as digest 0.1.0 stored it (apscheduler_jobs.job_state), before the stages
# became packages: the pickle names its function and trigger class by digest.schedule.
JOB_0_1_0 = base64.b64decode(
    "gAWVoAEAAAAAAAB9lCiMB3ZlcnNpb26USwGMAmlklIwGZGlnZXN0lIwEZnVuY5SMGmRpZ2VzdC5zY2hlZHVsZTpk"
    "aWdlc3RfZHVllIwHdHJpZ2dlcpSMD2RpZ2VzdC5zY2hlZHVsZZSMCFNpdGVDcm9ulJOUKYGUfZQoaAFLAYwKZXhw"
    "cmVzc2lvbpSMCzAgOSAqICogbW9ulIwIdGltZXpvbmWUjBBBbWVyaWNhL05ld19Zb3JrlIwGb2Zmc2V0lEcAAAAA"
    "AAAAAHVijAhleGVjdXRvcpSMB2RlZmF1bHSUjARhcmdzlCmMBmt3YXJnc5R9lIwEbmFtZZSMDXdlZWtseSBkaWdl"
    "c3SUjBJtaXNmaXJlX2dyYWNlX3RpbWWUSoBRAQCMCGNvYWxlc2NllIiMDW1heF9pbnN0YW5jZXOUSwGMDW5leHRf"
    "cnVuX3RpbWWUjAhkYXRldGltZZSMCGRhdGV0aW1llJOUQwoH6gwHDgAAAAAAlGgcjAh0aW1lem9uZZSTlGgcjAl0"
    "aW1lZGVsdGGUk5RLAEsASwCHlFKUhZRSlIaUUpR1Lg==")
JOB_0_1_0_DUE = 1796652000.0  # its next_run_time: Monday 2026-12-07 09:00 in New York


def test_digest_stays_at_nine_local_time_across_daylight_saving_changes() -> None:
    # DST began on 2024-03-10 and ended on 2024-11-03 in New York
    spring = next_times("0 9 * * mon", NEW_YORK, datetime(2024, 3, 1, tzinfo=NY), 2)
    autumn = next_times("0 9 * * mon", NEW_YORK, datetime(2024, 10, 27, tzinfo=NY), 2)
    for fire in (*spring, *autumn):
        assert (fire.hour, fire.minute, fire.weekday()) == (9, 0, 0)
    assert [f.astimezone(UTC).hour for f in spring] == [14, 13]
    assert [f.astimezone(UTC).hour for f in autumn] == [13, 14]


def test_an_hour_that_does_not_exist_on_the_change_day_fires_once_that_day() -> None:
    fires = next_times("30 2 * * *", NEW_YORK, datetime(2024, 3, 9, 12, tzinfo=NY), 3)
    assert [f.day for f in fires] == [10, 11, 12]  # 02:30 on the 10th is skipped by the clock


def test_a_shifted_clock_fires_the_schedule_when_it_shows_the_time() -> None:
    clock = Clock.starting_at(datetime(2024, 6, 10, 8, 59, 57, tzinfo=NY))
    trigger = SiteCron.on(clock, "0 9 * * mon", NEW_YORK)
    now = datetime.now(UTC)
    fire = trigger.get_next_fire_time(None, now)
    assert fire is not None
    assert timedelta(seconds=2) < fire - now < timedelta(seconds=4)
    assert clock.shown(fire, NY) == datetime(2024, 6, 10, 9, 0, tzinfo=NY)
    following = trigger.get_next_fire_time(fire, fire)
    assert following is not None and following - fire == timedelta(days=7)


def test_trigger_survives_pickling_into_the_job_store() -> None:
    trigger = SiteCron("0 9 * * mon", NEW_YORK, timedelta(hours=-3))
    again = pickle.loads(pickle.dumps(trigger))
    assert again == trigger
    now = datetime.now(UTC)
    assert again.get_next_fire_time(None, now) == trigger.get_next_fire_time(None, now)


def test_a_digest_missed_while_down_keeps_its_due_time_across_a_restart() -> None:
    stored = SiteCron("0 9 * * mon", NEW_YORK)
    due = datetime(2024, 6, 10, 13, 0, tzinfo=UTC)
    later = due + timedelta(hours=5)
    assert kept_due(stored, due, SiteCron("0 9 * * mon", NEW_YORK), later) == due


def test_a_changed_schedule_is_computed_afresh_unless_its_time_has_passed() -> None:
    stored = SiteCron("0 9 * * mon", NEW_YORK)
    due = datetime(2024, 6, 10, 13, 0, tzinfo=UTC)
    tuesday = SiteCron("0 9 * * tue", NEW_YORK)
    assert kept_due(stored, due, tuesday, due - timedelta(days=1)) is None
    assert kept_due(stored, due, tuesday, due + timedelta(hours=1)) == due


def test_a_differently_shifted_clock_keeps_the_time_the_clock_showed() -> None:
    stored = SiteCron("0 9 * * mon", NEW_YORK, timedelta(days=-900))
    due_real = datetime(2026, 11, 23, 14, 0, tzinfo=UTC)
    wanted = SiteCron("0 9 * * mon", NEW_YORK, timedelta(days=-899))
    kept = kept_due(stored, due_real, wanted, due_real)
    assert kept is not None and kept + wanted.offset == due_real + stored.offset


def test_job_store_lives_in_the_state_database_beside_our_tables(tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    url = f"sqlite:///{tmp_path / 'state.sqlite3'}"

    async def schedule() -> datetime:
        scheduler = AsyncIOScheduler(jobstores={"state": SQLAlchemyJobStore(url=url)})
        scheduler.start(paused=True)
        job = scheduler.add_job(digest_due, SiteCron("0 9 * * mon", NEW_YORK), id="digest",
                                jobstore="state")
        with store.atomic() as db:  # our own writes, between the job store's
            db.execute("INSERT INTO feeds VALUES ('site', 'x')")
        scheduler.shutdown(wait=False)
        await asyncio.sleep(0)
        return job.next_run_time  # type: ignore[no-any-return]

    due = asyncio.run(schedule())
    store.close()
    again = Store.open(tmp_path)  # migrations still apply; WAL is still on
    try:
        assert again.db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert again.feed_inputs() == {"site": "x"}
        (stored,) = again.db.execute("SELECT next_run_time FROM apscheduler_jobs").fetchall()
        assert stored[0] == due.timestamp()
    finally:
        again.close()


def test_schedule_that_is_not_a_crontab_line_is_a_config_error_with_its_line(
        tmp_path: Path) -> None:
    cfg = make_site(tmp_path, {"2024-06-04-a.md": post("A")},
                    extra={"digest": {"noun": "job", "schedule": "0 9 * * * *"}})
    with pytest.raises(ConfigError) as caught:
        load_config(cfg)
    line = 1 + cfg.read_text(encoding="utf-8").splitlines().index("  schedule: 0 9 * * * *")
    (problem,) = caught.value.problems
    assert problem.line == line and "digest.schedule" in problem.message
    assert "Wrong number of fields" in problem.message and "0 9 * * mon" in problem.hint
    code, _out, err = run_cli(["--config", str(cfg), "build"])
    assert code == 2 and f"config.yaml:{line}: 'digest.schedule'" in err


def test_schedule_that_never_comes_is_a_config_error(tmp_path: Path) -> None:
    cfg = make_site(tmp_path, {}, extra={"digest": {"schedule": "0 9 31 2 *"}})
    with pytest.raises(ConfigError, match="never comes"):
        load_config(cfg)


def test_refresh_interval_and_grace_period_have_defaults(tmp_path: Path) -> None:
    config = load_config(make_site(tmp_path, {}))
    assert config.refresh_minutes == 5
    assert (config.digest.schedule, config.digest.grace_hours) == ("0 9 * * mon", 24)
    again = load_config(make_site(tmp_path, {}, feeds={"refresh_minutes": 0.5}))
    assert again.refresh_minutes == 0.5


def test_a_digest_job_stored_before_the_stages_were_packages_is_restored(tmp_path: Path) -> None:
    Store.open(tmp_path).close()
    database = tmp_path / "state.sqlite3"

    async def restored() -> tuple[object, object, datetime]:
        scheduler = make_scheduler(f"sqlite:///{database}", lambda event: None)
        scheduler.start(paused=True)  # creates the job table
        with sqlite3.connect(database) as db:
            db.execute("INSERT INTO apscheduler_jobs VALUES ('digest', ?, ?)",
                       (JOB_0_1_0_DUE, JOB_0_1_0))
        job = scheduler.get_job(DIGEST_JOB, STATE_STORE)
        scheduler.shutdown(wait=False)
        await asyncio.sleep(0)
        return job.func, job.trigger, job.next_run_time

    func, trigger, due = asyncio.run(restored())
    assert func is digest_due and isinstance(trigger, SiteCron)
    assert due.timestamp() == JOB_0_1_0_DUE  # kept: a digest missed meanwhile is not lost

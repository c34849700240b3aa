"""Every number in config.yaml either reaches the library that uses it in a type it takes,
or is refused at load with config.yaml, the key's line and the fix.

YAML gives 24 or 24.0 or "24" or `yes` for the same key, and pydantic passes floats on where
APScheduler wants an int (grace_hours: 24 once crashed `digest run` at start-up). So each
setting is driven with hypothesis through load_config to the object that consumes it: the
APScheduler job and trigger, the aiosmtplib client, the dispatcher's pacing and backoff,
the web front's listening address. Nothing is mocked: a real scheduler with its SQLite job
store, a real aiosmtplib client, a real APScheduler executor deciding "missed or run".
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from apscheduler.events import EVENT_JOB_EXECUTED, EVENT_JOB_MISSED  # type: ignore[import-untyped]
from apscheduler.executors.base import run_coroutine_job  # type: ignore[import-untyped]
from apscheduler.triggers.date import DateTrigger  # type: ignore[import-untyped]
from conftest import make_site, post
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from digest.config import Config, load_config
from digest.daemon.schedule import (
    DIGEST_JOB,
    STATE_STORE,
    make_scheduler,
    refresh_trigger,
    schedule_digest,
)
from digest.daemon.service import retry_delay
from digest.delivery.dispatch import MAX_DELAY, Dispatch, backoff
from digest.delivery.smtp import SmtpTransport
from digest.delivery.transport import Outgoing
from digest.edition.selection import window
from digest.errors import ConfigError
from digest.util.clock import Clock
from digest.web.server import listen_address

# what YAML can hand us for a number: whole, fractional, the README's own values, the edges
# of every range, far too large, signs, yes/no, inf/nan and numbers written as strings
EDGES: list[Any] = [0, 0.5, 1, 24, 24.0, 1 / 60, 0.01, 0.1, 50, 200, 1440, 3600, 3660,
                    8784, 10_000, 65535, 65536, -1, -0.5, 10**9, 10**30, 1e300,
                    float("inf"), float("-inf"), float("nan"), True, False, "24", "24.0",
                    "0.5", "many"]
VALUES = st.one_of(st.sampled_from(EDGES), st.integers(-10, 10**7),
                   st.floats(allow_nan=True, allow_infinity=True),
                   st.floats(min_value=0, max_value=1e5))
PROPERTY = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])
NOW = datetime(2024, 6, 10, 13, 0, tzinfo=UTC)


def write_config(tmp_path: Path, section: str, key: str, value: Any) -> Path:
    """A site whose config.yaml sets `section.key: value`, with every section present."""
    (tmp_path / "subscribers.yaml").write_text("- email: a@example.org\n", encoding="utf-8")
    sections: dict[str, dict[str, Any]] = {
        "feeds": {},
        "digest": {"from": "Jobs Board <jobs@example.org>"},
        "smtp": {"host": "127.0.0.1", "security": "none"},
        "web": {"base_url": "https://jobs.example.org/digest"},
    }
    sections[section][key] = value
    return make_site(tmp_path, {"2024-06-04-a.md": post("A")},
                     extra={"subscribers": "subscribers.yaml", **sections})


def line_of(path: Path, section: str, key: str) -> int:
    """The line `key:` is written on under `section:`, read from the text itself."""
    lines = path.read_text(encoding="utf-8").splitlines()
    start = lines.index(f"{section}:")
    return next(n + 1 for n, text in enumerate(lines)
                if n > start and text.startswith(f"  {key}:"))


def accepted_or_refused_clearly(path: Path, section: str, key: str) -> Config | None:
    """The loaded config, or None after checking the refusal names file, line and fix."""
    try:
        return load_config(path)
    except ConfigError as exc:
        assert len(exc.problems) == 1, exc.problems
        problem = exc.problems[0]
        assert problem.path == path.resolve()
        assert problem.line == line_of(path, section, key)
        assert f"{section}.{key}" in problem.message
        assert problem.hint, f"no fix given for {problem}"
        assert "Traceback" not in str(problem)
        return None


def run_job_late(job: Any, late: timedelta) -> int:
    """What APScheduler's executor does with the job run *late* after it was due."""
    events = asyncio.run(run_coroutine_job(job, STATE_STORE, [datetime.now(UTC) - late],
                                           logging.getLogger(__name__).name))
    return int(events[0].code)


@PROPERTY
@given(value=VALUES)
@example(value=24)  # the README's production example
@example(value=24.0)
@example(value=0)
@example(value=0.5)
@example(value=1e300)
def test_grace_hours_reaches_apscheduler_as_whole_seconds_and_decides_missed_runs(
        tmp_path: Path, value: Any) -> None:
    config = accepted_or_refused_clearly(write_config(tmp_path, "digest", "grace_hours", value),
                                         "digest", "grace_hours")
    if config is None:
        return
    database = tmp_path / "jobs.sqlite"
    database.unlink(missing_ok=True)
    scheduler = make_scheduler(f"sqlite:///{database}", lambda _event: None)
    schedule_digest(scheduler, config, Clock())  # APScheduler's own checks run here
    job = scheduler.get_job(DIGEST_JOB, STATE_STORE)
    grace = job.misfire_grace_time
    assert isinstance(grace, int) and grace >= 1
    assert abs(grace - config.digest.grace_hours * 3600) <= 1
    assert run_job_late(job, timedelta(seconds=grace + 60)) == EVENT_JOB_MISSED
    if grace > 60:
        assert run_job_late(job, timedelta(seconds=grace - 60)) == EVENT_JOB_EXECUTED


@PROPERTY
@given(value=VALUES)
@example(value=5)
@example(value=0.5)
@example(value=1440.0)
def test_refresh_minutes_reaches_apscheduler_as_that_interval(tmp_path: Path,
                                                              value: Any) -> None:
    config = accepted_or_refused_clearly(write_config(tmp_path, "feeds", "refresh_minutes",
                                                      value), "feeds", "refresh_minutes")
    if config is None:
        return
    trigger = refresh_trigger(config)
    wanted = timedelta(minutes=config.refresh_minutes)
    assert abs(trigger.interval - wanted) < timedelta(milliseconds=1)
    first = trigger.get_next_fire_time(None, datetime.now(UTC))
    second = trigger.get_next_fire_time(first, first)
    assert second - first == trigger.interval


@PROPERTY
@given(value=VALUES)
@example(value=20)
@example(value=20.0)
def test_feed_entries_is_a_whole_count(tmp_path: Path, value: Any) -> None:
    config = accepted_or_refused_clearly(write_config(tmp_path, "feeds", "entries", value),
                                         "feeds", "entries")
    if config is None:
        return
    assert isinstance(config.feed_entries, int) and config.feed_entries >= 1
    assert len(list(range(20_000))[:config.feed_entries]) == config.feed_entries


@PROPERTY
@given(value=VALUES)
@example(value=7)
@example(value=7.0)
def test_first_window_days_makes_a_window_that_many_days_back(tmp_path: Path,
                                                              value: Any) -> None:
    config = accepted_or_refused_clearly(write_config(tmp_path, "digest", "first_window_days",
                                                      value), "digest", "first_window_days")
    if config is None:
        return
    days = config.digest.first_window_days
    assert isinstance(days, int)
    assert window(None, NOW, days).start == NOW - timedelta(days=days)


def transport(config: Config) -> SmtpTransport:
    assert config.smtp is not None
    return SmtpTransport(config.smtp)


@PROPERTY
@given(value=VALUES)
@example(value=587)
@example(value=587.0)
@example(value="587")
def test_smtp_port_reaches_aiosmtplib_as_an_int(tmp_path: Path, value: Any) -> None:
    config = accepted_or_refused_clearly(write_config(tmp_path, "smtp", "port", value),
                                         "smtp", "port")
    if config is None:
        return
    client = transport(config).client("localhost")
    assert type(client.port) is int and 1 <= client.port <= 65535


@PROPERTY
@given(value=VALUES)
@example(value=30)
@example(value=0.5)
@example(value=0)
def test_smtp_timeout_reaches_aiosmtplib_as_a_finite_float(tmp_path: Path,
                                                           value: Any) -> None:
    config = accepted_or_refused_clearly(write_config(tmp_path, "smtp", "timeout", value),
                                         "smtp", "timeout")
    if config is None:
        return
    client = transport(config).client("localhost")
    assert isinstance(client.timeout, float) and 0 < client.timeout <= 3600


async def _nothing() -> AsyncIterator[Outgoing]:
    return
    yield  # an async generator with nothing in it


def dispatch(config: Config) -> Dispatch:
    """The dispatcher exactly as SmtpTransport.deliver builds it from the settings."""
    assert config.smtp is not None
    smtp = config.smtp
    return Dispatch(_nothing(), buffer=4 * smtp.concurrency, pause_after=smtp.pause_after,
                    rate=smtp.rate)


@PROPERTY
@given(value=VALUES)
@example(value=0)
@example(value=0.5)
@example(value=1e300)
def test_smtp_rate_paces_at_that_rate_or_not_at_all(tmp_path: Path, value: Any) -> None:
    config = accepted_or_refused_clearly(write_config(tmp_path, "smtp", "rate", value),
                                         "smtp", "rate")
    if config is None:
        return
    assert config.smtp is not None
    interval = dispatch(config)._interval  # the pause between two sends' starts
    assert math.isfinite(interval) and interval <= 1 / 0.01
    assert interval == (1 / config.smtp.rate if config.smtp.rate else 0.0)


@pytest.mark.parametrize("key", ["concurrency", "per_connection", "pause_after"])
@PROPERTY
@given(value=VALUES)
@example(value=4)
@example(value=4.0)
def test_smtp_counts_are_whole_numbers_the_dispatcher_can_use(tmp_path: Path, key: str,
                                                              value: Any) -> None:
    config = accepted_or_refused_clearly(write_config(tmp_path, "smtp", key, value),
                                         "smtp", key)
    if config is None:
        return
    assert config.smtp is not None
    count = getattr(config.smtp, key)
    assert isinstance(count, int) and count >= 1
    dispatch(config)
    assert len(range(config.smtp.concurrency)) == config.smtp.concurrency  # the workers


@pytest.mark.parametrize(("section", "key"), [
    ("smtp", "pipelining"), ("feeds", "stylesheet"), ("feeds", "json")])
@PROPERTY
@given(value=st.one_of(VALUES, st.sampled_from(["yes", "no", "on", "off", "false", ""])))
@example(value=True)
@example(value=False)
def test_yes_or_no_settings_take_a_boolean_or_say_so(tmp_path: Path, section: str, key: str,
                                                     value: Any) -> None:
    """A bad value of a true/false key was refused with no fix to offer."""
    config = accepted_or_refused_clearly(write_config(tmp_path, section, key, value),
                                         section, key)
    if config is None:
        return
    setting = getattr(config.smtp, key) if section == "smtp" else \
        getattr(config, "json_feed" if key == "json" else key)
    assert isinstance(setting, bool)
    if isinstance(value, bool):
        assert setting is value


@PROPERTY
@given(backoff_value=VALUES, attempts=VALUES)
@example(backoff_value=2.0, attempts=5)
@example(backoff_value=1e300, attempts=50)
@example(backoff_value=0, attempts=5.0)
def test_smtp_retry_delays_are_finite_and_bounded(tmp_path: Path, backoff_value: Any,
                                                  attempts: Any) -> None:
    config = accepted_or_refused_clearly(write_config(tmp_path, "smtp", "backoff",
                                                      backoff_value), "smtp", "backoff")
    config_attempts = accepted_or_refused_clearly(write_config(tmp_path, "smtp",
                                                               "max_attempts", attempts),
                                                  "smtp", "max_attempts")
    if config is None or config_attempts is None:
        return
    assert config.smtp is not None and config_attempts.smtp is not None
    tries = config_attempts.smtp.max_attempts
    assert isinstance(tries, int) and 1 <= tries <= 50
    rng = random.Random(1)
    for attempt in range(1, tries + 1):
        delay = backoff(rng, config.smtp.backoff, attempt)
        assert math.isfinite(delay) and 0 <= delay <= MAX_DELAY


@PROPERTY
@given(value=VALUES)
@example(value=5)
@example(value=0.5)
@example(value=1440.0)
def test_smtp_retry_minutes_makes_apscheduler_retry_dates_however_many_retries(
        tmp_path: Path, value: Any) -> None:
    config = accepted_or_refused_clearly(write_config(tmp_path, "smtp", "retry_minutes",
                                                      value), "smtp", "retry_minutes")
    if config is None:
        return
    for retry in (1, 2, 10, 64, 10_000):
        delay = retry_delay(config, retry)
        assert timedelta(0) <= delay <= timedelta(minutes=1440)
        trigger = DateTrigger(run_date=NOW + delay)  # as the daemon schedules the retry
        assert trigger.get_next_fire_time(None, NOW) == NOW + delay


@PROPERTY
@given(value=VALUES)
@example(value=5)
@example(value=0.5)
def test_smtp_give_up_days_is_a_finite_number_of_days(tmp_path: Path, value: Any) -> None:
    config = accepted_or_refused_clearly(write_config(tmp_path, "smtp", "give_up_days",
                                                      value), "smtp", "give_up_days")
    if config is None:
        return
    assert config.smtp is not None
    cut_off = config.smtp.give_up_days * 86_400  # send.py compares an age in seconds to it
    assert math.isfinite(cut_off) and cut_off > 0
    assert NOW + timedelta(seconds=cut_off) >= NOW


@PROPERTY
@given(port=VALUES)
@example(port=8080)
@example(port=0)
@example(port=65536)
def test_web_listen_port_reaches_the_socket_as_an_int_in_range(tmp_path: Path,
                                                               port: Any) -> None:
    config = accepted_or_refused_clearly(write_config(tmp_path, "web", "listen",
                                                      f"127.0.0.1:{port}"), "web", "listen")
    if config is None:
        return
    assert config.web is not None and config.web.listen is not None
    host, number = listen_address(config.web.listen)
    assert host == "127.0.0.1" and type(number) is int and 0 <= number <= 65535


# where a bad value is blamed ----------------------------------------------------------------

def jekyll_site(tmp_path: Path, jekyll_config: str, **site: Any) -> Path:
    (tmp_path / "_config.yml").write_text(jekyll_config, encoding="utf-8")
    config = make_site(tmp_path, {"2024-06-04-a.md": post("A")}, **site)
    text = config.read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    data["site"] = {"jekyll_config": "_config.yml", **site}
    config.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return config


def test_bad_timezone_in_the_sites_config_yml_is_blamed_on_that_file_and_line(
        tmp_path: Path) -> None:
    config = jekyll_site(tmp_path, "title: Jobs\nurl: https://jobs.example.org\n"
                                   "timezone: Mars/Olympus\n")
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    [problem] = caught.value.problems
    assert (problem.path, problem.line) == ((tmp_path / "_config.yml").resolve(), 3)
    assert "Mars/Olympus" in problem.message and "IANA" in problem.hint


def test_bad_timezone_in_config_yaml_over_the_sites_is_blamed_on_config_yaml(
        tmp_path: Path) -> None:
    config = jekyll_site(tmp_path, "timezone: Europe/Paris\n", timezone="Mars/Olympus")
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    [problem] = caught.value.problems
    assert (problem.path, problem.line) == (config.resolve(), line_of(config, "site",
                                                                     "timezone"))

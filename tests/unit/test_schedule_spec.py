"""Schedule specs: what parses, what is refused, and which field the message names."""

from __future__ import annotations

import pytest

from flowmill.triggers.schedule import (
    CronExpression,
    MissedFirePolicy,
    ScheduleError,
    parse_every,
    parse_schedule,
)


@pytest.mark.parametrize(
    ("raw", "interval", "fixed"),
    [
        ({"cron": "*/5 * * * *"}, None, False),
        ({"cron": "30 2 * * *", "timezone": "America/New_York"}, None, True),
        ({"cron": "*/10 * * * * *"}, None, False),
        ({"cron": "0 30 2 * * MON-FRI"}, None, True),
        ({"cron": "@daily"}, None, True),
        ({"cron": "@hourly"}, None, False),
        ({"cron": "0 0 L * *"}, None, True),
        ({"cron": "0 9 ? * 2#1"}, None, True),
        ({"every": "15m"}, 900, None),
        ({"every": "1h30m"}, 5400, None),
        ({"interval_s": 45}, 45, None),
    ],
)
def test_schedule_spec_accepts(raw, interval, fixed):
    schedule = parse_schedule(raw)
    assert schedule.interval == interval
    if fixed is not None:
        assert schedule.cron is not None and schedule.cron.fixed_time is fixed


@pytest.mark.parametrize(
    ("raw", "field", "words"),
    [
        ({}, "schedule", "exactly one"),
        ({"cron": "* * * * *", "every": "5m"}, "schedule", "exactly one"),
        ({"cron": "61 * * * *"}, "cron", "out of range"),
        ({"cron": "* * *"}, "cron", "3 field"),
        ({"cron": "* * * * * * *"}, "cron", "7 field"),
        ({"cron": "0 0 30 2 *"}, "cron", "never matches"),
        ({"cron": "@reboot"}, "cron", "unknown cron alias"),
        ({"every": "15x"}, "every", "cannot read interval"),
        ({"every": "0s"}, "every", "at least 1 s"),
        ({"every": "400d"}, "every", "366 days"),
        ({"interval_s": 0}, "interval_s", "greater than or equal to 1"),
        ({"cron": "@daily", "timezone": "Mars/Olympus"}, "timezone", "unknown IANA"),
        ({"cron": "@daily", "timezone": "right/UTC"}, "timezone", "unknown IANA"),
        ({"cron": "@daily", "timezone": "../../etc/passwd"}, "timezone", "unknown IANA"),
        ({"cron": "@daily", "start_at": "2026-01-01T00:00:00"}, "start_at", "timezone"),
        (
            {
                "cron": "@daily",
                "start_at": "2026-02-01T00:00:00Z",
                "end_at": "2026-01-01T00:00:00Z",
            },
            "schedule",
            "end_at is before start_at",
        ),
        ({"cron": "@daily", "missed_fire_policy": "all"}, "missed_fire_policy", "skip"),
        ({"cron": "@daily", "misfire_grace_s": -1}, "misfire_grace_s", "greater than"),
        ({"cron": "@daily", "crons": "x"}, "crons", "Extra inputs"),
    ],
)
def test_schedule_spec_refuses_with_field_named(raw, field, words):
    with pytest.raises(ScheduleError) as caught:
        parse_schedule(raw)
    message = str(caught.value)
    assert message.startswith(f"{field}: ")
    assert words in message


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("15m", 900),
        ("1h", 3600),
        ("1h30m", 5400),
        ("2d", 172800),
        ("1w", 604800),
        (" 1H 5M ", 3900),
    ],
)
def test_schedule_parse_every(text, seconds):
    assert parse_every(text) == seconds


def test_schedule_default_timezone_from_caller():
    schedule = parse_schedule({"cron": "@daily"}, default_timezone="Europe/Paris")
    assert schedule.zone.key == "Europe/Paris"
    assert (
        parse_schedule(
            {"cron": "@daily", "timezone": "UTC"}, default_timezone="Europe/Paris"
        ).zone.key
        == "UTC"
    )


def test_schedule_spec_defaults():
    spec = parse_schedule({"cron": "@daily"}).spec
    assert spec.timezone == "UTC"
    assert spec.missed_fire_policy is MissedFirePolicy.SKIP
    assert spec.misfire_grace_s == 60


def test_schedule_cron_fixed_time_follows_debian_rule():
    # "*" at the start of the minute or hour field means elapsed-time semantics.
    assert CronExpression("0 1-3 * * *").fixed_time
    assert not CronExpression("0 */2 * * *").fixed_time
    assert not CronExpression("*/15 2 * * *").fixed_time
    assert CronExpression("*/10 30 2 * * *").fixed_time  # seconds do not count

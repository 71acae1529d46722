"""DST: fixed-time and wildcard cron across both transitions, north and south.

2026 transitions used here:
- America/New_York: 8 March 02:00 EST -> 03:00 EDT (07:00 UTC); 1 November
  02:00 EDT -> 01:00 EST (06:00 UTC).
- Australia/Sydney: 5 April 03:00 AEDT -> 02:00 AEST (16:00 UTC on 4 April);
  4 October 02:00 AEST -> 03:00 AEDT (16:00 UTC on 3 October).
- Australia/Lord_Howe: half-hour DST; 4 October 02:00 -> 02:30.
"""

from __future__ import annotations

from datetime import UTC, datetime
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest

from flowmill.triggers.schedule import next_fire_after, next_runs, parse_schedule

NY = "America/New_York"
SYD = "Australia/Sydney"


def local(zone: str, *args: int, fold: int = 0) -> datetime:
    return datetime(*args, tzinfo=ZoneInfo(zone), fold=fold)


def readings(cron: str, zone: str, after: datetime, n: int) -> list[str]:
    """Fire times as local wall-clock text with the zone abbreviation."""
    schedule = parse_schedule({"cron": cron, "timezone": zone})
    return [f"{t.astimezone(ZoneInfo(zone)):%m-%d %H:%M %Z}" for t in next_runs(schedule, after, n)]


@pytest.mark.parametrize(
    ("cron", "zone", "after", "expected"),
    [
        # 02:30 does not exist on 8 March: it fires once, when the gap ends (03:00 EDT).
        (
            "30 2 * * *",
            NY,
            local(NY, 2026, 3, 7, 12),
            ["03-08 03:00 EDT", "03-09 02:30 EDT", "03-10 02:30 EDT"],
        ),
        # 01:30 exists once on 8 March: nothing special.
        (
            "30 1 * * *",
            NY,
            local(NY, 2026, 3, 7, 12),
            ["03-08 01:30 EST", "03-09 01:30 EDT", "03-10 01:30 EDT"],
        ),
        # 01:30 happens twice on 1 November: only the first (EDT) fires.
        (
            "30 1 * * *",
            NY,
            local(NY, 2026, 10, 31, 12),
            ["11-01 01:30 EDT", "11-02 01:30 EST", "11-03 01:30 EST"],
        ),
        # 02:30 happens once on 1 November (after the repeated hour): once.
        (
            "30 2 * * *",
            NY,
            local(NY, 2026, 10, 31, 12),
            ["11-01 02:30 EST", "11-02 02:30 EST", "11-03 02:30 EST"],
        ),
        # Southern hemisphere, spring forward in October: 02:30 -> 03:00 AEDT.
        (
            "30 2 * * *",
            SYD,
            local(SYD, 2026, 10, 3, 12),
            ["10-04 03:00 AEDT", "10-05 02:30 AEDT", "10-06 02:30 AEDT"],
        ),
        # Southern hemisphere, fall back in April: 02:30 repeats, first (AEDT) only.
        (
            "30 2 * * *",
            SYD,
            local(SYD, 2026, 4, 4, 12),
            ["04-05 02:30 AEDT", "04-06 02:30 AEST", "04-07 02:30 AEST"],
        ),
        # Half-hour DST: 02:15 falls in the 02:00-02:30 gap and fires at 02:30.
        (
            "15 2 * * *",
            "Australia/Lord_Howe",
            local("Australia/Lord_Howe", 2026, 10, 3, 12),
            ["10-04 02:30 +11", "10-05 02:15 +11"],
        ),
    ],
)
def test_schedule_dst_fixed_time_fires_once_per_day(cron, zone, after, expected):
    assert readings(cron, zone, after, len(expected)) == expected


@pytest.mark.parametrize(
    ("cron", "after", "expected"),
    [
        # Hourly follows real hours: 01:30 EST is followed one hour later by 03:30 EDT.
        (
            "30 * * * *",
            local(NY, 2026, 3, 8, 0),
            ["03-08 00:30 EST", "03-08 01:30 EST", "03-08 03:30 EDT", "03-08 04:30 EDT"],
        ),
        # ...and the repeated 01:30 fires again, an hour after the first.
        (
            "30 * * * *",
            local(NY, 2026, 11, 1, 0),
            ["11-01 00:30 EDT", "11-01 01:30 EDT", "11-01 01:30 EST", "11-01 02:30 EST"],
        ),
        # Wildcard minute in the repeated hour: both passes fire.
        (
            "*/30 1 * * *",
            local(NY, 2026, 11, 1, 0),
            [
                "11-01 01:00 EDT",
                "11-01 01:30 EDT",
                "11-01 01:00 EST",
                "11-01 01:30 EST",
                "11-02 01:00 EST",
            ],
        ),
        # Wildcard minute in the skipped hour: those readings never happen (Debian cron).
        ("*/30 2 * * *", local(NY, 2026, 3, 7, 12), ["03-09 02:00 EDT", "03-09 02:30 EDT"]),
    ],
)
def test_schedule_dst_wildcard_follows_elapsed_time(cron, after, expected):
    assert readings(cron, NY, after, len(expected)) == expected


def test_schedule_dst_hourly_keeps_real_hour_spacing_through_both_transitions():
    schedule = parse_schedule({"cron": "0 * * * *", "timezone": NY})
    for start in (local(NY, 2026, 3, 7, 22), local(NY, 2026, 10, 31, 22)):
        runs = next_runs(schedule, start, 8)
        gaps = {(b - a).total_seconds() for a, b in pairwise(runs)}
        assert gaps == {3600.0}


def test_schedule_dst_gap_and_a_real_time_coinciding_fire_once():
    # 02:00 is moved to the end of the gap, 03:00 EDT, where 03:00 also fires.
    assert readings("0 2,3 * * *", NY, local(NY, 2026, 3, 8, 0), 3) == [
        "03-08 03:00 EDT",
        "03-09 02:00 EDT",
        "03-09 03:00 EDT",
    ]


@pytest.mark.parametrize(
    ("after_utc", "expected_utc"),
    [
        (datetime(2026, 3, 8, 6, 59, 59, tzinfo=UTC), datetime(2026, 3, 8, 7, 0, tzinfo=UTC)),
        (
            datetime(2026, 3, 8, 6, 59, 59, 500000, tzinfo=UTC),
            datetime(2026, 3, 8, 7, 0, tzinfo=UTC),
        ),
        (datetime(2026, 3, 8, 7, 0, 0, tzinfo=UTC), datetime(2026, 3, 9, 6, 30, tzinfo=UTC)),
    ],
    ids=["second-before-gap-end", "fraction-before", "at-gap-end"],
)
def test_schedule_dst_gap_firing_exactly_at_the_transition(after_utc, expected_utc):
    schedule = parse_schedule({"cron": "30 2 * * *", "timezone": NY})
    assert next_fire_after(schedule, after_utc) == expected_utc


@pytest.mark.parametrize(
    "after",
    [
        local(NY, 2026, 11, 1, 1, 15, fold=1),
        local(NY, 2026, 11, 1, 1, 45, fold=1),
        local(NY, 2026, 11, 1, 1, 31),
    ],
    ids=["in-repeat-before-reading", "in-repeat-after-reading", "just-after-first"],
)
def test_schedule_dst_repeated_hour_does_not_fire_again(after):
    schedule = parse_schedule({"cron": "30 1 * * *", "timezone": NY})
    assert next_fire_after(schedule, after) == local(NY, 2026, 11, 2, 1, 30)


def test_schedule_dst_six_field_cron_in_the_gap():
    assert readings("0 30 2 * * *", NY, local(NY, 2026, 3, 7, 12), 2) == [
        "03-08 03:00 EDT",
        "03-09 02:30 EDT",
    ]


def test_schedule_dst_intervals_ignore_the_clock():
    schedule = parse_schedule({"every": "1h", "timezone": NY})
    runs = next_runs(schedule, local(NY, 2026, 11, 1, 0, 30), 3)
    assert [f"{t.astimezone(ZoneInfo(NY)):%H:%M %Z}" for t in runs] == [
        "01:00 EDT",
        "01:00 EST",
        "02:00 EST",
    ]


def test_schedule_dst_daily_fires_365_times_a_year():
    # Across both transitions a fixed daily time neither drops nor doubles a day.
    for cron in ("30 1 * * *", "30 2 * * *"):
        schedule = parse_schedule({"cron": cron, "timezone": NY})
        runs = next_runs(schedule, local(NY, 2026, 1, 1), 365)
        days = {t.astimezone(ZoneInfo(NY)).date() for t in runs}
        assert len(days) == 365
        assert runs[-1].astimezone(ZoneInfo(NY)).date().isoformat() == "2026-12-31"

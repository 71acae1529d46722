"""Fire times without DST: cron (5 and 6 fields), intervals, start/end, previews."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from flowmill.testing import FakeClock
from flowmill.triggers.schedule import next_fire_after, next_runs, parse_schedule


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


AFTER = utc(2026, 1, 1, 0, 0, 0)  # a Thursday


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            {"cron": "*/15 * * * *"},
            [utc(2026, 1, 1, 0, 15), utc(2026, 1, 1, 0, 30), utc(2026, 1, 1, 0, 45)],
        ),
        ({"cron": "0 9 * * MON-FRI"}, [utc(2026, 1, 1, 9), utc(2026, 1, 2, 9), utc(2026, 1, 5, 9)]),
        ({"cron": "0 0 1 * *"}, [utc(2026, 2, 1), utc(2026, 3, 1), utc(2026, 4, 1)]),
        ({"cron": "0 0 L 2 *"}, [utc(2026, 2, 28), utc(2027, 2, 28), utc(2028, 2, 29)]),
        ({"cron": "@hourly"}, [utc(2026, 1, 1, 1), utc(2026, 1, 1, 2), utc(2026, 1, 1, 3)]),
        (
            {"cron": "*/20 * * * * *"},
            [utc(2026, 1, 1, 0, 0, 20), utc(2026, 1, 1, 0, 0, 40), utc(2026, 1, 1, 0, 1)],
        ),
        (
            {"cron": "30 0 9 * * *"},
            [utc(2026, 1, 1, 9, 0, 30), utc(2026, 1, 2, 9, 0, 30), utc(2026, 1, 3, 9, 0, 30)],
        ),
        (
            {"every": "15m"},
            [utc(2026, 1, 1, 0, 15), utc(2026, 1, 1, 0, 30), utc(2026, 1, 1, 0, 45)],
        ),
        (
            {"interval_s": 7},
            [utc(2026, 1, 1, 0, 0, 7), utc(2026, 1, 1, 0, 0, 14), utc(2026, 1, 1, 0, 0, 21)],
        ),
        (
            {"every": "1h", "start_at": "2026-01-01T00:20:00Z"},
            [utc(2026, 1, 1, 0, 20), utc(2026, 1, 1, 1, 20), utc(2026, 1, 1, 2, 20)],
        ),
        (
            {"cron": "0 12 * * *", "timezone": "Asia/Kolkata"},  # +05:30, no DST
            [utc(2026, 1, 1, 6, 30), utc(2026, 1, 2, 6, 30), utc(2026, 1, 3, 6, 30)],
        ),
    ],
)
def test_schedule_next_runs_table(raw, expected):
    assert next_runs(parse_schedule(raw), AFTER, 3) == expected


def test_schedule_next_fire_is_strictly_after():
    schedule = parse_schedule({"cron": "0 * * * *"})
    assert next_fire_after(schedule, utc(2026, 1, 1, 1)) == utc(2026, 1, 1, 2)
    assert next_fire_after(schedule, utc(2026, 1, 1, 0, 59, 59, 999999)) == utc(2026, 1, 1, 1)


def test_schedule_accepts_any_aware_zone_and_answers_utc():
    schedule = parse_schedule({"cron": "0 * * * *"})
    after = datetime(2026, 1, 1, 5, 30, tzinfo=timezone(timedelta(hours=5)))  # 00:30 UTC
    found = next_fire_after(schedule, after)
    assert found == utc(2026, 1, 1, 1)
    assert found is not None and found.tzinfo is UTC


def test_schedule_naive_datetime_refused():
    with pytest.raises(ValueError, match="timezone-aware"):
        next_fire_after(parse_schedule({"cron": "@daily"}), datetime(2026, 1, 1))


def test_schedule_start_at_holds_back_cron():
    schedule = parse_schedule({"cron": "@daily", "start_at": "2026-03-01T00:00:00Z"})
    assert next_fire_after(schedule, AFTER) == utc(2026, 3, 1)


@pytest.mark.parametrize(
    ("raw", "count"),
    [
        ({"cron": "@daily", "end_at": "2026-01-03T00:00:00Z"}, 3),  # end_at inclusive
        ({"cron": "@daily", "end_at": "2026-01-02T23:59:59Z"}, 2),
        ({"every": "1d", "end_at": "2026-01-04T00:00:00+00:00"}, 4),
    ],
)
def test_schedule_end_at_stops_the_preview(raw, count):
    runs = next_runs(parse_schedule(raw), utc(2025, 12, 31, 12), 10)
    assert len(runs) == count


def test_schedule_ended_has_no_next():
    schedule = parse_schedule({"cron": "@daily", "end_at": "2026-01-01T00:00:00Z"})
    assert next_fire_after(schedule, utc(2026, 1, 1)) is None


def test_schedule_interval_grid_is_the_same_for_every_replica():
    # Anchored at the epoch (or start_at), not at "when this process looked".
    schedule = parse_schedule({"every": "10m"})
    a, b = FakeClock(utc(2026, 1, 1, 0, 3)), FakeClock(utc(2026, 1, 1, 0, 7, 41))
    assert (
        next_fire_after(schedule, a.now())
        == next_fire_after(schedule, b.now())
        == utc(2026, 1, 1, 0, 10)
    )


@pytest.mark.parametrize("n", [-1, 1001])
def test_schedule_next_runs_bounds(n):
    with pytest.raises(ValueError, match="between 0 and 1000"):
        next_runs(parse_schedule({"cron": "@daily"}), AFTER, n)


def test_schedule_day_of_month_and_weekday_are_ored_like_vixie_cron():
    # Both restricted: the 13th *or* any Friday, not only Friday the 13th.
    runs = next_runs(parse_schedule({"cron": "0 0 13 * FRI"}), AFTER, 4)
    assert runs == [utc(2026, 1, 2), utc(2026, 1, 9), utc(2026, 1, 13), utc(2026, 1, 16)]

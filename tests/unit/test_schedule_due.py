"""Due firings: grace, missed-fire policies, watermarks, firing keys, replicas."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from flowmill.triggers.schedule import (
    MissedFirePolicy,
    due_firings,
    firing_key,
    parse_schedule,
)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


HOURLY = parse_schedule({"cron": "0 * * * *"})


def test_due_on_time_fires_once_and_moves_watermark():
    due = due_firings(HOURLY, utc(2026, 1, 1, 9), utc(2026, 1, 1, 10, 0, 2))
    assert due.fire_at == (utc(2026, 1, 1, 10),)
    assert (due.missed_from, due.caught_up) == (None, False)
    assert due.last_fire_at == utc(2026, 1, 1, 10)
    assert due.next_fire_at == utc(2026, 1, 1, 11)


def test_due_nothing_yet():
    due = due_firings(HOURLY, utc(2026, 1, 1, 10), utc(2026, 1, 1, 10, 59, 59))
    assert due.fire_at == ()
    assert due.last_fire_at == utc(2026, 1, 1, 10)
    assert due.next_fire_at == utc(2026, 1, 1, 11)


def test_due_late_within_grace_still_fires():
    # A leader hand-over took 45 s: not a miss (grace 60 s by default).
    due = due_firings(HOURLY, utc(2026, 1, 1, 9), utc(2026, 1, 1, 10, 0, 45), MissedFirePolicy.SKIP)
    assert due.fire_at == (utc(2026, 1, 1, 10),)


@pytest.mark.parametrize(
    ("policy", "fire_at", "caught_up"),
    [
        (MissedFirePolicy.SKIP, (), False),
        (MissedFirePolicy.RUN_ONCE, (utc(2026, 1, 1, 13),), True),
    ],
)
def test_due_after_downtime_policies(policy, fire_at, caught_up):
    # Down from 09:30 to 13:20: 10:00, 11:00, 12:00, 13:00 were missed.
    due = due_firings(HOURLY, utc(2026, 1, 1, 9), utc(2026, 1, 1, 13, 20), policy)
    assert due.fire_at == fire_at
    assert due.caught_up is caught_up
    assert (due.missed_from, due.missed_until) == (utc(2026, 1, 1, 10), utc(2026, 1, 1, 13))
    assert due.last_fire_at == utc(2026, 1, 1, 13)
    assert due.next_fire_at == utc(2026, 1, 1, 14)


def test_due_run_once_plus_the_on_time_firing():
    # Back at 14:00:05 after missing 10:00-13:00: one catch-up, then 14:00 as usual.
    due = due_firings(
        HOURLY, utc(2026, 1, 1, 9), utc(2026, 1, 1, 14, 0, 5), MissedFirePolicy.RUN_ONCE
    )
    assert due.fire_at == (utc(2026, 1, 1, 13), utc(2026, 1, 1, 14))
    assert due.caught_up


def test_due_skip_keeps_on_time_firing_after_downtime():
    due = due_firings(HOURLY, utc(2026, 1, 1, 9), utc(2026, 1, 1, 14, 0, 5), MissedFirePolicy.SKIP)
    assert due.fire_at == (utc(2026, 1, 1, 14),)
    assert due.missed_until == utc(2026, 1, 1, 13)


def test_due_policy_comes_from_the_spec_by_default():
    schedule = parse_schedule({"cron": "0 * * * *", "missed_fire_policy": "run_once"})
    due = due_firings(schedule, utc(2026, 1, 1, 9), utc(2026, 1, 2))
    assert due.caught_up and len(due.fire_at) == 2  # catch-up for 10:00..23:00, then 00:00


def test_due_run_once_after_a_year_of_downtime_is_cheap_and_single():
    every_second = parse_schedule({"cron": "* * * * * *", "misfire_grace_s": 5})
    due = due_firings(every_second, utc(2025, 1, 1), utc(2026, 1, 1), MissedFirePolicy.RUN_ONCE)
    assert due.fire_at[0] == utc(2025, 12, 31, 23, 59, 54)  # the catch-up
    assert len(due.fire_at) == 1 + 6  # then 23:59:55 .. 00:00:00, on time
    assert due.missed_from == utc(2025, 1, 1, 0, 0, 1)


def test_due_dense_schedule_fires_every_slot_a_slow_tick_spans():
    every_10s = parse_schedule({"cron": "*/10 * * * * *"})
    due = due_firings(every_10s, utc(2026, 1, 1, 0, 0, 0), utc(2026, 1, 1, 0, 0, 35))
    assert due.fire_at == (
        utc(2026, 1, 1, 0, 0, 10),
        utc(2026, 1, 1, 0, 0, 20),
        utc(2026, 1, 1, 0, 0, 30),
    )


def test_due_never_ran_starts_from_now():
    due = due_firings(HOURLY, None, utc(2026, 1, 1, 10, 0, 30))
    assert due.fire_at == ()
    assert due.last_fire_at is None
    assert due.next_fire_at == utc(2026, 1, 1, 11)


def test_due_clock_going_back_never_refires():
    due = due_firings(HOURLY, utc(2026, 1, 1, 10), utc(2026, 1, 1, 9, 30))
    assert due.fire_at == ()
    assert due.last_fire_at == utc(2026, 1, 1, 10)
    assert due.next_fire_at == utc(2026, 1, 1, 11)


def test_due_end_at_reached():
    schedule = parse_schedule({"cron": "0 * * * *", "end_at": "2026-01-01T11:00:00Z"})
    due = due_firings(schedule, utc(2026, 1, 1, 10), utc(2026, 1, 1, 11, 0, 1))
    assert due.fire_at == (utc(2026, 1, 1, 11),)
    assert due.next_fire_at is None
    assert due_firings(schedule, due.last_fire_at, utc(2026, 1, 2)).fire_at == ()


def test_schedule_due_firing_key_is_stable_and_readable():
    key = firing_key("trg_1", utc(2026, 3, 8, 7))
    assert key == "schedule-trg_1-20260308T070000Z"
    same_instant = utc(2026, 3, 8, 7).astimezone(ZoneInfo("America/New_York"))  # 03:00 EDT
    assert firing_key("trg_1", same_instant) == key
    assert ":" not in firing_key("tenant:trigger", utc(2026, 1, 1))
    assert firing_key("trg_1", utc(2026, 1, 1)) != firing_key("trg_2", utc(2026, 1, 1))


def test_schedule_due_firing_key_refuses_naive():
    with pytest.raises(ValueError, match="timezone-aware"):
        firing_key("t", datetime(2026, 1, 1))


def test_schedule_due_two_replicas_from_the_same_watermark_agree_on_keys():
    # Split brain: both think they lead, both read the same last_fire_at.
    last = utc(2026, 1, 1, 9)
    a = due_firings(HOURLY, last, utc(2026, 1, 1, 13, 20), MissedFirePolicy.RUN_ONCE)
    b = due_firings(HOURLY, last, utc(2026, 1, 1, 13, 20, 40), MissedFirePolicy.RUN_ONCE)
    assert [firing_key("t", x) for x in a.fire_at] == [firing_key("t", x) for x in b.fire_at]


def test_due_large_on_time_burst_comes_in_bounded_batches():
    every_second = parse_schedule({"cron": "* * * * * *", "misfire_grace_s": 1500})
    now = utc(2026, 1, 1, 1)
    last: datetime | None = now - timedelta(seconds=1500)
    started: list[datetime] = []
    calls = 0
    while True:
        due = due_firings(every_second, last, now)
        calls += 1
        started.extend(due.fire_at)
        last = due.last_fire_at
        if due.next_fire_at is None or due.next_fire_at > now:
            break
    assert calls == 2
    assert len(started) == len(set(started)) == 1500
    assert started[-1] == now

"""Fire times of a schedule: the next one, a preview, and what is due now.

Pure functions of a compiled :class:`~flowmill.triggers.schedule.spec.Schedule` and
aware datetimes (UTC in, UTC out); the scheduler service passes ``now`` from its
``Clock``.

DST, for cron schedules (Vixie/Debian cron's rules, which cron users know):

- A **fixed-time** expression (no ``*`` at the start of the minute or hour field,
  e.g. ``30 2 * * *``) fires once per matching local time, whatever the clock does.
  A time skipped by a spring-forward gap fires once at the end of the gap (02:30 in
  New York on the spring-forward day fires at 03:00 EDT); a time repeated by a
  fall-back overlap fires only at its first occurrence (01:30 EDT, not 01:30 EST).
- A **wildcard** expression (``*/15 * * * *``, ``0 * * * *``) follows elapsed time:
  readings that do not exist are simply absent and repeated readings fire again, so
  an hourly job still fires every real hour across both transitions.

Intervals (``every``/``interval_s``) count elapsed seconds and ignore the zone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime

from flowmill.triggers.schedule.cron import CronExpression, CronMatcher
from flowmill.triggers.schedule.spec import MissedFirePolicy, Schedule
from flowmill.triggers.schedule.zones import last_transition, next_transition, offset_at

MAX_PREVIEW = 1000
# Firings returned by one due_firings call. A dense schedule with a long grace could
# otherwise have tens of thousands on time at once; the rest come on the next call,
# which is due at once since next_fire_at is then not in the future.
MAX_FIRINGS_PER_CALL = 1000
_MAX_SEGMENTS = 1000  # transitions crossed while looking for one fire time
# Windows (seconds back from a bound) tried, smallest first, to find the latest fire
# time before it without walking a dense schedule from the distant past.
_LOOKBACK_WINDOWS = (60, 3600, 86400, 32 * 86400, 400 * 86400, 5 * 366 * 86400)


def _instant(moment: datetime) -> float:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("expected a timezone-aware datetime")
    return moment.timestamp()


def _utc(instant: int) -> datetime:
    return datetime.fromtimestamp(instant, UTC)


def _cron_at_or_after(
    cron: CronExpression, schedule: Schedule, lo: int, matcher: CronMatcher
) -> int | None:
    """The first fire instant ``>= lo`` of a cron schedule, by the DST rules above.

    Walks segments of constant UTC offset: within one, local reading = instant +
    offset, so croniter's naive matches map straight back to instants.
    """
    zone, fixed = schedule.zone, cron.fixed_time
    offset = offset_at(zone, lo)
    bound = lo + offset
    previous = last_transition(zone, lo)
    if fixed and previous is not None:
        if previous.is_gap and previous.at == lo:
            # lo is the end of a gap: a fixed time skipped by it fires right here.
            skipped = matcher.at_or_after(lo + previous.before)
            if skipped is not None and skipped < lo + previous.after:
                return lo
        elif not previous.is_gap:
            # Readings repeated after a fall-back already fired before it.
            bound = max(bound, previous.at + previous.before)
    cursor = lo
    for _ in range(_MAX_SEGMENTS):
        reading = matcher.at_or_after(bound)
        if reading is None:
            return None
        candidate = reading - offset
        crossing = next_transition(zone, cursor, candidate)
        if crossing is None:
            return candidate
        # The match lies past a transition, so it is not a reading of this segment.
        if fixed and crossing.is_gap and reading < crossing.at + crossing.after:
            return crossing.at  # a fixed time in the gap: once, when the gap ends
        cursor, offset = crossing.at, crossing.after
        bound = crossing.at + crossing.after
        if fixed and not crossing.is_gap:
            bound = crossing.at + crossing.before  # skip the repeated readings
    return None


class _Finder:
    """Fire instants of one schedule, reusing one cron matcher across calls."""

    def __init__(self, schedule: Schedule) -> None:
        self.schedule = schedule
        self._matcher = schedule.cron.matcher() if schedule.cron is not None else None

    def at_or_after(self, lo: int) -> int | None:
        """The first fire instant ``>= lo`` within ``start``/``end``."""
        schedule = self.schedule
        if schedule.start is not None:
            lo = max(lo, schedule.start)
        found: int | None
        if schedule.interval is not None:
            anchor = schedule.start if schedule.start is not None else 0
            steps = max(0, -(-(lo - anchor) // schedule.interval))  # ceiling division
            found = anchor + steps * schedule.interval
        elif schedule.cron is not None and self._matcher is not None:
            found = _cron_at_or_after(schedule.cron, schedule, lo, self._matcher)
        else:  # pragma: no cover - compile() sets exactly one of cron and interval
            raise ValueError("schedule has neither cron nor interval")
        if found is None or (schedule.end is not None and found > schedule.end):
            return None
        return found

    def between(self, lo: int, hi: int, limit: int | None = None) -> list[int]:
        """Fire instants in ``[lo, hi]``, the first ``limit`` of them when given."""
        out: list[int] = []
        found = self.at_or_after(lo)
        while found is not None and found <= hi and (limit is None or len(out) < limit):
            out.append(found)
            found = self.at_or_after(found + 1)
        return out

    def latest_at_or_before(self, hi: int, floor: int) -> int | None:
        """The latest fire instant in ``(floor, hi]``, searching back in growing windows."""
        schedule = self.schedule
        if schedule.end is not None:
            hi = min(hi, schedule.end)
        if hi <= floor:
            return None
        if schedule.interval is not None:
            anchor = schedule.start if schedule.start is not None else 0
            candidate = anchor + ((hi - anchor) // schedule.interval) * schedule.interval
            return (
                candidate
                if candidate > floor and self.at_or_after(candidate) == candidate
                else None
            )
        for window in _LOOKBACK_WINDOWS:
            lo = max(floor + 1, hi - window)
            fires = self.between(lo, hi)
            if fires:
                return fires[-1]
            if lo == floor + 1:
                return None
        fires = self.between(floor + 1, hi)
        return fires[-1] if fires else None


def next_fire_after(schedule: Schedule, after: datetime) -> datetime | None:
    """The first fire time strictly after ``after``, or ``None`` when the schedule ended.

    Args:
        schedule: A compiled schedule.
        after: An aware datetime (any zone).

    Returns:
        An aware UTC datetime on a whole second.
    """
    found = _Finder(schedule).at_or_after(math.floor(_instant(after)) + 1)
    return _utc(found) if found is not None else None


def next_runs(schedule: Schedule, after: datetime, n: int) -> list[datetime]:
    """The next ``n`` fire times after ``after`` (fewer if the schedule ends): a preview.

    Raises:
        ValueError: ``n`` outside 0..1000.
    """
    if not 0 <= n <= MAX_PREVIEW:
        raise ValueError(f"n must be between 0 and {MAX_PREVIEW}")
    out: list[datetime] = []
    finder = _Finder(schedule)
    lo = math.floor(_instant(after)) + 1
    while len(out) < n:
        found = finder.at_or_after(lo)
        if found is None:
            break
        out.append(_utc(found))
        lo = found + 1
    return out


@dataclass(frozen=True)
class DueFirings:
    """What the scheduler should do for one schedule at ``now``.

    Attributes:
        fire_at: Start one execution per fire time, deduplicated by
            :func:`~flowmill.triggers.keys.firing_key`. Oldest first.
        missed_from: Earliest fire time that was older than the grace window
            (dropped under ``skip``, caught up under ``run_once``), for the record.
        missed_until: Latest such fire time.
        caught_up: Whether ``fire_at[0]`` is the ``run_once`` catch-up firing (it
            carries ``missed_until`` as its fire time).
        last_fire_at: The new watermark: store it and pass it back next time.
        next_fire_at: The first fire time after ``now``: when to look again.
    """

    fire_at: tuple[datetime, ...]
    missed_from: datetime | None
    missed_until: datetime | None
    caught_up: bool
    last_fire_at: datetime | None
    next_fire_at: datetime | None


def due_firings(
    schedule: Schedule,
    last_fire_at: datetime | None,
    now: datetime,
    policy: MissedFirePolicy | None = None,
) -> DueFirings:
    """The firings due at ``now`` since ``last_fire_at``, by the missed-fire policy.

    A fire time up to ``misfire_grace_s`` old is on time and fires. Older ones are
    missed: ``skip`` drops them; ``run_once`` adds a single catch-up firing for all
    of them, keyed by the latest (so replicas agree on its key).

    Args:
        schedule: A compiled schedule.
        last_fire_at: The watermark stored last time (the latest fire time already
            handled). ``None`` for a schedule that never ran: nothing before ``now``
            is due, so enabling a schedule does not replay its past.
        now: The current time, aware.
        policy: Overrides the spec's ``missed_fire_policy``.
    """
    policy = MissedFirePolicy(policy or schedule.spec.missed_fire_policy)
    now_s = math.floor(_instant(now))
    if last_fire_at is None:
        return DueFirings((), None, None, False, None, next_fire_after(schedule, now))
    last_s = math.floor(_instant(last_fire_at))
    finder = _Finder(schedule)
    first = finder.at_or_after(last_s + 1)
    if first is None or first > now_s:
        # Nothing due (also when the clock went back: never before the watermark).
        following = _utc(first) if first is not None else None
        return DueFirings((), None, None, False, last_fire_at, following)
    cutoff = now_s - schedule.spec.misfire_grace_s  # older than this: missed
    on_time = finder.between(max(first, cutoff), now_s, MAX_FIRINGS_PER_CALL)
    missed_from = missed_until = None
    if first < cutoff:
        missed_from = first
        missed_until = finder.latest_at_or_before(cutoff - 1, last_s)
    fire = [_utc(t) for t in on_time]
    caught_up = policy is MissedFirePolicy.RUN_ONCE and missed_until is not None
    if caught_up and missed_until is not None:
        fire.insert(0, _utc(missed_until))
    watermark = on_time[-1] if on_time else missed_until
    # After the watermark: beyond now, unless MAX_FIRINGS_PER_CALL cut the batch short.
    upcoming = finder.at_or_after(watermark + 1) if watermark is not None else None
    return DueFirings(
        fire_at=tuple(fire),
        missed_from=_utc(missed_from) if missed_from is not None else None,
        missed_until=_utc(missed_until) if missed_until is not None else None,
        caught_up=caught_up,
        last_fire_at=_utc(watermark) if watermark is not None else last_fire_at,
        next_fire_at=_utc(upcoming) if upcoming is not None else None,
    )

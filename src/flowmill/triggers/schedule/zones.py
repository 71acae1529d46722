"""UTC-offset transitions of an IANA zone (DST starts and ends, rule changes).

``zoneinfo`` answers "what is the offset at this instant" but does not list its
transitions, and schedules need them: a transition is where local wall-clock
readings jump (a gap) or repeat (an overlap). They are found by sampling the offset
every few hours and bisecting each change to the second, once per zone and year.

All instants here are integer Unix seconds; offsets are seconds east of UTC.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

# No zone changes its offset twice within this span, so sampling this often cannot
# miss a transition (real ones are months apart; the closest in tzdb are days apart).
_SAMPLE_S = 3 * 3600
_LOOKBACK_YEARS = 3


@dataclass(frozen=True)
class Transition:
    """The offset changes at ``at``: ``before`` applies until ``at - 1``, ``after`` from ``at``.

    ``after > before`` opens a gap (spring forward: local readings skipped);
    ``after < before`` an overlap (fall back: local readings repeated).
    """

    at: int
    before: int
    after: int

    @property
    def is_gap(self) -> bool:
        """Whether local time jumps forward here (some readings never happen)."""
        return self.after > self.before


def offset_at(zone: ZoneInfo, instant: int) -> int:
    """The zone's UTC offset, in seconds, at a Unix instant."""
    offset = datetime.fromtimestamp(instant, zone).utcoffset()
    return int(offset.total_seconds()) if offset is not None else 0


def _year_start(year: int) -> int:
    return int(datetime(year, 1, 1, tzinfo=UTC).timestamp())


@lru_cache(maxsize=1024)
def _year_transitions(key: str, year: int) -> tuple[Transition, ...]:
    zone = ZoneInfo(key)
    start, end = _year_start(year), _year_start(year + 1)
    found: list[Transition] = []
    t, before = start, offset_at(zone, start)
    while t < end:
        probe = min(t + _SAMPLE_S, end)
        after = offset_at(zone, probe)
        if after != before:
            lo, hi = t, probe  # offset(lo) == before, offset(hi) == after
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if offset_at(zone, mid) == before:
                    lo = mid
                else:
                    hi = mid
            found.append(Transition(hi, before, after))
            before = after
        t = probe
    return tuple(found)


def _year_of(instant: int) -> int:
    return datetime.fromtimestamp(instant, UTC).year


def transitions_in_year(zone: ZoneInfo, year: int) -> tuple[Transition, ...]:
    """Transitions whose instant falls in ``year`` (UTC), in order."""
    return _year_transitions(zone.key, year)


def next_transition(zone: ZoneInfo, after: int, until: int) -> Transition | None:
    """The first transition with ``after < at <= until``, if any."""
    for year in range(_year_of(after), _year_of(until) + 1):
        for tr in _year_transitions(zone.key, year):
            if tr.at > until:
                return None
            if tr.at > after:
                return tr
    return None


def last_transition(zone: ZoneInfo, at: int) -> Transition | None:
    """The latest transition with ``at' <= at``, looking back a few years."""
    year = _year_of(at)
    for y in range(year, year - _LOOKBACK_YEARS - 1, -1):
        for tr in reversed(_year_transitions(zone.key, y)):
            if tr.at <= at:
                return tr
    return None

"""Cron expressions: parsing, validation, and matches on a naive wall clock.

Five fields (``minute hour day-of-month month day-of-week``) or six with seconds
first (``second minute hour ...``, as in Quartz, Spring and node-cron), plus the
``@hourly``-style aliases. Matching is delegated to croniter on *naive* local
readings only, so its own timezone handling never comes into play: DST is decided
in :mod:`flowmill.triggers.schedule.timeline`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from croniter import CroniterBadCronError, CroniterBadDateError, croniter

from flowmill.domain.errors import Invalid

ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_EPOCH = datetime(1970, 1, 1)
# Where to check that an expression can fire at all: a leap year start, so that
# "29 Feb" expressions count as valid.
_PROBE = datetime(2024, 1, 1)


class CronError(Invalid):
    """A cron expression that cannot be used."""


def _naive(reading: int) -> datetime:
    return _EPOCH + timedelta(seconds=reading)


def _reading(moment: datetime) -> int:
    return int((moment - _EPOCH).total_seconds())


class CronExpression:
    """A validated cron expression.

    Attributes:
        text: The expression as written.
        fields: Six fields, seconds first (``"0"`` added to five-field expressions).
        fixed_time: Whether it names particular wall-clock times: neither the minute
            nor the hour field starts with ``*``. Decides DST handling, as in
            Vixie/Debian cron: a fixed time fires once a day whatever the clock
            does; an expression with ``*`` in the minute or hour follows elapsed time.
    """

    def __init__(self, text: str) -> None:
        self.text = text
        alias = text.strip().lower()
        if alias.startswith("@") and alias not in ALIASES:
            known = ", ".join(sorted(ALIASES))
            raise CronError(f"unknown cron alias {text.strip()!r}; known: {known}")
        fields = ALIASES.get(alias, text).split()
        if len(fields) == 5:
            fields = ["0", *fields]
        elif len(fields) != 6:
            raise CronError(
                f"cron expression {text!r} has {len(fields)} field(s); expected 5 "
                "(minute hour day month weekday) or 6 (second first)"
            )
        self.fields = tuple(fields)
        self.fixed_time = not (fields[1].startswith("*") or fields[2].startswith("*"))
        self._expression = " ".join(fields)
        try:
            probe = self._iterator(_PROBE)
            probe.get_next(datetime)
        except CroniterBadDateError as e:
            raise CronError(f"cron expression {text!r} never matches a date") from e
        except (CroniterBadCronError, ValueError, KeyError) as e:
            raise CronError(f"invalid cron expression {text!r}: {e}") from e

    def _iterator(self, start: datetime) -> Any:
        return croniter(self._expression, start, second_at_beginning=True)

    def matcher(self) -> CronMatcher:
        """A fresh matcher (croniter keeps state, so one per computation)."""
        return CronMatcher(self)

    def __repr__(self) -> str:
        return f"CronExpression({self.text!r})"


class CronMatcher:
    """Finds matches of a :class:`CronExpression` on naive wall-clock readings.

    A reading is the local date and time written as seconds since 1970-01-01T00:00
    (as if the zone were UTC): calendar arithmetic without any offset.
    """

    def __init__(self, expression: CronExpression) -> None:
        self._it = expression._iterator(_EPOCH)

    def at_or_after(self, reading: int) -> int | None:
        """The first matching reading ``>= reading``, or ``None`` if none within ~50 years."""
        try:
            found = self._it.get_next(datetime, start_time=_naive(reading - 1))
        except CroniterBadDateError:
            return None
        return _reading(found)

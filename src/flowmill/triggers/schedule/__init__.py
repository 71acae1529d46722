"""Schedules: cron (5 or 6 fields) and fixed intervals, per-trigger IANA timezone.

Pure computation for the scheduler service: parse a trigger's spec once with
:func:`parse_schedule`, then ask :func:`next_fire_after`, :func:`next_runs` (the
API's preview) and :func:`due_firings` (what to start now, by the missed-fire
policy). DST rules are documented in :mod:`flowmill.triggers.schedule.timeline`.
"""

from flowmill.triggers.keys import firing_key
from flowmill.triggers.schedule.cron import CronError, CronExpression
from flowmill.triggers.schedule.spec import (
    MissedFirePolicy,
    Schedule,
    ScheduleError,
    ScheduleSpec,
    parse_every,
    parse_schedule,
)
from flowmill.triggers.schedule.timeline import (
    DueFirings,
    due_firings,
    next_fire_after,
    next_runs,
)

__all__ = [
    "CronError",
    "CronExpression",
    "DueFirings",
    "MissedFirePolicy",
    "Schedule",
    "ScheduleError",
    "ScheduleSpec",
    "due_firings",
    "firing_key",
    "next_fire_after",
    "next_runs",
    "parse_every",
    "parse_schedule",
]

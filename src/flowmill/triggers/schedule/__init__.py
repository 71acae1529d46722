"""Schedules: cron (5 or 6 fields) and fixed intervals, per-trigger IANA timezone."""

from flowmill.triggers.schedule.cron import CronError, CronExpression
from flowmill.triggers.schedule.spec import (
    MissedFirePolicy,
    Schedule,
    ScheduleError,
    ScheduleSpec,
    parse_every,
    parse_schedule,
)

__all__ = [
    "CronError",
    "CronExpression",
    "MissedFirePolicy",
    "Schedule",
    "ScheduleError",
    "ScheduleSpec",
    "parse_every",
    "parse_schedule",
]

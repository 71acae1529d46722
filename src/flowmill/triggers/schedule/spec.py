"""Schedule specs: what a schedule trigger's config says, validated and compiled.

{"cron": "30 2 * * *", "timezone": "America/New_York"}
{"cron": "*/10 * * * * *"}                      # six fields: seconds first
{"every": "15m"}  or  {"interval_s": 900}       # fixed intervals of elapsed time
optional: "start_at", "end_at" (ISO 8601 with offset), "missed_fire_policy"
("skip" | "run_once"), "misfire_grace_s"
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from flowmill.domain.errors import Invalid
from flowmill.triggers.schedule.cron import CronExpression

MAX_INTERVAL_S = 366 * 86400
DEFAULT_GRACE_S = 60
_UNITS = {"w": 604800, "d": 86400, "h": 3600, "m": 60, "s": 1}
_EVERY = re.compile(r"(\d+)\s*([wdhms])")
# Zone names ZoneInfo would load but a schedule must not use: "right/" zones count
# leap seconds (every instant off by ~27 s), the others name the host's own zone.
_REFUSED_ZONES = ("right/", "posix/", "localtime", "posixrules", "Factory")


class MissedFirePolicy(StrEnum):
    """What to do with fire times that passed while no scheduler was running."""

    SKIP = "skip"  # drop them; the schedule resumes at its next fire time
    RUN_ONCE = "run_once"  # start one execution standing for all of them, then resume


class ScheduleError(Invalid):
    """A schedule spec that cannot be used; the message names the field."""


def parse_every(text: str) -> int:
    """Seconds in ``"15m"``, ``"1h30m"``, ``"90s"``, ``"2d"``, ``"1w"``.

    Raises:
        ValueError: Anything else, or zero.
    """
    compact = text.strip().lower().replace(" ", "")
    if not compact or _EVERY.sub("", compact):
        raise ValueError(f"cannot read interval {text!r}; write e.g. '15m', '1h30m', '90s', '2d'")
    seconds = sum(int(n) * _UNITS[unit] for n, unit in _EVERY.findall(compact))
    if seconds <= 0:
        raise ValueError("the interval must be at least 1 s")
    return seconds


def load_zone(name: str) -> ZoneInfo:
    """The IANA zone called ``name``.

    Raises:
        ValueError: Unknown or refused name.
    """
    if not name or name.startswith(_REFUSED_ZONES):
        raise ValueError(f"unknown IANA timezone {name!r}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as e:
        raise ValueError(f"unknown IANA timezone {name!r}") from e


class ScheduleSpec(BaseModel):
    """The config of a schedule trigger. Exactly one of ``cron``, ``every``, ``interval_s``.

    Attributes:
        cron: Cron expression, 5 fields or 6 (seconds first), or an ``@daily`` alias.
        every: Interval as text (``"15m"``).
        interval_s: Interval in seconds.
        timezone: IANA zone in which ``cron`` is read (ignored by intervals, which
            count elapsed time).
        start_at: No fire before this instant; intervals count from it (default:
            the Unix epoch, so every replica computes the same grid).
        end_at: No fire after this instant (inclusive).
        missed_fire_policy: ``skip`` (default) or ``run_once``.
        misfire_grace_s: A fire time this late is still on time (a slow tick, a
            leader hand-over), not missed.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    cron: str | None = Field(None, min_length=1, max_length=200)
    every: str | None = Field(None, min_length=1, max_length=50)
    interval_s: int | None = Field(None, ge=1, le=MAX_INTERVAL_S)
    timezone: str = Field("UTC", min_length=1, max_length=64)
    start_at: AwareDatetime | None = None
    end_at: AwareDatetime | None = None
    missed_fire_policy: MissedFirePolicy = MissedFirePolicy.SKIP
    misfire_grace_s: int = Field(DEFAULT_GRACE_S, ge=0, le=86400)

    @field_validator("cron")
    @classmethod
    def _cron_parses(cls, value: str | None) -> str | None:
        if value is not None:
            CronExpression(value)  # CronError is a ValueError: reported on this field
        return value

    @field_validator("every")
    @classmethod
    def _every_parses(cls, value: str | None) -> str | None:
        if value is not None and parse_every(value) > MAX_INTERVAL_S:
            raise ValueError("at most 366 days")
        return value

    @field_validator("timezone")
    @classmethod
    def _zone_exists(cls, value: str) -> str:
        load_zone(value)
        return value

    @model_validator(mode="after")
    def _coherent(self) -> ScheduleSpec:
        given = [k for k in ("cron", "every", "interval_s") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of cron, every, interval_s")
        if self.start_at and self.end_at and self.end_at < self.start_at:
            raise ValueError("end_at is before start_at")
        return self


@dataclass(frozen=True)
class Schedule:
    """A compiled :class:`ScheduleSpec`: what the fire-time functions take.

    Attributes:
        spec: The validated spec.
        zone: Its timezone.
        cron: The cron expression, for cron schedules.
        interval: Seconds between fires, for interval schedules.
        start: First allowed fire instant (Unix seconds), or ``None``.
        end: Last allowed fire instant (Unix seconds), or ``None``.
    """

    spec: ScheduleSpec
    zone: ZoneInfo
    cron: CronExpression | None
    interval: int | None
    start: int | None
    end: int | None

    @classmethod
    def compile(cls, spec: ScheduleSpec) -> Schedule:
        """Compile a validated spec."""
        interval = spec.interval_s
        if spec.every is not None:
            interval = parse_every(spec.every)
        return cls(
            spec=spec,
            zone=load_zone(spec.timezone),
            cron=CronExpression(spec.cron) if spec.cron is not None else None,
            interval=interval,
            start=math.ceil(spec.start_at.timestamp()) if spec.start_at else None,
            end=math.floor(spec.end_at.timestamp()) if spec.end_at else None,
        )


def parse_schedule(raw: Mapping[str, Any], *, default_timezone: str = "UTC") -> Schedule:
    """Validate a schedule trigger's config and compile it.

    Args:
        raw: The config (``cron``/``every``/``interval_s``, ``timezone``...).
        default_timezone: Zone when the config names none (e.g. the workflow's
            ``settings.timezone``).

    Raises:
        ScheduleError: Invalid; the message names the field.
    """
    data = dict(raw)
    data.setdefault("timezone", default_timezone)
    try:
        spec = ScheduleSpec.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "schedule"
        message = str(first["msg"]).removeprefix("Value error, ")
        raise ScheduleError(f"{where}: {message}") from e
    return Schedule.compile(spec)

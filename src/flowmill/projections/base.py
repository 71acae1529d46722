"""What a read model is: a table and a pure fold of events into its rows.

A projection says which rows an event touches (:meth:`Projection.keys`) and how it
changes one (:meth:`Projection.apply`); it never reads or writes the database itself.
The projector loads the touched rows, folds a batch of events into them in memory and
writes them back, with the projection's cursor, in one transaction. So a projection is
a plain function of the event sequence: replaying it from sequence 0 gives the same
rows, and batch boundaries change nothing.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from datetime import datetime
from typing import Any, ClassVar

import sqlalchemy as sa

from flowmill.projections import sketch
from flowmill.store.event_feed import FeedEvent

Row = dict[str, Any]
Key = tuple[Any, ...]


class Projection(ABC):
    """One read model.

    Attributes:
        name: Its name (``flowmill projections rebuild NAME``); its cursor is the
            event consumer ``projection:<name>``.
        table: Its table; the primary key is ``tenant_id`` followed by ``key``.
        key: The key columns after ``tenant_id``.
        types: The event types it folds (:meth:`keys` gives no row for any other), so
            that the projector reads only those; ``None``: every event.
    """

    name: ClassVar[str]
    table: ClassVar[sa.Table]
    key: ClassVar[tuple[str, ...]]
    types: ClassVar[frozenset[str] | None] = None

    @property
    def consumer(self) -> str:
        """Its cursor's name in ``event_consumers``."""
        return f"projection:{self.name}"

    @abstractmethod
    def keys(self, event: FeedEvent) -> Iterable[Key]:
        """The rows ``event`` changes (none for events it ignores)."""

    @abstractmethod
    def empty(self, key: Key) -> Row:
        """A row that has seen no event yet (without ``tenant_id``)."""

    @abstractmethod
    def apply(self, row: Row, event: FeedEvent) -> None:
        """Fold ``event`` into ``row``."""

    def finish(self, row: Row) -> None:
        """Derive computed columns before the row is written (none by default)."""
        del row


def later(current: datetime | None, candidate: datetime) -> datetime:
    """The later of two times (``current`` may be unset)."""
    return candidate if current is None or candidate > current else current


def duration_columns() -> Row:
    """Initial values of the duration columns."""
    return {
        "duration_count": 0,
        "duration_sum_ms": 0,
        "avg_duration_ms": None,
        "p95_duration_ms": None,
        "durations": {},
    }


def add_duration(row: Row, ms: Any) -> None:
    """Count one duration (an event without one is not counted)."""
    if not isinstance(ms, int | float) or isinstance(ms, bool):
        return
    row["duration_count"] += 1
    row["duration_sum_ms"] += int(ms)
    sketch.add(row["durations"], ms)  # the row's own dict: loaded or made for this batch


def finish_durations(row: Row) -> None:
    """Average and p95 from the counters and the sketch."""
    n = row["duration_count"]
    row["avg_duration_ms"] = round(row["duration_sum_ms"] / n, 3) if n else None
    row["p95_duration_ms"] = sketch.quantile(row["durations"], 0.95)

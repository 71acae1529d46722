"""``workflow_activity``: per workflow and hour, starts, ends by status, durations.

An execution counts in the hour it started (``started``) and in the hour it ended
(its final status and duration): the analytics' time buckets. Hours are whole hours
since the Unix epoch in UTC; a day bucket adds 24 of them.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from flowmill.domain.events import EventType
from flowmill.projections.base import (
    Key,
    Projection,
    Row,
    add_duration,
    duration_columns,
    finish_durations,
)
from flowmill.store.event_feed import FeedEvent
from flowmill.store.tables import workflow_activity

E = EventType
_COLUMN = {
    E.EXECUTION_STARTED.value: "started",
    E.EXECUTION_COMPLETED.value: "succeeded",
    E.EXECUTION_FAILED.value: "failed",
    E.EXECUTION_CANCELLED.value: "cancelled",
}


def hour_of(at: datetime) -> int:
    """Whole hours since the Unix epoch (UTC)."""
    return int(at.timestamp()) // 3600


class WorkflowActivity(Projection):
    """Executions of each workflow, hour by hour."""

    name = "workflow_activity"
    table = workflow_activity
    key = ("workflow_id", "hour")
    types = frozenset(_COLUMN)

    def keys(self, event: FeedEvent) -> Iterable[Key]:
        workflow_id = event.payload.get("workflow_id")
        if event.type in _COLUMN and isinstance(workflow_id, str):
            return ((workflow_id, hour_of(event.timestamp)),)
        return ()

    def empty(self, key: Key) -> Row:
        return {
            "workflow_id": key[0],
            "hour": key[1],
            "started": 0,
            "succeeded": 0,
            "failed": 0,
            "cancelled": 0,
            **duration_columns(),
        }

    def apply(self, row: Row, event: FeedEvent) -> None:
        row[_COLUMN[event.type]] += 1
        if event.type in (E.EXECUTION_COMPLETED, E.EXECUTION_FAILED):
            add_duration(row, event.payload.get("duration_ms"))

    def finish(self, row: Row) -> None:
        finish_durations(row)

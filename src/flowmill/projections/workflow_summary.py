"""``workflow_summary``: per workflow, executions by status, last run, durations.

Executions count when they start (``execution.started``); ``queued`` counts starts a
limit held back. Durations are those of executions that ran to an end (completed or
failed), from start to end. Name and author come from ``workflow.created`` (and a
later rename), ``deleted_at`` from ``workflow.deleted``.
"""

from __future__ import annotations

from collections.abc import Iterable

from flowmill.domain.events import EventType
from flowmill.projections.base import (
    Key,
    Projection,
    Row,
    add_duration,
    duration_columns,
    finish_durations,
    later,
)
from flowmill.store.event_feed import FeedEvent
from flowmill.store.tables import workflow_summary

E = EventType
_WORKFLOW_EVENTS = {E.WORKFLOW_CREATED.value, E.WORKFLOW_UPDATED.value, E.WORKFLOW_DELETED.value}
_EXECUTION_EVENTS = {
    E.EXECUTION_STARTED.value,
    E.EXECUTION_QUEUED.value,
    E.EXECUTION_COMPLETED.value,
    E.EXECUTION_FAILED.value,
    E.EXECUTION_CANCELLED.value,
}


class WorkflowSummary(Projection):
    """Per workflow of a tenant: the seed's ``workflow_summary`` view, kept up to date."""

    name = "workflow_summary"
    table = workflow_summary
    key = ("workflow_id",)
    types = frozenset(_WORKFLOW_EVENTS | _EXECUTION_EVENTS)

    def keys(self, event: FeedEvent) -> Iterable[Key]:
        if event.type in self.types:
            workflow_id = event.payload.get("workflow_id")
            if isinstance(workflow_id, str):
                return ((workflow_id,),)
        return ()

    def empty(self, key: Key) -> Row:
        return {
            "workflow_id": key[0],
            "name": None,
            "created_by": None,
            "created_at": None,
            "deleted_at": None,
            "executions": 0,
            "queued": 0,
            "succeeded": 0,
            "failed": 0,
            "cancelled": 0,
            "last_executed_at": None,
            **duration_columns(),
        }

    def apply(self, row: Row, event: FeedEvent) -> None:
        p = event.payload
        match event.type:
            case E.WORKFLOW_CREATED:
                row["name"] = p.get("name")
                row["created_by"] = p.get("created_by")
                row["created_at"] = event.timestamp
            case E.WORKFLOW_UPDATED:
                if isinstance(p.get("name"), str):
                    row["name"] = p["name"]
            case E.WORKFLOW_DELETED:
                row["deleted_at"] = event.timestamp
            case E.EXECUTION_STARTED:
                row["executions"] += 1
                row["last_executed_at"] = later(row["last_executed_at"], event.timestamp)
            case E.EXECUTION_QUEUED:
                row["queued"] += 1
            case E.EXECUTION_COMPLETED:
                row["succeeded"] += 1
                add_duration(row, p.get("duration_ms"))
            case E.EXECUTION_FAILED:
                row["failed"] += 1
                add_duration(row, p.get("duration_ms"))
            case E.EXECUTION_CANCELLED:
                row["cancelled"] += 1

    def finish(self, row: Row) -> None:
        finish_durations(row)

"""``node_performance``: per workflow and node, attempts, failures, retries, durations.

An attempt counts when it ends (``node.completed`` or ``node.failed``, with its
duration); ``retries`` counts attempts scheduled after a failure. Outputs copied into
a retried execution ran in the old one and are not counted again (they have no events).
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
from flowmill.store.tables import node_performance

E = EventType
_EVENTS = {E.NODE_COMPLETED.value, E.NODE_FAILED.value, E.NODE_RETRY_SCHEDULED.value}


class NodePerformance(Projection):
    """Per node of each workflow: the seed's ``node_performance`` view."""

    name = "node_performance"
    table = node_performance
    key = ("workflow_id", "node_id")
    types = frozenset(_EVENTS)

    def keys(self, event: FeedEvent) -> Iterable[Key]:
        if event.type not in _EVENTS:
            return ()
        workflow_id, node_id = event.payload.get("workflow_id"), event.payload.get("node_id")
        if isinstance(workflow_id, str) and isinstance(node_id, str):
            return ((workflow_id, node_id),)
        return ()

    def empty(self, key: Key) -> Row:
        return {
            "workflow_id": key[0],
            "node_id": key[1],
            "runs": 0,
            "failures": 0,
            "retries": 0,
            "last_run_at": None,
            **duration_columns(),
        }

    def apply(self, row: Row, event: FeedEvent) -> None:
        if event.type == E.NODE_RETRY_SCHEDULED:
            row["retries"] += 1
            return
        row["runs"] += 1
        if event.type == E.NODE_FAILED:
            row["failures"] += 1
        row["last_run_at"] = later(row["last_run_at"], event.timestamp)
        add_duration(row, event.payload.get("duration_ms"))

    def finish(self, row: Row) -> None:
        finish_durations(row)

"""Domain events as the seeds' Socket.IO events (seed 002), pure.

``execution.started`` → ``started``, ``node.started`` → ``step_started``,
``node.completed`` → ``step_completed``, ``node.failed`` → ``step_failed``,
``execution.completed`` → ``completed``, ``execution.failed`` → ``failed``; and, so a
client sees every change, ``queued``, ``waiting``, ``cancelled``, ``step_waiting``,
``step_skipped``, ``step_retry_scheduled``. Every message carries the ids, a status,
the event's ``timestamp`` and ``sequence`` (the tenant's: per execution it only grows,
so clients can order and de-duplicate); step messages carry the step's timings and its
output or error, execution ends their duration and output or error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flowmill.store.event_feed import FeedEvent

SOCKET_EVENTS = {
    "execution.queued": ("queued", "queued"),
    "execution.started": ("started", "running"),
    "execution.waiting": ("waiting", "waiting"),
    "execution.completed": ("completed", "succeeded"),
    "execution.failed": ("failed", "failed"),
    "execution.cancelled": ("cancelled", "cancelled"),
    "node.started": ("step_started", "running"),
    "node.completed": ("step_completed", "succeeded"),
    "node.failed": ("step_failed", "failed"),
    "node.waiting": ("step_waiting", "waiting"),
    "node.skipped": ("step_skipped", "skipped"),
    "node.retry_scheduled": ("step_retry_scheduled", "queued"),
}
_COPIED = (
    "workflow_id",
    "node_id",
    "attempt",
    "duration_ms",
    "error",
    "will_retry",
    "delay_ms",
    "until",
    "reason",
    "retry_of",
    "version",
    "trigger_type",
)


@dataclass(frozen=True)
class StepDetails:
    """What the event store does not hold: a step's output and timings."""

    output: Any = None
    started_at: str | None = None
    completed_at: str | None = None


def rooms_of(e: FeedEvent) -> list[str]:
    """The rooms an event goes to: its execution's, its workflow's, its tenant's."""
    rooms = [f"tenant:{e.tenant_id}"]
    if e.type in SOCKET_EVENTS:
        rooms.append(f"execution:{e.stream_id}")
        workflow_id = e.payload.get("workflow_id")
        if isinstance(workflow_id, str):
            rooms.append(f"workflow:{workflow_id}")
    return rooms


def socket_message(
    e: FeedEvent, details: StepDetails | None = None
) -> tuple[str, dict[str, Any]] | None:
    """The Socket.IO event name and body of ``e`` (``None``: not an execution event)."""
    mapped = SOCKET_EVENTS.get(e.type)
    if mapped is None:
        return None
    name, status = mapped
    body: dict[str, Any] = {
        "execution_id": e.stream_id,
        "status": status,
        "type": e.type,
        "sequence": e.sequence,
        "timestamp": e.timestamp.isoformat(),
    }
    body.update({k: e.payload[k] for k in _COPIED if k in e.payload})
    if "node_id" in body:
        body["step_id"] = body["node_id"]
    if details is not None:
        if name in ("step_completed", "completed"):
            body["output"] = details.output
        if details.started_at is not None:
            body["started_at"] = details.started_at
        if details.completed_at is not None:
            body["completed_at"] = details.completed_at
    return name, body


def needs_details(e: FeedEvent) -> bool:
    """Whether ``e``'s message shows what only the rows hold (output, timings)."""
    return e.type in ("node.completed", "node.failed", "execution.completed")

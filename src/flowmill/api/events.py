"""``GET /api/executions/{id}/events``: an execution's events as Server-Sent Events.

The event store is the feed (DESIGN §6): the stream replays the execution's stored
events, then follows new ones. It wakes on this process's engine hub when the
execution changes here, and polls the store besides, so steps run by other processes
(workers) show up too. It ends after the execution's final event. ``Last-Event-ID``
(the event's sequence number) resumes a broken stream where it stopped.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Header, Request
from fastapi.responses import StreamingResponse

from flowmill.api.deps import Caller, Ctx, ExecutionIdPath
from flowmill.api.errors import ERROR_RESPONSES, NOT_FOUND, not_found
from flowmill.api.sse import Follow, event_schema, follow, resume_point, sse_message, sse_response
from flowmill.domain.events import EventType
from flowmill.store.queries import StoredEvent

router = APIRouter(tags=["executions"], responses=ERROR_RESPONSES)

_FINAL = {
    EventType.EXECUTION_COMPLETED.value,
    EventType.EXECUTION_FAILED.value,
    EventType.EXECUTION_CANCELLED.value,
}
_EVENT_SCHEMA = event_schema(
    "Event type, e.g. node.completed.", "JSON: sequence, type, timestamp, ..."
)


def format_event(e: StoredEvent) -> str:
    """One SSE message: ``id`` is the sequence number, ``event`` the event type."""
    data = {"sequence": e.sequence, "type": e.type, "timestamp": e.timestamp.isoformat()}
    data.update(e.payload)
    return sse_message(e.sequence, e.type, data)


@router.get(
    "/api/executions/{execution_id}/events",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {"text/event-stream": {"schema": _EVENT_SCHEMA}},
            "description": "`event: <type>`, `id: <sequence>`, `data: <JSON>` per event; "
            "ends after execution.completed, execution.failed or execution.cancelled.",
        },
        **NOT_FOUND,
    },
    summary="Follow an execution (Server-Sent Events)",
)
async def execution_events(
    ctx: Ctx,
    caller: Caller,
    execution_id: ExecutionIdPath,
    request: Request,
    last_event_id: Annotated[
        str | None,
        Header(alias="Last-Event-ID", max_length=20, description="Resume after this event."),
    ] = None,
) -> StreamingResponse:
    """The execution's events so far, then each new one as it is committed."""
    eid = str(execution_id)
    if await ctx.executions.get(caller.tenant_id, eid) is None:
        raise not_found("execution", eid)
    tenant = caller.tenant_id

    def _subscribe(wake: Callable[[], None]) -> Callable[[], None]:
        return ctx.runtime.engine.hub.subscribe(
            lambda fx: wake() if fx.execution_id == eid else None
        )

    spec: Follow[StoredEvent] = Follow(
        read=lambda after, limit: ctx.executions.events(tenant, eid, after, limit),
        sequence=lambda e: e.sequence,
        frame=format_event,
        subscribe=_subscribe,
        last=lambda e: e.type in _FINAL,
    )
    return sse_response(
        follow(spec, request, resume_point(last_event_id) or 0, f"following execution {eid}")
    )

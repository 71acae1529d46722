"""``GET /api/executions/{id}/events``: an execution's events as Server-Sent Events.

The event store is the feed (DESIGN §6): the stream replays the execution's stored
events, then follows new ones. It wakes on this process's engine hub when the
execution changes here, and polls the store besides, so steps run by other processes
(workers) show up too. It ends after the execution's final event. ``Last-Event-ID``
(the event's sequence number) resumes a broken stream where it stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, Request
from fastapi.responses import StreamingResponse

from flowmill import jsonutil
from flowmill.api.deps import Caller, Ctx, ExecutionIdPath
from flowmill.api.errors import ERROR_RESPONSES, NOT_FOUND, not_found
from flowmill.domain.events import EventType
from flowmill.domain.execution import Effects
from flowmill.store.queries import StoredEvent

router = APIRouter(tags=["executions"], responses=ERROR_RESPONSES)

_FINAL = {
    EventType.EXECUTION_COMPLETED.value,
    EventType.EXECUTION_FAILED.value,
    EventType.EXECUTION_CANCELLED.value,
}
# One message of the stream, as OpenAPI 3.2 describes Server-Sent Events.
_EVENT_SCHEMA = {
    "type": "object",
    "required": ["id", "event", "data"],
    "properties": {
        "id": {"type": "string", "description": "The event's sequence number."},
        "event": {"type": "string", "description": "Event type, e.g. node.completed."},
        "data": {"type": "string", "description": "JSON: sequence, type, timestamp, ..."},
    },
}
_POLL_S = 0.5
_KEEPALIVE_S = 15.0
_BATCH = 500


def format_event(e: StoredEvent) -> str:
    """One SSE message: ``id`` is the sequence number, ``event`` the event type."""
    data = {"sequence": e.sequence, "type": e.type, "timestamp": e.timestamp.isoformat()}
    data.update(e.payload)
    return f"id: {e.sequence}\nevent: {e.type}\ndata: {jsonutil.dumps(data)}\n\n"


def _resume_point(last_event_id: str | None) -> int:
    if last_event_id and last_event_id.strip().isdigit():
        return min(int(last_event_id.strip()), 2**63 - 1)
    return 0


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
    after = _resume_point(last_event_id)

    async def stream() -> AsyncIterator[str]:
        nonlocal after
        wake = asyncio.Event()

        def _listener(fx: Effects) -> None:
            if fx.execution_id == eid:
                wake.set()

        unsubscribe = ctx.runtime.engine.hub.subscribe(_listener)
        try:
            yield ": following execution " + eid + "\n\n"
            quiet = 0.0
            while True:
                wake.clear()  # before reading, so a commit during the read still wakes us
                batch = await ctx.executions.events(tenant, eid, after, _BATCH)
                for e in batch:
                    after = e.sequence
                    yield format_event(e)
                    if e.type in _FINAL:
                        return
                if len(batch) == _BATCH:
                    continue
                if await request.is_disconnected():
                    return
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), _POLL_S)
                quiet = 0.0 if batch else quiet + _POLL_S
                if quiet >= _KEEPALIVE_S:
                    quiet = 0.0
                    yield ": keep-alive\n\n"
        finally:
            unsubscribe()

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )

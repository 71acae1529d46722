"""The tenant-wide event feed: ``GET /api/events`` (pages by sequence number) and
``GET /api/events/stream`` (the same as Server-Sent Events, resumable).

Everything that happens to the caller's tenant, in commit order, with the gapless
per-tenant sequence number as cursor: an integration that stores the last number it
handled and asks for what follows never misses nor repeats an event.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import sqlalchemy as sa
from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse

from flowmill.api.analytics_schemas import FeedEventOut, FeedPage
from flowmill.api.deps import Caller, Ctx
from flowmill.api.errors import ERROR_RESPONSES
from flowmill.api.sse import (
    MAX_EVENT_ID,
    Follow,
    event_schema,
    follow,
    resume_point,
    sse_message,
    sse_response,
)
from flowmill.store.event_feed import EventFeed, FeedEvent
from flowmill.store.tables import tenants

router = APIRouter(tags=["events"], responses=ERROR_RESPONSES)
_MAX_SEQ = MAX_EVENT_ID
After = Annotated[
    int, Query(ge=0, le=_MAX_SEQ, description="Sequence number to start after (0: the first).")
]


def _out(e: FeedEvent) -> FeedEventOut:
    return FeedEventOut(
        sequence=e.sequence,
        id=e.id,
        type=e.type,
        stream_id=e.stream_id,
        timestamp=e.timestamp,
        payload=e.payload,
    )


async def _head(ctx: Ctx, tenant_id: str) -> int:
    q = sa.select(tenants.c.event_seq).where(tenants.c.id == tenant_id)
    head = await ctx.runtime.db.read(lambda c: c.execute(q).scalar())
    return int(head or 0)


@router.get("/api/events", response_model=FeedPage, summary="Read the tenant's events")
async def read_feed(
    ctx: Ctx,
    caller: Caller,
    after: After = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> FeedPage:
    """The caller's events after sequence number `after`, oldest first."""
    events = await EventFeed(ctx.runtime.db).read(caller.tenant_id, after, limit)
    return FeedPage(
        items=[_out(e) for e in events],
        next_after=events[-1].sequence if events else after,
        head=await _head(ctx, caller.tenant_id),
    )


def format_feed_event(e: FeedEvent) -> str:
    """One SSE message: ``id`` is the sequence number, ``event`` the event type."""
    return sse_message(e.sequence, e.type, _out(e).model_dump(mode="json"))


_EVENT_SCHEMA = event_schema("Event type, e.g. execution.completed.", "JSON: a FeedEventOut.")


@router.get(
    "/api/events/stream",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {"text/event-stream": {"schema": _EVENT_SCHEMA}},
            "description": "`id: <sequence>`, `event: <type>`, `data: <JSON>` per event.",
        }
    },
    summary="Follow the tenant's events (Server-Sent Events)",
)
async def stream_feed(
    ctx: Ctx,
    caller: Caller,
    request: Request,
    after: Annotated[
        int | None, Query(ge=0, le=_MAX_SEQ, description="Start after (default: now).")
    ] = None,
    last_event_id: Annotated[
        str | None,
        Header(alias="Last-Event-ID", max_length=20, description="Resume after this event."),
    ] = None,
) -> StreamingResponse:
    """Every event of the caller's tenant from now on (or after `after`, or after the
    `Last-Event-ID` a reconnecting client sends), as each commits. Never ends."""
    tenant = caller.tenant_id
    cursor = resume_point(last_event_id)
    if cursor is None:
        cursor = after if after is not None else await _head(ctx, tenant)
    feed = EventFeed(ctx.runtime.db)

    def _subscribe(wake: Callable[[], None]) -> Callable[[], None]:
        # news of commits here and, distributed, in the workers
        return ctx.runtime.feed_news.subscribe(lambda t: wake() if t == tenant else None)

    spec: Follow[FeedEvent] = Follow(
        read=lambda cursor, limit: feed.read(tenant, cursor, limit),
        sequence=lambda e: e.sequence,
        frame=format_feed_event,
        subscribe=_subscribe,
    )
    return sse_response(follow(spec, request, cursor, f"following tenant events after {cursor}"))

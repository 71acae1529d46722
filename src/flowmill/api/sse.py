"""Server-Sent Events: the framing and the follow loop shared by the event streams.

``GET /api/events/stream`` (the tenant's feed) and ``GET /api/executions/{id}/events``
(one execution) send the same kind of message and follow the store the same way: read
what is past the cursor, send it, wait for news of a commit (or ``poll_s``), say
something every ``keepalive_s`` so proxies keep the connection, stop when the client
went away. Only what they read, what wakes them and when they end differ.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from fastapi import Request
from fastapi.responses import StreamingResponse

from flowmill import jsonutil

T = TypeVar("T")
MAX_EVENT_ID = 2**63 - 1
HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def sse_message(event_id: int, event: str, data: Any) -> str:
    """One SSE message: ``id`` (a sequence number), ``event`` (its type) and ``data``
    as one line of JSON (JSON escapes newlines, so the message cannot be cut short)."""
    return f"id: {event_id}\nevent: {event}\ndata: {jsonutil.dumps(data)}\n\n"


def sse_comment(text: str) -> str:
    """A comment line: ignored by clients, keeps the connection busy."""
    return f": {text}\n\n"


def event_schema(event_description: str, data_description: str) -> dict[str, Any]:
    """One message of a stream as OpenAPI 3.2 describes Server-Sent Events."""
    return {
        "type": "object",
        "required": ["id", "event", "data"],
        "properties": {
            "id": {"type": "string", "description": "The event's sequence number."},
            "event": {"type": "string", "description": event_description},
            "data": {"type": "string", "description": data_description},
        },
    }


def resume_point(last_event_id: str | None) -> int | None:
    """The sequence number a reconnecting ``EventSource`` resumes after, if it sent one."""
    if last_event_id and last_event_id.strip().isdigit():
        return min(int(last_event_id.strip()), MAX_EVENT_ID)
    return None


@dataclass
class Follow(Generic[T]):
    """How one stream follows the store.

    Attributes:
        read: The items after a sequence number, oldest first, at most ``batch``.
        sequence: An item's sequence number (the cursor moves to it).
        frame: An item as an SSE message.
        subscribe: Registers a wake-up callback for news of commits; returns the
            function that removes it.
        last: Whether an item ends the stream (sent, then the stream closes).
    """

    read: Callable[[int, int], Awaitable[Sequence[T]]]
    sequence: Callable[[T], int]
    frame: Callable[[T], str]
    subscribe: Callable[[Callable[[], None]], Callable[[], None]]
    last: Callable[[T], bool] | None = None
    batch: int = 500
    poll_s: float = 0.5
    keepalive_s: float = 15.0


async def follow(
    spec: Follow[T], request: Request, after: int, greeting: str
) -> AsyncIterator[str]:
    """The stream's messages after ``after``: what is stored, then each new one."""
    wake = asyncio.Event()
    unsubscribe = spec.subscribe(wake.set)
    try:
        yield sse_comment(greeting)
        quiet = 0.0
        while True:
            wake.clear()  # before reading, so a commit during the read still wakes us
            batch = await spec.read(after, spec.batch)
            for item in batch:
                after = spec.sequence(item)
                yield spec.frame(item)
                if spec.last is not None and spec.last(item):
                    return
            if len(batch) == spec.batch:
                continue
            if await request.is_disconnected():
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), spec.poll_s)
            quiet = 0.0 if batch else quiet + spec.poll_s
            if quiet >= spec.keepalive_s:
                quiet = 0.0
                yield sse_comment("keep-alive")
    finally:
        unsubscribe()


def sse_response(messages: AsyncIterator[str]) -> StreamingResponse:
    """A streaming ``text/event-stream`` response that no proxy buffers or caches."""
    return StreamingResponse(messages, media_type="text/event-stream", headers=HEADERS)

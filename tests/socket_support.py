"""Socket.IO clients for tests and benches: the real python-socketio client, a workflow
with a fan-out, a failure and a retry, and the events the store says it must produce."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import socketio
import sqlalchemy as sa

from flowmill.realtime.messages import SOCKET_EVENTS, socket_message
from flowmill.store.database import Database
from flowmill.store.event_feed import FeedEvent
from flowmill.store.tables import event_store

EVENT_NAMES = sorted({name for name, _ in SOCKET_EVENTS.values()})


def fan_out_fail_retry(flaky_url: str) -> dict[str, Any]:
    """t fans out to ``left`` and ``right``; ``right`` fails once (HTTP 503) and is
    retried; both join; ``boom`` then fails the execution."""
    return {
        "name": "Fan-out, retry, failure",
        "status": "active",
        "nodes": [
            {"id": "t", "type": "trigger"},
            {"id": "left", "type": "transform", "config": {"mapping": {"side": "left"}}},
            {
                "id": "right",
                "type": "http_request",
                "config": {"method": "GET", "url": flaky_url},
                "retry": {"max_attempts": 2, "backoff_ms": 0},
            },
            {"id": "join", "type": "transform", "config": {"mapping": {"joined": True}}},
            {"id": "boom", "type": "fail", "config": {"message": "boom"}},
        ],
        "edges": [
            {"source": "t", "target": "left"},
            {"source": "t", "target": "right"},
            {"source": "left", "target": "join"},
            {"source": "right", "target": "join"},
            {"source": "join", "target": "boom"},
        ],
    }


@dataclass
class Recorder:
    """A connected python-socketio client that records every event it receives."""

    client: socketio.AsyncClient
    received: list[tuple[str, dict[str, Any], float]] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def names(self, execution_id: str | None = None) -> list[str]:
        return [n for n, body, _ in self.received if execution_id in (None, body["execution_id"])]

    def bodies(self, execution_id: str) -> list[dict[str, Any]]:
        return [body for _, body, _ in self.received if body["execution_id"] == execution_id]

    async def wait_for(self, name: str, execution_id: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while name not in self.names(execution_id):
            left = deadline - time.monotonic()
            assert left > 0, f"no {name!r} for {execution_id}; got {self.names()}"
            self.arrived.clear()
            try:
                await asyncio.wait_for(self.arrived.wait(), left)
            except TimeoutError:
                continue

    async def subscribe(self, room: Any) -> dict[str, Any]:
        ack: dict[str, Any] = await self.client.call("subscribe", room, timeout=10)
        return ack

    async def close(self) -> None:
        await self.client.disconnect()


async def connect(url: str, token: str, *, transports: list[str] | None = None) -> Recorder:
    """A client connected to ``url``'s ``/api/socket`` with ``token`` in the handshake."""
    client = socketio.AsyncClient(reconnection=False)
    recorder = Recorder(client)
    for name in EVENT_NAMES:

        def _on(body: dict[str, Any], name: str = name) -> None:
            recorder.received.append((name, body, time.time()))
            recorder.arrived.set()

        client.on(name, _on)
    await client.connect(
        url,
        socketio_path="api/socket",
        auth={"token": token},
        transports=transports or ["websocket"],
        wait_timeout=10,
    )
    return recorder


async def expected_messages(db: Database, execution_id: str) -> list[tuple[str, int]]:
    """(Socket.IO event, sequence) of every event the store holds for an execution."""
    es = event_store
    q = sa.select(es).where(es.c.stream_id == execution_id).order_by(es.c.sequence_number)
    rows = await db.read(lambda c: c.execute(q).all())
    out = []
    for r in rows:
        m = r._mapping
        e = FeedEvent(
            str(m["id"]), m["tenant_id"], m["stream_id"], m["event_type"], dict(m["payload"]),
            m["timestamp"], int(m["sequence_number"]),
        )  # fmt: skip
        message = socket_message(e)
        if message is not None:
            out.append((message[0], e.sequence))
    return out

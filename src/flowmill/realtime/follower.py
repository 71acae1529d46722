"""Follows tenants' feeds from the event store and hands each new event on, in order.

One follower task per tenant that someone watches. It reads the events past its
cursor when news says the tenant has some (and every ``poll_s`` besides, for news
lost on the way), looks up what the events do not carry (a step's output and timings:
one query per batch), and calls the sink with each event in sequence order. Its lock
is held while it reads and hands on, so a watcher that joins under the same lock sees
a clean cut: everything up to :meth:`TenantState.cursor` came before it joined, the
rest comes after.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
import structlog
from sqlalchemy.engine import Connection

from flowmill.realtime.messages import StepDetails, needs_details
from flowmill.realtime.news import FeedNews
from flowmill.store.database import Database
from flowmill.store.event_feed import FeedEvent
from flowmill.store.tables import event_store, node_executions, tenants, workflow_executions
from flowmill.tasks import spawn

log = structlog.get_logger("flowmill.realtime")
Sink = Callable[[FeedEvent, StepDetails | None], Awaitable[None]]
es = event_store


@dataclass
class TenantState:
    """A followed tenant: its cursor, its watchers, its task."""

    cursor: int
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    watchers: int = 0
    task: asyncio.Task[None] | None = None


class FeedFollower:
    """Follows the tenants someone watches.

    Args:
        db: The event store's database.
        news: Says which tenants have new events.
        sink: Called with each new event (and its step details) in sequence order.
        poll_s: Longest pause between reads of a followed tenant.
        batch: Events read at once.
    """

    def __init__(
        self, db: Database, news: FeedNews, sink: Sink, *, poll_s: float = 1.0, batch: int = 500
    ) -> None:
        self.db = db
        self.sink = sink
        self.poll_s = poll_s
        self.batch = batch
        self.tenants: dict[str, TenantState] = {}
        self._unsubscribe = news.subscribe(self._news)

    def _news(self, tenant_id: str) -> None:
        state = self.tenants.get(tenant_id)
        if state is not None:
            state.wake.set()

    async def watch(self, tenant_id: str) -> TenantState:
        """Start following ``tenant_id`` (from its current end) or count one more
        watcher; undo with :meth:`unwatch`."""
        state = self.tenants.get(tenant_id)
        if state is None:
            q = sa.select(tenants.c.event_seq).where(tenants.c.id == tenant_id)
            head = await self.db.read(lambda c: c.execute(q).scalar())
            state = self.tenants.get(tenant_id)  # another watcher may have won the race
            if state is None:
                state = TenantState(cursor=int(head or 0))
                self.tenants[tenant_id] = state
                state.task = spawn(self._follow(tenant_id, state), name=f"feed:{tenant_id}")
        state.watchers += 1
        return state

    def unwatch(self, tenant_id: str) -> None:
        """One watcher less; the last one stops the follower."""
        state = self.tenants.get(tenant_id)
        if state is None:
            return
        state.watchers -= 1
        if state.watchers <= 0:
            del self.tenants[tenant_id]
            if state.task is not None:
                state.task.cancel()

    async def _follow(self, tenant_id: str, state: TenantState) -> None:
        failing = False
        while True:
            state.wake.clear()
            try:
                async with state.lock:
                    n = await self._pass(tenant_id, state)
                failing = False
            except asyncio.CancelledError:
                raise
            except Exception:
                if not failing:
                    log.exception("live events: reading the feed failed", tenant=tenant_id)
                failing, n = True, 0
            if n == self.batch:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(state.wake.wait(), self.poll_s)

    async def _pass(self, tenant_id: str, state: TenantState) -> int:
        # read_statements: no BEGIN/ROLLBACK round trips on PostgreSQL (what it reads is
        # committed; a step's row read a moment later only has more in it)
        events, details = await self.db.read_statements(
            lambda c: _read(c, tenant_id, state.cursor, self.batch)
        )
        for e in events:
            try:
                await self.sink(e, details.get(e.id))
            except Exception:
                log.exception("live events: sink failed", sequence=e.sequence)
            state.cursor = e.sequence
        return len(events)

    async def stream_events(
        self, tenant_id: str, stream_id: str, after: int, upto: int
    ) -> list[tuple[FeedEvent, StepDetails | None]]:
        """A stream's events in ``(after, upto]`` with their details (a replay)."""

        def _go(conn: Connection) -> list[tuple[FeedEvent, StepDetails | None]]:
            q = (
                sa.select(es)
                .where(
                    es.c.tenant_id == tenant_id,
                    es.c.stream_id == stream_id,
                    es.c.sequence_number > after,
                    es.c.sequence_number <= upto,
                )
                .order_by(es.c.sequence_number)
            )
            events = [_event(r) for r in conn.execute(q)]
            details = _details(conn, tenant_id, events)
            return [(e, details.get(e.id)) for e in events]

        return await self.db.read(_go)

    async def close(self) -> None:
        """Stop following everyone."""
        self._unsubscribe()
        tasks = [s.task for s in self.tenants.values() if s.task is not None]
        self.tenants.clear()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _event(r: sa.Row[tuple[object, ...]]) -> FeedEvent:
    m = r._mapping
    return FeedEvent(
        id=str(m["id"]),
        tenant_id=m["tenant_id"],
        stream_id=m["stream_id"],
        type=m["event_type"],
        payload=dict(m["payload"] or {}),
        timestamp=m["timestamp"],
        sequence=int(m["sequence_number"]),
    )


# Built once: a pass runs after every commit of a followed tenant, and building the
# statements again each time was a tenth of the API process's CPU under a hundred
# watchers (py-spy, bench/read_side.py). The lists are expanding parameters.
ne, we = node_executions, workflow_executions
_AFTER = (
    sa.select(es)
    .where(
        es.c.tenant_id == sa.bindparam("tenant"),
        es.c.sequence_number > sa.bindparam("after"),
    )
    .order_by(es.c.sequence_number)
    .limit(sa.bindparam("limit"))
)
_RUNS = sa.select(
    ne.c.execution_id, ne.c.node_id, ne.c.attempt, ne.c.output, ne.c.started_at, ne.c.completed_at
).where(
    ne.c.tenant_id == sa.bindparam("tenant"),
    ne.c.execution_id.in_(sa.bindparam("executions", expanding=True)),
    ne.c.node_id.in_(sa.bindparam("nodes", expanding=True)),
)
_ENDS = sa.select(we.c.id, we.c.output, we.c.started_at, we.c.completed_at).where(
    we.c.tenant_id == sa.bindparam("tenant"),
    we.c.id.in_(sa.bindparam("ids", expanding=True)),
)


def _read(
    conn: Connection, tenant_id: str, after: int, limit: int
) -> tuple[list[FeedEvent], dict[str, StepDetails]]:
    params = {"tenant": tenant_id, "after": after, "limit": limit}
    events = [_event(r) for r in conn.execute(_AFTER, params)]
    return events, _details(conn, tenant_id, events)


def _details(conn: Connection, tenant_id: str, events: list[FeedEvent]) -> dict[str, StepDetails]:
    """Outputs and timings of the steps (and ends) among ``events``, by event id."""
    wanted = [e for e in events if needs_details(e)]
    if not wanted:
        return {}
    executions = sorted({e.stream_id for e in wanted})
    nodes = sorted({str(e.payload.get("node_id")) for e in wanted if "node_id" in e.payload})
    runs = {}
    if nodes:
        params = {"tenant": tenant_id, "executions": executions, "nodes": nodes}
        runs = {
            (str(r.execution_id), r.node_id, int(r.attempt)): r for r in conn.execute(_RUNS, params)
        }
    ended = {e.stream_id for e in wanted if e.type == "execution.completed"}
    outputs = {}
    if ended:
        params = {"tenant": tenant_id, "ids": sorted(ended)}
        outputs = {str(r.id): r for r in conn.execute(_ENDS, params)}
    out: dict[str, StepDetails] = {}
    for e in wanted:
        row: Any
        if e.type == "execution.completed":
            row = outputs.get(e.stream_id)
        else:
            key = (e.stream_id, str(e.payload.get("node_id")), int(e.payload.get("attempt") or 1))
            row = runs.get(key)
        if row is not None:
            out[e.id] = StepDetails(
                output=row.output,
                started_at=row.started_at.isoformat() if row.started_at else None,
                completed_at=row.completed_at.isoformat() if row.completed_at else None,
            )
    return out

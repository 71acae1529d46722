"""The event store read as a feed: per-consumer, per-tenant cursors.

Sequence numbers are gapless per tenant and given in commit order (the tenant row
lock is held from the bump to the commit), so "every event after my cursor" never
skips one that commits late. A consumer reads, acts idempotently, then advances its
cursor: after a crash it reads the same events again and its actions dedupe.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection

from flowmill.clock import Clock, SystemClock
from flowmill.domain.events import DomainEvent
from flowmill.ids import uuid7
from flowmill.store.database import Database
from flowmill.store.executions import append_events
from flowmill.store.tables import event_consumers, event_store, tenants

ec = event_consumers
es = event_store


@dataclass(frozen=True)
class FeedEvent:
    """One event of a tenant's feed."""

    id: str
    tenant_id: str
    stream_id: str
    type: str
    payload: dict[str, Any]
    timestamp: datetime
    sequence: int


class EventFeed:
    """Reads tenants' events in order and keeps each consumer's place."""

    def __init__(self, db: Database, clock: Clock | None = None) -> None:
        self.db = db
        self.clock = clock or SystemClock()

    async def behind(self, consumer: str) -> list[tuple[str, int]]:
        """Tenants with events past ``consumer``'s cursor: (tenant, cursor)."""
        cursor = sa.func.coalesce(ec.c.last_sequence, 0)
        q = (
            sa.select(tenants.c.id, cursor)
            .select_from(
                tenants.outerjoin(
                    ec, sa.and_(ec.c.tenant_id == tenants.c.id, ec.c.consumer == consumer)
                )
            )
            .where(tenants.c.event_seq > cursor)
            .order_by(tenants.c.id)
        )
        rows = await self.db.read(lambda c: c.execute(q).all())
        return [(r[0], int(r[1])) for r in rows]

    async def start_at_end(self, consumer: str) -> None:
        """Put ``consumer``'s cursor at the end of every tenant's feed that it has no
        cursor for yet, so a new consumer does not act on history."""
        now = self.clock.now()
        insert = pg_insert if self.db.is_postgres else sqlite_insert

        def _tx(conn: Connection) -> None:
            for tenant_id, seq in conn.execute(sa.select(tenants.c.id, tenants.c.event_seq)):
                conn.execute(
                    insert(ec)
                    .values(
                        consumer=consumer, tenant_id=tenant_id, last_sequence=seq, updated_at=now
                    )
                    .on_conflict_do_nothing(index_elements=["consumer", "tenant_id"])
                )

        await self.db.write(_tx)

    async def read(self, tenant_id: str, after: int, limit: int = 500) -> list[FeedEvent]:
        """The tenant's events after sequence ``after``, in order."""
        q = (
            sa.select(es)
            .where(es.c.tenant_id == tenant_id, es.c.sequence_number > after)
            .order_by(es.c.sequence_number)
            .limit(limit)
        )
        rows = await self.db.read(lambda c: c.execute(q).all())
        return [
            FeedEvent(
                id=str(r.id),
                tenant_id=r.tenant_id,
                stream_id=r.stream_id,
                type=r.event_type,
                payload=dict(r.payload or {}),
                timestamp=r.timestamp,
                sequence=int(r.sequence_number),
            )
            for r in rows
        ]

    async def advance(self, consumer: str, tenant_id: str, sequence: int) -> None:
        """Move ``consumer``'s cursor for the tenant to ``sequence`` (never back)."""
        now = self.clock.now()
        insert = pg_insert if self.db.is_postgres else sqlite_insert

        def _tx(conn: Connection) -> None:
            stmt = insert(ec).values(
                consumer=consumer, tenant_id=tenant_id, last_sequence=sequence, updated_at=now
            )
            stmt = stmt.on_conflict_do_update(
                index_elements=["consumer", "tenant_id"],
                set_={
                    "last_sequence": sa.func.max(ec.c.last_sequence, sequence)
                    if not self.db.is_postgres
                    else sa.func.greatest(ec.c.last_sequence, sequence),
                    "updated_at": now,
                },
            )
            conn.execute(stmt)

        await self.db.write(_tx)

    async def append(self, tenant_id: str, type_: str, payload: dict[str, Any]) -> FeedEvent:
        """Append a custom event to the tenant's store (``POST /api/events``)."""
        now = self.clock.now()
        event = DomainEvent(uuid7(), tenant_id, "custom", type_, payload, now)

        def _tx(conn: Connection) -> int:
            append_events(conn, tenant_id, [event])
            seq = conn.execute(
                sa.select(es.c.sequence_number).where(es.c.id == event.id)
            ).scalar_one()
            return int(seq)

        seq = await self.db.write(_tx)
        return FeedEvent(event.id, tenant_id, "custom", type_, payload, now, seq)

"""Repository of ``webhook_events``: every request a webhook URL received.

The ingress writes rows in batches (one transaction for all the requests that arrived
while the previous batch committed), so an acknowledgement never waits for more than
one commit and the commits of many requests share one round trip. A dedupe key that
collides is detected by ``ON CONFLICT DO NOTHING`` (no exception, no 500) and the
request is recorded again as ``duplicate``, without the key.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection

from flowmill import jsonutil
from flowmill.clock import Clock, SystemClock
from flowmill.domain.events import DomainEvent, EventType
from flowmill.ids import uuid7
from flowmill.store.database import Database, PostgresDatabase
from flowmill.store.executions import append_events
from flowmill.store.tables import inline, webhook_events, workflow_executions

if TYPE_CHECKING:  # the postgres extra; the embedded default runs without it
    import asyncpg

wh = webhook_events


class WebhookEventStatus(StrEnum):
    """Where a received request is in its life."""

    RECEIVED = "received"  # recorded and acknowledged; dispatch pending
    PROCESSED = "processed"  # executions started (their ids are on the row)
    DUPLICATE = "duplicate"  # its dedupe key was seen before; started nothing
    REJECTED = "rejected"  # failed verification (or an unreadable body); started nothing
    NO_MATCH = "no_match"  # verified, but no enabled trigger of an active workflow remained
    FAILED = "failed"  # dispatch failed for good; ``error`` says why


@dataclass
class WebhookEventRow:
    """A ``webhook_events`` row."""

    id: str
    tenant_id: str
    trigger_id: str | None
    provider: str
    route: str
    method: str
    headers: list[list[str]]
    body: bytes
    verified: bool
    status: WebhookEventStatus
    received_at: datetime
    verification_error: str | None = None
    dedupe_key: str | None = None
    event_type: str | None = None
    targets: list[str] | None = None
    execution_ids: list[str] = field(default_factory=list)
    error: str | None = None
    processed_at: datetime | None = None
    body_blob_id: str | None = None  # a large body lives in the blob store

    def values(self) -> dict[str, Any]:
        """Column values for an insert."""
        return {
            "id": self.id,
            "tenant_id": self.tenant_id,
            "trigger_id": self.trigger_id,
            "provider": self.provider,
            "route": self.route[:500],
            "method": self.method[:8],
            "headers": self.headers,
            "body": self.body,
            "body_blob_id": self.body_blob_id,
            "verified": self.verified,
            "verification_error": (self.verification_error or None)
            and self.verification_error[:200],
            "dedupe_key": self.dedupe_key,
            "status": self.status.value,
            "event_type": self.event_type[:200] if self.event_type else None,
            "targets": self.targets,
            "execution_ids": self.execution_ids,
            "error": self.error,
            "received_at": self.received_at,
            "processed_at": self.processed_at,
        }


def event_from_row(row: Any) -> WebhookEventRow:
    """A row object from a ``webhook_events`` row."""
    m = row._mapping
    return WebhookEventRow(
        id=str(m["id"]),
        tenant_id=m["tenant_id"],
        trigger_id=str(m["trigger_id"]) if m["trigger_id"] is not None else None,
        provider=m["provider"],
        route=m["route"],
        method=m["method"],
        headers=list(m["headers"] or []),
        body=bytes(m["body"]) if "body" in m and m["body"] is not None else b"",
        verified=bool(m["verified"]),
        status=WebhookEventStatus(m["status"]),
        received_at=m["received_at"],
        verification_error=m["verification_error"],
        dedupe_key=m["dedupe_key"],
        event_type=m["event_type"],
        targets=list(m["targets"]) if m["targets"] is not None else None,
        execution_ids=list(m["execution_ids"] or []),
        error=m["error"],
        processed_at=m["processed_at"],
        body_blob_id=str(m["body_blob_id"]) if m.get("body_blob_id") is not None else None,
    )


@dataclass(frozen=True)
class EventFilter:
    """Filters of a webhook's event history."""

    trigger_id: str | None = None
    statuses: tuple[str, ...] = ()
    received_from: datetime | None = None
    received_to: datetime | None = None
    before_id: str | None = None


_LIST_COLUMNS = [c for c in wh.c if c.name != "body"]
_COLUMNS = [c.name for c in wh.c]
_INSERT_OR_SKIP = sqlite_insert(wh).on_conflict_do_nothing(
    index_elements=["tenant_id", "dedupe_key"]
)
# One statement for a whole batch on PostgreSQL: arrays in, ids of the rows that went
# in out. Written for asyncpg: per batch SQLAlchemy's compilation of a multi-row
# VALUES cost more than the round trip.
_PG_TYPES = {
    "id": "uuid",
    "trigger_id": "uuid",
    "body_blob_id": "uuid",
    "headers": "jsonb",
    "targets": "jsonb",
    "execution_ids": "jsonb",
    "body": "bytea",
    "verified": "bool",
    "received_at": "timestamptz",
    "processed_at": "timestamptz",
}
_PG_INSERT = (
    f"INSERT INTO webhook_events ({', '.join(_COLUMNS)}) SELECT * FROM unnest("  # noqa: S608
    + ", ".join(f"${i + 1}::{_PG_TYPES.get(c, 'text')}[]" for i, c in enumerate(_COLUMNS))
    + ") ON CONFLICT (tenant_id, dedupe_key) DO NOTHING RETURNING id::text"
)
_JSON_COLUMNS = frozenset({"headers", "targets", "execution_ids"})


async def _insert_pg(pool: asyncpg.Pool, rows: Sequence[WebhookEventRow]) -> set[str]:
    values = [r.values() for r in rows]
    arrays = []
    for name in _COLUMNS:
        column = [v[name] for v in values]
        if name in _JSON_COLUMNS:
            column = [None if x is None else jsonutil.dumps(x) for x in column]
        arrays.append(column)
    async with pool.acquire() as pg:
        records = await pg.fetch(_PG_INSERT, *arrays)
    return {r[0] for r in records}


def _insert_sqlite(conn: Connection, rows: Sequence[WebhookEventRow]) -> set[str]:
    inserted = set()
    for r in rows:
        if conn.execute(_INSERT_OR_SKIP, r.values()).rowcount == 1:
            inserted.add(r.id)
    return inserted


def received_event(
    row: WebhookEventRow, status: WebhookEventStatus, execution_ids: Sequence[str], now: datetime
) -> DomainEvent:
    """The ``webhook.received`` event of a request that ended with ``status``."""
    payload = {
        "webhook_event_id": row.id,
        "trigger_id": row.trigger_id,
        "provider": row.provider,
        "event_type": row.event_type,
        "status": status.value,
        "execution_ids": list(execution_ids),
        "targets": list(row.targets) if row.targets else None,
        "route": row.route[:500],
        "received_at": row.received_at.isoformat(),
    }
    stream = row.trigger_id or row.id
    return DomainEvent(
        uuid7(), row.tenant_id, stream, EventType.WEBHOOK_RECEIVED.value, payload, now
    )


def _record_ended(
    conn: Connection,
    final: Sequence[WebhookEventRow],
    dupes: Sequence[WebhookEventRow],
    now: datetime,
) -> None:
    by_tenant: dict[str, list[DomainEvent]] = {}
    for r in final:
        by_tenant.setdefault(r.tenant_id, []).append(received_event(r, r.status, [], now))
    for r in dupes:  # before their row forgets its targets
        event = received_event(r, WebhookEventStatus.DUPLICATE, [], now)
        by_tenant.setdefault(r.tenant_id, []).append(event)
    if final:
        conn.execute(wh.insert(), [r.values() for r in final])
    if dupes:
        _record_duplicates(conn, dupes)
    for tenant_id in sorted(by_tenant):  # tenants' sequence rows locked in one order
        append_events(conn, tenant_id, by_tenant[tenant_id])


def _record_duplicates(conn: Connection, dupes: Sequence[WebhookEventRow]) -> None:
    for r in dupes:
        first = conn.execute(
            sa.select(wh.c.id).where(wh.c.tenant_id == r.tenant_id, wh.c.dedupe_key == r.dedupe_key)
        ).scalar()
        r.status = WebhookEventStatus.DUPLICATE
        r.error = f"duplicate of webhook event {first}" if first else "duplicate"
        r.dedupe_key = None
        r.targets = None
    conn.execute(wh.insert(), [r.values() for r in dupes])


class WebhookEventStore:
    """Writes and reads webhook events."""

    def __init__(self, db: Database, clock: Clock | None = None) -> None:
        self.db = db
        self.clock = clock or SystemClock()
        self._pool: asyncpg.Pool | None = None
        # told (provider, status) of each request recorded and each one dispatched
        self.listeners: list[Callable[[str, str], None]] = []

    def _tell(self, provider: str, status: WebhookEventStatus) -> None:
        for listener in self.listeners:
            listener(provider, status.value)

    async def close(self) -> None:
        """Release the ingress's connections."""
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def insert(self, rows: Sequence[WebhookEventRow]) -> list[WebhookEventStatus]:
        """Record rows in one transaction; a row whose dedupe key was taken is stored as
        ``duplicate`` (without the key) instead. Returns each row's final status."""
        if not rows:
            return []
        # Requests that end here (refused ones, duplicates) are written with their
        # webhook.received event; the others get theirs when dispatched (finish).
        fresh = [r for r in rows if r.status is WebhookEventStatus.RECEIVED]
        final = [r for r in rows if r.status is not WebhookEventStatus.RECEIVED]
        inserted: set[str] = set()
        if fresh and isinstance(self.db, PostgresDatabase):
            if self._pool is None:
                # The ingress's own small asyncpg pool: no SQLAlchemy checkout, ping or
                # BEGIN around the one statement of a batch (it commits by itself).
                import asyncpg

                self._pool = await asyncpg.create_pool(
                    "postgresql://" + self.db.url.split("://", 1)[1], min_size=1, max_size=4
                )
            inserted = await _insert_pg(self._pool, fresh)
        elif fresh:
            inserted = await self.db.write(lambda c: _insert_sqlite(c, fresh))
        dupes = [r for r in fresh if r.id not in inserted]
        if dupes or final:
            now = self.clock.now()
            await self.db.write(lambda c: _record_ended(c, final, dupes, now))
        for r in rows:
            self._tell(r.provider, r.status)
        return [r.status for r in rows]

    async def get(self, event_id: str) -> WebhookEventRow | None:
        """One event with its body (engine-internal)."""
        q = sa.select(wh).where(wh.c.id == event_id)
        row = await self.db.read(lambda c: c.execute(q).first())
        return event_from_row(row) if row is not None else None

    async def status(self, event_id: str) -> tuple[WebhookEventStatus, list[str]] | None:
        """An event's status and execution ids (what a waiting webhook polls)."""
        q = sa.select(wh.c.status, wh.c.execution_ids).where(wh.c.id == event_id)
        row = await self.db.read(lambda c: c.execute(q).first())
        if row is None:
            return None
        return WebhookEventStatus(row[0]), list(row[1] or [])

    async def outcome(
        self, event_id: str, tenant_id: str, dedupe_key: str
    ) -> tuple[WebhookEventStatus, list[str]] | None:
        """:meth:`status`, in one read with the execution started under ``dedupe_key``:
        a waiting webhook learns its execution's id as soon as the execution is
        committed, before the event is marked ``processed`` (that write runs beside the
        execution's first steps, off the answer's path)."""
        we = workflow_executions
        started = (
            sa.select(we.c.id)
            .where(we.c.tenant_id == tenant_id, we.c.dedupe_key == dedupe_key)
            .scalar_subquery()
        )
        q = sa.select(wh.c.status, wh.c.execution_ids, started).where(wh.c.id == event_id)
        row = await self.db.read(lambda c: c.execute(q).first())
        if row is None:
            return None
        status, ids = WebhookEventStatus(row[0]), list(row[1] or [])
        if status is WebhookEventStatus.RECEIVED and row[2] is not None:
            return WebhookEventStatus.PROCESSED, [str(row[2])]
        return status, ids

    async def finish(
        self,
        event: WebhookEventRow,
        status: WebhookEventStatus,
        execution_ids: Sequence[str],
        error: str | None = None,
    ) -> bool:
        """Mark a received event done, and append ``webhook.received`` to the tenant's
        event store, in one transaction. Returns False when it was done already."""
        now = self.clock.now()

        def _tx(conn: Connection) -> bool:
            done = conn.execute(
                wh.update()
                .where(wh.c.id == event.id, wh.c.status == WebhookEventStatus.RECEIVED.value)
                .values(
                    status=status.value,
                    execution_ids=list(execution_ids),
                    error=error,
                    processed_at=now,
                )
            )
            if done.rowcount != 1:
                return False
            append_events(
                conn, event.tenant_id, [received_event(event, status, execution_ids, now)]
            )
            return True

        done = await self.db.write(_tx)
        if done:
            self._tell(event.provider, status)
        return done

    async def stale_received(self, older_than: datetime, limit: int = 100) -> list[str]:
        """Ids of events still ``received`` since before ``older_than`` (lost jobs)."""
        q = stale_received_query(older_than, limit)
        rows = await self.db.read(lambda c: c.execute(q).scalars().all())
        return [str(r) for r in rows]

    async def page(
        self, tenant_id: str, f: EventFilter, limit: int
    ) -> tuple[list[WebhookEventRow], bool]:
        """A keyset page of the tenant's events (newest first, without bodies)."""
        q = sa.select(*_LIST_COLUMNS).where(wh.c.tenant_id == tenant_id)
        if f.trigger_id is not None:
            q = q.where(wh.c.trigger_id == f.trigger_id)
        if f.statuses:
            q = q.where(wh.c.status.in_(f.statuses))
        if f.received_from is not None:
            q = q.where(wh.c.received_at >= f.received_from)
        if f.received_to is not None:
            q = q.where(wh.c.received_at <= f.received_to)
        if f.before_id is not None:
            q = q.where(wh.c.id < f.before_id)
        q = q.order_by(wh.c.id.desc()).limit(limit + 1)
        rows = await self.db.read(lambda c: c.execute(q).all())
        return [event_from_row(r) for r in rows[:limit]], len(rows) > limit


def stale_received_query(older_than: datetime, limit: int) -> sa.Select[Any]:
    """Events still ``received`` since before ``older_than``, oldest first: run every few
    seconds, so it walks the partial index of received events, never the table."""
    return (
        sa.select(wh.c.id)
        .where(wh.c.status == inline(WebhookEventStatus.RECEIVED.value))
        .where(wh.c.received_at < older_than)
        .order_by(wh.c.received_at)
        .limit(limit)
    )

"""The projector: tenants' event feeds folded into the read models.

Each round takes one tenant and the next ``batch_size`` sequence numbers past the
slowest of its projections' cursors, and in ONE transaction: locks those cursors, reads
the events among them that some read model folds (``Projection.types``), folds them
into the rows they touch and moves the cursors. So

* an event is applied once: one already behind a projection's cursor is skipped (a
  crash before the commit leaves nothing; a second projector that read the same batch
  finds the cursors moved when it gets their locks);
* a projector that was down catches up from its cursors, and a new projection (or a
  rebuilt one, its cursors at 0) starts from the first event;
* the write path is untouched: it never reads these tables, and the projector takes
  no lock a step's transaction needs (only its cursors and its own rows).

Measured with ``bench/read_side.py``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection

from flowmill.clock import Clock, SystemClock
from flowmill.domain.errors import NotFound
from flowmill.projections.base import Key, Projection, Row
from flowmill.projections.node_performance import NodePerformance
from flowmill.projections.webhook_analytics import WebhookAnalytics
from flowmill.projections.workflow_activity import WorkflowActivity
from flowmill.projections.workflow_summary import WorkflowSummary
from flowmill.store.database import Database
from flowmill.store.event_feed import FeedEvent
from flowmill.store.tables import event_consumers, event_store, tenants, workflow_executions

ec = event_consumers
es = event_store
_CHUNK = 500
POSTGRES_BATCH = 5000
SQLITE_BATCH = 500
_EXECUTION_STREAM = ("execution.", "node.")


def all_projections() -> list[Projection]:
    """Every read model, in the order they are applied."""
    return [WorkflowSummary(), NodePerformance(), WebhookAnalytics(), WorkflowActivity()]


class UnknownProjectionError(NotFound):
    """No read model has that name."""


def projections_named(names: Iterable[str] | None) -> list[Projection]:
    """The read models called ``names`` (all of them for ``None``).

    Raises:
        UnknownProjectionError: A name is not a read model's.
    """
    known = {p.name: p for p in all_projections()}
    if names is None:
        return list(known.values())
    wanted = list(dict.fromkeys(names))
    unknown = [n for n in wanted if n not in known]
    if unknown:
        raise UnknownProjectionError(
            f"no read model called {', '.join(unknown)} (known: {', '.join(known)})"
        )
    return [known[n] for n in wanted]


@dataclass(frozen=True)
class Lag:
    """How far one projection is behind one tenant's feed.

    Attributes:
        position: The last sequence number applied.
        head: The tenant's last sequence number.
        seconds: Age of the oldest event not applied yet (0 when caught up).
    """

    projection: str
    tenant_id: str
    position: int
    head: int
    seconds: float

    @property
    def events(self) -> int:
        """Events not applied yet."""
        return max(0, self.head - self.position)


class Projector:
    """Applies the feed to the read models.

    Args:
        db: The database holding both the event store and the read models.
        projections: The read models kept (default: all).
        batch_size: Events per transaction (default: ``POSTGRES_BATCH`` or
            ``SQLITE_BATCH``).
        clock: Time (for cursor timestamps and lag).
    """

    def __init__(
        self,
        db: Database,
        projections: Sequence[Projection] | None = None,
        *,
        batch_size: int | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.db = db
        self.projections = list(projections) if projections is not None else all_projections()
        if batch_size is None:
            # PostgreSQL: the per-batch cost (load and write the touched rows) is spread
            # over more events (8.7k events/s at 5,000 against 4.4k at 1,000 on SQLite,
            # bench/read_side.py). SQLite: a batch holds the one write lock, which every
            # step's commit waits for, so it stays short.
            batch_size = POSTGRES_BATCH if db.is_postgres else SQLITE_BATCH
        self.batch_size = batch_size
        self.clock = clock or SystemClock()
        self._insert = pg_insert if db.is_postgres else sqlite_insert
        # what the read models fold, read by the batches (None: every event)
        self._types: list[str] | None = sorted(
            {t for p in self.projections for t in (p.types or ())}
        )
        if any(p.types is None for p in self.projections):
            self._types = None

    async def behind(self) -> list[str]:
        """Tenants with events some projection has not applied yet."""
        consumers = [p.consumer for p in self.projections]
        mine = sa.and_(ec.c.tenant_id == tenants.c.id, ec.c.consumer.in_(consumers))
        cursors = sa.select(sa.func.count()).where(mine).scalar_subquery()
        slowest = sa.select(sa.func.min(ec.c.last_sequence)).where(mine).scalar_subquery()
        q = (
            sa.select(tenants.c.id)
            .where(
                tenants.c.event_seq > 0,
                sa.or_(cursors < len(consumers), tenants.c.event_seq > slowest),
            )
            .order_by(tenants.c.id)
        )
        rows = await self.db.read(lambda c: c.execute(q).scalars().all())
        return [str(r) for r in rows]

    async def step(self, tenant_id: str) -> int:
        """Apply the next batch of ``tenant_id``'s events. Returns how many sequence
        numbers the slowest cursor moved past (0: every projection is caught up with
        this tenant), events no read model folds included."""
        now = self.clock.now()
        return await self.db.write(lambda c: self._project(c, tenant_id, now))

    async def catch_up(self, budget_s: float | None = None) -> int:
        """Apply every tenant's events until none is left (events committed meanwhile
        included) or ``budget_s`` passed. Returns events read."""
        started = time.monotonic()
        total = 0
        while True:
            left = None if budget_s is None else budget_s - (time.monotonic() - started)
            if left is not None and left <= 0:
                return total
            read = await self.one_pass(left)
            total += read
            if read == 0:  # caught up (or the rest of a feed was pruned away)
                return total

    async def one_pass(self, budget_s: float | None = None) -> int:
        """Apply the events of every tenant behind, as they are now: a tenant's full
        batches one after another, then the next tenant. Events committed during the
        pass wait for the next one, so under a steady load each round applies a round's
        worth in few batches (a batch's fixed cost is a dozen statements: looping until
        idle made batches of a few events, and the projector's CPU per node run was
        twice what it is this way; bench/read_side.py, CPU per node run).

        Returns:
            Events read.
        """
        started = time.monotonic()
        total = 0
        for tenant_id in await self.behind():
            while True:
                n = await self.step(tenant_id)
                total += n
                if budget_s is not None and time.monotonic() - started > budget_s:
                    return total
                if n < self.batch_size:
                    break
        return total

    async def rebuild(self) -> int:
        """Empty this projector's read models, put their cursors at 0 and replay the
        feed from the start. Returns events read."""
        consumers = [p.consumer for p in self.projections]

        def _reset(conn: Connection) -> None:
            conn.execute(ec.update().where(ec.c.consumer.in_(consumers)).values(last_sequence=0))
            for p in self.projections:
                conn.execute(p.table.delete())

        await self.db.write(_reset)
        return await self.catch_up()

    async def lag(self, tenant_id: str | None = None) -> list[Lag]:
        """Each projection's lag behind each tenant's feed (one tenant's, if given)."""
        now = self.clock.now()

        def _read(conn: Connection) -> list[Lag]:
            out = []
            for p in self.projections:
                for tid, head, pos, oldest in conn.execute(lag_query(p.consumer, tenant_id)):
                    seconds = max(0.0, (now - oldest).total_seconds()) if oldest else 0.0
                    out.append(Lag(p.name, tid, int(pos), int(head), round(seconds, 3)))
            return out

        return await self.db.read(_read)

    # --- one transaction ------------------------------------------------------------------

    def _project(self, conn: Connection, tenant_id: str, now: datetime) -> int:
        consumers = [p.consumer for p in self.projections]
        cursors = self._lock_cursors(conn, tenant_id, consumers)
        if len(cursors) < len(consumers):  # a new tenant or projection: its cursors at 0
            conn.execute(
                self._insert(ec)
                .values(
                    [
                        {"consumer": c, "tenant_id": tenant_id, "last_sequence": 0,
                         "updated_at": now}
                        for c in consumers
                    ]
                )
                .on_conflict_do_nothing(index_elements=["consumer", "tenant_id"])
            )  # fmt: skip
            cursors = self._lock_cursors(conn, tenant_id, consumers)
        low = min(cursors.values())
        # The batch is a range of sequence numbers, not of rows: only the events some
        # read model folds are read (a step's node.started, most of a workflow's events,
        # are not: decoding them was a third of the projector's work), and the cursors
        # move to the range's end. Everything up to the tenant's head is committed (the
        # head moves in the transaction that stores the events).
        head = conn.execute(
            sa.select(tenants.c.event_seq).where(tenants.c.id == tenant_id)
        ).scalar()
        last = min(int(head or 0), low + self.batch_size)
        if last <= low:
            return 0
        events = _read_events(conn, tenant_id, low, last, self._types)
        events = _with_workflow_ids(conn, tenant_id, events)
        for p in self.projections:
            cursor = cursors[p.consumer]
            pending = (
                events
                if not events or cursor < events[0].sequence
                else [e for e in events if e.sequence > cursor]
            )
            if pending:
                self._fold(conn, p, tenant_id, pending)
        moved = [c for c in consumers if cursors[c] < last]
        conn.execute(
            ec.update()
            .where(ec.c.tenant_id == tenant_id, ec.c.consumer.in_(moved))
            .values(last_sequence=last, updated_at=now)
        )
        return last - low

    def _lock_cursors(
        self, conn: Connection, tenant_id: str, consumers: list[str]
    ) -> dict[str, int]:
        q = (
            sa.select(ec.c.consumer, ec.c.last_sequence)
            .where(ec.c.tenant_id == tenant_id, ec.c.consumer.in_(consumers))
            .order_by(ec.c.consumer)
        )
        if self.db.is_postgres:
            q = q.with_for_update()  # a second projector waits here, then skips
        return {str(c): int(s) for c, s in conn.execute(q)}

    def _fold(
        self, conn: Connection, p: Projection, tenant_id: str, events: Sequence[FeedEvent]
    ) -> None:
        touched: list[tuple[Key, FeedEvent]] = [(k, e) for e in events for k in p.keys(e)]
        if not touched:
            return
        rows: dict[Key, Row] = {k: {} for k, _ in touched}
        loaded = _load(conn, p, tenant_id, list(rows))
        for key in rows:
            rows[key] = loaded.get(key) or p.empty(key)
        for key, event in touched:
            p.apply(rows[key], event)
        for row in rows.values():
            p.finish(row)
        stmt = self._insert(p.table)
        stmt = stmt.on_conflict_do_update(
            index_elements=["tenant_id", *p.key],
            set_={c.name: stmt.excluded[c.name] for c in p.table.c if not c.primary_key},
        )
        conn.execute(stmt, [{"tenant_id": tenant_id, **row} for row in rows.values()])


def lag_query(consumer: str, tenant_id: str | None = None) -> sa.Select[Any]:
    """Per tenant: its head, ``consumer``'s position, and when the first event the
    consumer has not read was written.

    That event is looked up by a subquery per tenant, not joined: PostgreSQL keeps a
    prepared statement's generic plan, and one made while the event store was small
    hash-joined it whole. Without statistics to replace it (autovacuum off) that plan
    scanned 260,000 events, 100-150 ms, about once a second in a soak.
    """
    cursor = ec.alias("cursor")
    position = sa.func.coalesce(cursor.c.last_sequence, 0)
    oldest = (
        sa.select(es.c.timestamp)
        .where(es.c.tenant_id == tenants.c.id, es.c.sequence_number == position + 1)
        .scalar_subquery()
    )
    joined = tenants.outerjoin(
        cursor, sa.and_(cursor.c.tenant_id == tenants.c.id, cursor.c.consumer == consumer)
    )
    q = sa.select(tenants.c.id, tenants.c.event_seq, position, oldest).select_from(joined)
    return q if tenant_id is None else q.where(tenants.c.id == tenant_id)


def _read_events(
    conn: Connection, tenant_id: str, after: int, upto: int, types: list[str] | None
) -> list[FeedEvent]:
    """The events in ``(after, upto]`` of the given types (all for ``None``)."""
    q = (
        sa.select(es.c.id, es.c.stream_id, es.c.event_type, es.c.payload, es.c.timestamp,
                  es.c.sequence_number)
        .where(es.c.tenant_id == tenant_id, es.c.sequence_number > after,
               es.c.sequence_number <= upto)
        .order_by(es.c.sequence_number)
    )  # fmt: skip
    if types is not None:
        q = q.where(es.c.event_type.in_(types))
    # positional rows: the projector's hottest loop (a Row's attribute access costs more)
    return [
        FeedEvent(str(i), tenant_id, stream, type_, payload or {}, at, seq)
        for i, stream, type_, payload, at, seq in conn.execute(q)
    ]


def _with_workflow_ids(
    conn: Connection, tenant_id: str, events: list[FeedEvent]
) -> list[FeedEvent]:
    """Events of executions recorded before they named their workflow get it from the
    execution's row."""
    missing = {
        e.stream_id
        for e in events
        if e.type.startswith(_EXECUTION_STREAM) and "workflow_id" not in e.payload
    }
    if not missing:
        return events
    we = workflow_executions
    found: dict[str, str] = {}
    ids = sorted(missing)
    for start in range(0, len(ids), _CHUNK):
        q = sa.select(we.c.id, we.c.workflow_id).where(
            we.c.tenant_id == tenant_id, we.c.id.in_(ids[start : start + _CHUNK])
        )
        found.update({str(i): str(w) for i, w in conn.execute(q)})
    return [
        replace(e, payload={**e.payload, "workflow_id": found[e.stream_id]})
        if e.stream_id in found and "workflow_id" not in e.payload
        else e
        for e in events
    ]


def _load(conn: Connection, p: Projection, tenant_id: str, keys: list[Key]) -> dict[Key, Row]:
    table = p.table
    columns = [table.c[name] for name in p.key]
    out: dict[Key, Row] = {}
    for start in range(0, len(keys), _CHUNK):
        chunk = keys[start : start + _CHUNK]
        match = (
            columns[0].in_([k[0] for k in chunk])
            if len(columns) == 1
            else sa.tuple_(*columns).in_(chunk)
        )
        for r in conn.execute(sa.select(table).where(table.c.tenant_id == tenant_id, match)):
            row = dict(r._mapping)
            del row["tenant_id"]
            if "durations" in row:
                row["durations"] = dict(row["durations"] or {})
            out[tuple(row[name] for name in p.key)] = row
    return out

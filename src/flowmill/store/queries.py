"""Read models of executions for the API (the query side). Tenant-scoped, every one.

Lists are keyset pages in id order, newest first. Execution ids are UUIDv7, so id order
is creation order, a time range is an id range, and each page is one walk down the
``(tenant_id, id)``, ``(tenant_id, status, id)`` or ``(tenant_id, workflow_id, id)``
index — as fast on the millionth row as on the first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from flowmill.domain.execution import ExecutionRecord, NodeRun
from flowmill.ids import uuid7_floor
from flowmill.store.database import Database
from flowmill.store.executions import execution_from_row, run_from_row
from flowmill.store.tables import (
    event_store,
    execution_logs,
    node_executions,
    workflow_executions,
)

we = workflow_executions
ne = node_executions
lg = execution_logs

# Lists leave out the trigger payload and the output: they can be large, and a page of
# summaries should cost the same whatever the executions carried.
_SUMMARY = [
    we.c.id,
    we.c.workflow_id,
    we.c.version,
    we.c.status,
    we.c.trigger_type,
    we.c.created_at,
    we.c.started_at,
    we.c.completed_at,
    we.c.retry_of,
    we.c.parent_execution_id,
    we.c.parent_node_id,
    we.c.iteration,
    we.c["metadata"],
]


@dataclass(frozen=True)
class ExecutionFilter:
    """What ``GET /api/executions`` narrows by.

    Attributes:
        created_from: Executions created at or after this instant.
        created_to: Executions created at or before this instant.
        before_id: Keyset cursor: only ids strictly lower (older) than this.
        metadata: ``(key, value)`` pairs the execution's metadata must hold
            (``customerId``, ``clientId``...).
        parent_execution_id: Only the children of this execution (loop iterations,
            sub-workflow calls).
    """

    workflow_id: str | None = None
    statuses: tuple[str, ...] = ()
    trigger_type: str | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None
    before_id: str | None = None
    metadata: tuple[tuple[str, str], ...] = ()
    parent_execution_id: str | None = None


@dataclass(frozen=True)
class ExecutionSummary:
    """One row of an execution list."""

    id: str
    workflow_id: str
    version: int
    status: str
    trigger_type: str
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    retry_of: str | None
    parent_execution_id: str | None
    metadata: dict[str, Any] | None = None
    parent_node_id: str | None = None
    iteration: int | None = None


@dataclass(frozen=True)
class LogEntry:
    """One line of an execution's log."""

    id: str
    node_id: str | None
    attempt: int | None
    level: str
    message: str
    metadata: dict[str, Any]
    timestamp: datetime


@dataclass(frozen=True)
class StoredEvent:
    """One event of a stream, with its place in the tenant's sequence."""

    sequence: int
    type: str
    timestamp: datetime
    payload: dict[str, Any]


def _ms(t: datetime) -> int:
    # Before 1970 there are no ids; clamp instead of wrapping into the far future.
    return max(0, int(t.timestamp() * 1000))


def list_executions_query(tenant_id: str, f: ExecutionFilter, limit: int) -> sa.Select[Any]:
    """The SQL of one page (exposed so tests and the benchmark can EXPLAIN it)."""
    q = sa.select(*_SUMMARY).where(we.c.tenant_id == tenant_id)
    if f.workflow_id is not None:
        q = q.where(we.c.workflow_id == f.workflow_id)
    if f.trigger_type is not None:
        q = q.where(we.c.trigger_type == f.trigger_type)
    if f.parent_execution_id is not None:
        q = q.where(we.c.parent_execution_id == f.parent_execution_id)
    if f.created_from is not None:
        q = q.where(we.c.id >= uuid7_floor(_ms(f.created_from)))
    if f.created_to is not None:
        q = q.where(we.c.id < uuid7_floor(_ms(f.created_to) + 1))
    if f.before_id is not None:
        q = q.where(we.c.id < f.before_id)
    for key, value in f.metadata:
        # JSON ->> on PostgreSQL, JSON_EXTRACT on SQLite; walks the tenant's keyset index
        # and filters (no index on metadata: see docs/agents.md)
        q = q.where(sa.type_coerce(we.c["metadata"], sa.JSON)[key].as_string() == value)
    if len(f.statuses) <= 1:
        if f.statuses:
            q = q.where(we.c.status == f.statuses[0])
        return q.order_by(we.c.id.desc()).limit(limit)
    # Several statuses: one index walk per status, merged. An IN list would make the
    # planner collect every matching row and sort them before taking a page.
    parts = [
        sa.select(q.where(we.c.status == s).order_by(we.c.id.desc()).limit(limit).subquery())
        for s in f.statuses
    ]
    merged = sa.union_all(*parts).subquery()
    return sa.select(merged).order_by(merged.c.id.desc()).limit(limit)


def _summary(row: Any) -> ExecutionSummary:
    m = row._mapping
    return ExecutionSummary(
        id=str(m["id"]),
        workflow_id=str(m["workflow_id"]),
        version=m["version"],
        status=m["status"],
        trigger_type=m["trigger_type"],
        created_at=m["created_at"],
        started_at=m["started_at"],
        completed_at=m["completed_at"],
        retry_of=str(m["retry_of"]) if m["retry_of"] is not None else None,
        parent_execution_id=(
            str(m["parent_execution_id"]) if m["parent_execution_id"] is not None else None
        ),
        metadata=m.get("metadata"),
        parent_node_id=m.get("parent_node_id"),
        iteration=m.get("iteration"),
    )


def explain(conn: Connection, q: sa.Select[Any]) -> list[str]:
    """PostgreSQL's plan of a query, one line per row (for tests and the benchmark)."""
    compiled = q.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
    params = compiled.construct_params()
    positional = tuple(params[k] for k in compiled.positiontup or ())
    rows = conn.exec_driver_sql(f"EXPLAIN {compiled}", positional).all()
    return [str(r[0]) for r in rows]


def explain_generic(conn: Connection, q: sa.Select[Any]) -> list[str]:
    """PostgreSQL's generic plan of a query: the one a statement run often gets, made
    for any parameters (after five runs; forced here), one line per row."""
    compiled = q.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
    params = compiled.construct_params()
    values = [params[k] for k in compiled.positiontup or ()]
    conn.exec_driver_sql("SET LOCAL plan_cache_mode = force_generic_plan")
    conn.exec_driver_sql(f"PREPARE flowmill_plan AS {compiled}")
    try:
        args = ", ".join(_sql_literal(v) for v in values)
        rows = conn.exec_driver_sql(f"EXPLAIN EXECUTE flowmill_plan({args})").all()
    finally:
        conn.exec_driver_sql("DEALLOCATE flowmill_plan")
    return [str(r[0]) for r in rows]


def _sql_literal(value: Any) -> str:
    if isinstance(value, datetime):
        return f"'{value.isoformat()}'"
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


class ExecutionQueries:
    """Tenant-scoped reads of executions, node runs and logs."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def page(
        self, tenant_id: str, f: ExecutionFilter, limit: int
    ) -> tuple[list[ExecutionSummary], bool]:
        """One page, newest first, and whether more follow."""
        q = list_executions_query(tenant_id, f, limit + 1)
        rows = await self.db.read(lambda c: c.execute(q).all())
        items = [_summary(r) for r in rows[:limit]]
        return items, len(rows) > limit

    async def get(self, tenant_id: str, execution_id: str) -> ExecutionRecord | None:
        """One execution of the tenant, payloads included."""
        q = sa.select(we).where(we.c.id == execution_id, we.c.tenant_id == tenant_id)
        row = await self.db.read(lambda c: c.execute(q).first())
        return execution_from_row(row) if row is not None else None

    async def detail(
        self, tenant_id: str, execution_id: str
    ) -> tuple[ExecutionRecord, list[NodeRun]] | None:
        """An execution with every attempt of every node, oldest first."""

        def _read(conn: Connection) -> tuple[ExecutionRecord, list[NodeRun]] | None:
            row = conn.execute(
                sa.select(we).where(we.c.id == execution_id, we.c.tenant_id == tenant_id)
            ).first()
            if row is None:
                return None
            runs = conn.execute(
                sa.select(ne)
                .where(ne.c.execution_id == execution_id, ne.c.tenant_id == tenant_id)
                .order_by(ne.c.id)
            ).all()
            return execution_from_row(row), [run_from_row(r) for r in runs]

        return await self.db.read(_read)

    async def logs(
        self,
        tenant_id: str,
        execution_id: str,
        after_id: str | None,
        limit: int,
        *,
        levels: Sequence[str] | None = None,
        node_id: str | None = None,
    ) -> tuple[list[LogEntry], bool]:
        """A page of an execution's log, oldest first, and whether more follow; only
        lines at ``levels`` and of ``node_id`` when given."""
        q = sa.select(lg).where(lg.c.execution_id == execution_id, lg.c.tenant_id == tenant_id)
        if levels is not None:
            q = q.where(lg.c.level.in_(levels))
        if node_id is not None:
            q = q.where(lg.c.node_id == node_id)
        if after_id is not None:
            q = q.where(lg.c.id > after_id)
        q = q.order_by(lg.c.id).limit(limit + 1)
        rows = await self.db.read(lambda c: c.execute(q).all())
        items = [
            LogEntry(
                id=str(r.id),
                node_id=r.node_id,
                attempt=r.attempt,
                level=r.level,
                message=r.message,
                metadata=dict(r._mapping["metadata"] or {}),
                timestamp=r.timestamp,
            )
            for r in rows[:limit]
        ]
        return items, len(rows) > limit

    async def events(
        self, tenant_id: str, stream_id: str, after: int, limit: int
    ) -> list[StoredEvent]:
        """A stream's events after sequence ``after``, in order."""
        es = event_store
        q = (
            sa.select(es.c.sequence_number, es.c.event_type, es.c.timestamp, es.c.payload)
            .where(
                es.c.stream_id == stream_id,
                es.c.tenant_id == tenant_id,
                es.c.sequence_number > after,
            )
            .order_by(es.c.sequence_number)
            .limit(limit)
        )
        rows = await self.db.read(lambda c: c.execute(q).all())
        return [StoredEvent(r[0], r[1], r[2], dict(r[3] or {})) for r in rows]

"""Executions and node runs on a SQLAlchemy connection: reads, and the rows' shapes.

The shapers (``execution_values``, ``run_values``, ``log_values``, ``turn_rows``) are
what every writer of the engine's effects puts in a row: :mod:`flowmill.store.writer`
on both databases and PostgreSQL's set-based batch. The statements are built once at
import and executed with parameters, which keeps SQLAlchemy's per-call overhead to a
cache lookup.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from flowmill.domain.errors import ExecutionNotFound
from flowmill.domain.events import DomainEvent
from flowmill.domain.execution import (
    Effects,
    ExecutionRecord,
    LogLine,
    NodeRun,
)
from flowmill.domain.states import ExecutionStatus, NodeRunStatus
from flowmill.ids import uuid7
from flowmill.store.tables import (
    event_store,
    node_executions,
    tenants,
    workflow_executions,
)

ne = node_executions
we = workflow_executions
_bp = sa.bindparam

_INSERT_EVENTS = event_store.insert()
_BUMP_SEQUENCE = (
    tenants.update()
    .where(tenants.c.id == _bp("tenant_id"))
    .values(event_seq=tenants.c.event_seq + _bp("n"))
    .returning(tenants.c.event_seq)
)
_SELECT_EXECUTION = sa.select(we).where(we.c.id == _bp("execution_id"))
_EXECUTIONS = sa.select(we).where(we.c.id.in_(_bp("ids", expanding=True)))
_LOCK_EXECUTION = _SELECT_EXECUTION.with_for_update()
_SELECT_RUN = sa.select(ne).where(
    ne.c.execution_id == _bp("execution_id"),
    ne.c.node_id == _bp("node_id"),
    ne.c.attempt == _bp("attempt"),
)
_OUTPUTS = sa.select(ne.c.node_id, ne.c.attempt, ne.c.status, ne.c.output).where(
    ne.c.execution_id == _bp("execution_id"), ne.c.node_id.in_(_bp("ids", expanding=True))
)


def execution_from_row(row: Row[Any] | Mapping[str, Any]) -> ExecutionRecord:
    """Build a record from a ``workflow_executions`` row."""
    m = row._mapping if isinstance(row, Row) else row
    return ExecutionRecord(
        id=str(m["id"]),
        tenant_id=m["tenant_id"],
        workflow_id=str(m["workflow_id"]),
        version=m["version"],
        status=ExecutionStatus(m["status"]),
        trigger=m.get("trigger") or {},
        trigger_type=m["trigger_type"],
        created_at=m["created_at"],
        started_at=m["started_at"],
        completed_at=m["completed_at"],
        deadline_at=m["deadline_at"],
        output=m.get("output"),
        error=m.get("error"),
        parent_execution_id=m["parent_execution_id"],
        retry_of=m["retry_of"],
        metadata=m.get("metadata"),
        parent_node_id=m.get("parent_node_id"),
        iteration=m.get("iteration"),
    )


def run_from_row(row: Row[Any] | Mapping[str, Any]) -> NodeRun:
    """Build a record from a ``node_executions`` row."""
    m = row._mapping if isinstance(row, Row) else row
    return NodeRun(
        id=str(m["id"]),
        execution_id=str(m["execution_id"]),
        tenant_id=m["tenant_id"],
        node_id=m["node_id"],
        attempt=m["attempt"],
        status=NodeRunStatus(m["status"]),
        input=m["input"],
        output=m["output"],
        error=m["error"],
        handles=m["handles"],
        not_before=m["not_before"],
        created_at=m["created_at"],
        started_at=m["started_at"],
        completed_at=m["completed_at"],
        owner=m["owner"],
        state=m["state"],
    )


def run_values(r: NodeRun) -> dict[str, Any]:
    """Column values of a new ``node_executions`` row."""
    return {
        "id": r.id,
        "tenant_id": r.tenant_id,
        "execution_id": r.execution_id,
        "node_id": r.node_id,
        "attempt": r.attempt,
        "status": r.status.value,
        "input": r.input,
        "output": r.output,
        "error": r.error,
        "handles": r.handles,
        "state": r.state,
        "not_before": r.not_before,
        "created_at": r.created_at,
        "started_at": r.started_at,
        "completed_at": r.completed_at,
        "owner": r.owner,
    }


def execution_values(ex: ExecutionRecord, dedupe_key: str | None = None) -> dict[str, Any]:
    """Column values of a new ``workflow_executions`` row."""
    return {
        "id": ex.id,
        "tenant_id": ex.tenant_id,
        "workflow_id": ex.workflow_id,
        "version": ex.version,
        "status": ex.status.value,
        "trigger_type": ex.trigger_type,
        "trigger": ex.trigger,
        "output": ex.output,
        "error": ex.error,
        "created_at": ex.created_at,
        "started_at": ex.started_at,
        "completed_at": ex.completed_at,
        "deadline_at": ex.deadline_at,
        "parent_execution_id": ex.parent_execution_id,
        "parent_node_id": ex.parent_node_id,
        "iteration": ex.iteration,
        "retry_of": ex.retry_of,
        "dedupe_key": dedupe_key,
        "metadata": ex.metadata,
    }


def lock_execution(conn: Connection, execution_id: str, *, postgres: bool) -> ExecutionRecord:
    """Load the execution and lock its row until commit (PostgreSQL).

    On SQLite the write transaction (``BEGIN IMMEDIATE``) already excludes other writers.

    Raises:
        ExecutionNotFound: No such execution.
    """
    stmt = _LOCK_EXECUTION if postgres else _SELECT_EXECUTION
    row = conn.execute(stmt, {"execution_id": execution_id}).first()
    if row is None:
        raise ExecutionNotFound(f"execution {execution_id} not found")
    return execution_from_row(row)


def get_execution(conn: Connection, execution_id: str) -> ExecutionRecord | None:
    """The execution, or ``None``."""
    row = conn.execute(_SELECT_EXECUTION, {"execution_id": execution_id}).first()
    return execution_from_row(row) if row is not None else None


def get_run(conn: Connection, execution_id: str, node_id: str, attempt: int) -> NodeRun | None:
    """One attempt of one node, or ``None``."""
    row = conn.execute(
        _SELECT_RUN, {"execution_id": execution_id, "node_id": node_id, "attempt": attempt}
    ).first()
    return run_from_row(row) if row is not None else None


@functools.lru_cache(maxsize=128)
def _steps_statement(n: int) -> sa.Select[Any]:
    """Runs of ``n`` keys: one equality per key, OR'd, each a search of the unique
    index (SQLite scans the whole table for a row-value ``IN``). Built once per size:
    building it per call was most of the batch's cost."""
    return sa.select(ne).where(
        sa.or_(
            *(
                sa.and_(
                    ne.c.execution_id == _bp(f"e{i}"),
                    ne.c.node_id == _bp(f"n{i}"),
                    ne.c.attempt == _bp(f"a{i}"),
                )
                for i in range(n)
            )
        )
    )


def get_steps(
    conn: Connection, keys: Sequence[tuple[str, str, int]]
) -> list[tuple[ExecutionRecord, NodeRun] | None]:
    """Several ``(execution_id, node_id, attempt)`` at once, each with its execution, in
    two statements whatever their number; ``None`` where the run or execution is gone."""
    if not keys:
        return []
    params: dict[str, Any] = {}
    for i, (e, n, a) in enumerate(keys):
        params[f"e{i}"], params[f"n{i}"], params[f"a{i}"] = e, n, a
    found = conn.execute(_steps_statement(len(keys)), params).all()
    runs = {(str(r.execution_id), r.node_id, r.attempt): run_from_row(r) for r in found}
    ids = list({k[0] for k in keys})
    executions = {str(r.id): execution_from_row(r) for r in conn.execute(_EXECUTIONS, {"ids": ids})}
    out: list[tuple[ExecutionRecord, NodeRun] | None] = []
    for key in keys:
        run, ex = runs.get(key), executions.get(key[0])
        out.append((ex, run) if run is not None and ex is not None else None)
    return out


def outputs(conn: Connection, execution_id: str, node_ids: Collection[str]) -> dict[str, Any]:
    """Outputs of the latest attempts that succeeded (or failed and went on)."""
    if not node_ids:
        return {}
    latest: dict[str, tuple[int, str, Any]] = {}
    for node_id, attempt, status, output in conn.execute(
        _OUTPUTS, {"execution_id": execution_id, "ids": list(node_ids)}
    ):
        if node_id not in latest or attempt > latest[node_id][0]:
            latest[node_id] = (attempt, status, output)
    return {
        k: out
        for k, (_, status, out) in latest.items()
        if status in (NodeRunStatus.SUCCEEDED.value, NodeRunStatus.FAILED.value)
    }


TURN_COLUMNS = (
    "id",
    "tenant_id",
    "conversation_id",
    "client_id",
    "role",
    "content",
    "timestamp",
    "execution_id",
    "node_id",
    "attempt",
    "seq",
    "metadata",
)


def turn_rows(fx: Effects) -> list[dict[str, Any]]:
    """Column values (:data:`TURN_COLUMNS`) of the conversation turns of ``fx``: owned
    by the execution's tenant, tied to the step that wrote them."""
    key = fx.turns_of
    assert key is not None, "turns are written with the step that made them"
    return [
        {
            "id": uuid7(),
            "tenant_id": fx.tenant_id,
            "conversation_id": t.conversation_id,
            "client_id": t.client_id,
            "role": t.role,
            "content": t.content,
            "timestamp": t.timestamp,
            "execution_id": key.execution_id,
            "node_id": key.node_id,
            "attempt": key.attempt,
            "seq": t.seq,
            "metadata": t.metadata,
        }
        for t in fx.turns
    ]


def log_values(tenant_id: str, execution_id: str, line: LogLine, now: datetime) -> dict[str, Any]:
    """Column values of a new ``execution_logs`` row (``now`` if the line has no time)."""
    return {
        "id": uuid7(),
        "tenant_id": tenant_id,
        "execution_id": execution_id,
        "node_id": line.node_id,
        "attempt": line.attempt,
        "level": line.level,
        "message": line.message,
        "metadata": line.metadata,
        "timestamp": line.timestamp or now,
    }


def event_values(tenant_id: str, e: DomainEvent) -> dict[str, Any]:
    """Column values of a new ``event_store`` row but its sequence number, which the
    writer takes from the tenant's counter as it commits."""
    return {
        "id": e.id,
        "tenant_id": tenant_id,
        "stream_id": e.stream_id,
        "event_type": e.type,
        "payload": e.payload,
        "timestamp": e.timestamp,
    }


def append_events(conn: Connection, tenant_id: str, events: list[DomainEvent]) -> None:
    """Store events with the tenant's next sequence numbers.

    Bumping the tenant's counter row takes its lock until commit, so a tenant's events
    commit in sequence order and a reader following the sequence never skips one.
    """
    if not events:
        return
    last = conn.execute(_BUMP_SEQUENCE, {"tenant_id": tenant_id, "n": len(events)}).scalar_one()
    first = last - len(events) + 1
    conn.execute(
        _INSERT_EVENTS,
        [
            {**event_values(tenant_id, e), "sequence_number": first + i}
            for i, e in enumerate(events)
        ],
    )

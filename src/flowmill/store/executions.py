"""Repository of executions and node runs: synchronous SQL on a connection.

The statements of the step hot path are built once at import and executed with
parameters, which keeps SQLAlchemy's per-call overhead to a cache lookup.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
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
    NodeState,
    StaleStepError,
)
from flowmill.domain.states import ExecutionStatus, NodeRunStatus
from flowmill.ids import uuid7
from flowmill.store.tables import (
    LIVE_STATUSES,
    conversation_history,
    event_store,
    execution_logs,
    node_executions,
    tenants,
    workflow_executions,
)

ne = node_executions
we = workflow_executions
_bp = sa.bindparam

_INSERT_RUN = ne.insert()
_INSERT_EXECUTION = we.insert()
_INSERT_EVENTS = event_store.insert()
_INSERT_LOGS = execution_logs.insert()
_UPDATE_RUN = (
    ne.update()
    .where(ne.c.id == _bp("run_id"), ne.c.status.in_(_bp("expect", expanding=True)))
    .values(
        status=_bp("status"),
        output=_bp("output"),
        error=_bp("error"),
        handles=_bp("handles"),
        state=_bp("state"),
        not_before=sa.func.coalesce(_bp("not_before", type_=ne.c.not_before.type), ne.c.not_before),
        completed_at=_bp("completed_at"),
        started_at=sa.func.coalesce(_bp("started_at", type_=ne.c.started_at.type), ne.c.started_at),
        owner=sa.func.coalesce(_bp("owner", type_=ne.c.owner.type), ne.c.owner),
    )
)
_CANCEL_LIVE = (
    ne.update()
    .where(ne.c.execution_id == _bp("b_execution_id"), ne.c.status.in_(LIVE_STATUSES))
    .values(status=NodeRunStatus.CANCELLED.value, completed_at=_bp("b_now"))
)
_UPDATE_EXECUTION = (
    we.update()
    .where(we.c.id == _bp("execution_id"))
    .values(
        status=_bp("status"),
        output=_bp("output"),
        error=_bp("error"),
        started_at=sa.func.coalesce(_bp("started_at", type_=we.c.started_at.type), we.c.started_at),
        completed_at=_bp("completed_at"),
    )
)
_BUMP_SEQUENCE = (
    tenants.update()
    .where(tenants.c.id == _bp("tenant_id"))
    .values(event_seq=tenants.c.event_seq + _bp("n"))
    .returning(tenants.c.event_seq)
)
_SELECT_EXECUTION = sa.select(we).where(we.c.id == _bp("execution_id"))
# A checkpoint needs the execution's state, not its (possibly large) trigger payload.
_LIGHT_COLUMNS = [c for c in we.c if c.name not in ("trigger", "output", "error")]
_SELECT_LIGHT = sa.select(*_LIGHT_COLUMNS).where(we.c.id == _bp("execution_id"))
_LOCK_LIGHT = _SELECT_LIGHT.with_for_update()
_LOCK_EXECUTION = _SELECT_EXECUTION.with_for_update()
_SELECT_RUN = sa.select(ne).where(
    ne.c.execution_id == _bp("execution_id"),
    ne.c.node_id == _bp("node_id"),
    ne.c.attempt == _bp("attempt"),
)
_STATES = sa.select(ne.c.node_id, ne.c.attempt, ne.c.status, ne.c.handles).where(
    ne.c.execution_id == _bp("execution_id"), ne.c.node_id.in_(_bp("ids", expanding=True))
)
_OUTPUTS = sa.select(ne.c.node_id, ne.c.attempt, ne.c.status, ne.c.output).where(
    ne.c.execution_id == _bp("execution_id"), ne.c.node_id.in_(_bp("ids", expanding=True))
)
_LIVE_OF_EXECUTION = (
    sa.select(ne.c.id)
    .where(ne.c.execution_id == _bp("execution_id"), ne.c.status.in_(LIVE_STATUSES))
    .limit(_bp("limit"))
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


def lock_execution(
    conn: Connection, execution_id: str, *, postgres: bool, payload: bool = False
) -> ExecutionRecord:
    """Load the execution and lock its row until commit (PostgreSQL).

    On SQLite the write transaction (``BEGIN IMMEDIATE``) already excludes other writers.
    Without ``payload`` the trigger, output and error are not read (left empty).

    Raises:
        ExecutionNotFound: No such execution.
    """
    if payload:
        stmt = _LOCK_EXECUTION if postgres else _SELECT_EXECUTION
    else:
        stmt = _LOCK_LIGHT if postgres else _SELECT_LIGHT
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


class SqlStateReader:
    """The planner's view of one execution's runs, inside the current transaction."""

    def __init__(self, conn: Connection, execution_id: str) -> None:
        self._conn = conn
        self._execution_id = execution_id

    def states(self, node_ids: Collection[str]) -> Mapping[str, NodeState]:
        latest: dict[str, tuple[int, NodeState]] = {}
        for node_id, attempt, status, handles in self._conn.execute(
            _STATES, {"execution_id": self._execution_id, "ids": list(node_ids)}
        ):
            if node_id not in latest or attempt > latest[node_id][0]:
                state = NodeState(
                    NodeRunStatus(status), tuple(handles) if handles is not None else None
                )
                latest[node_id] = (attempt, state)
        return {k: v for k, (_, v) in latest.items()}

    def outputs(self, node_ids: Collection[str]) -> Mapping[str, Any]:
        return outputs(self._conn, self._execution_id, node_ids)

    def has_live_runs(self, exclude: Collection[str]) -> bool:
        rows = self._conn.execute(
            _LIVE_OF_EXECUTION,
            {"execution_id": self._execution_id, "limit": len(exclude) + 1},
        ).scalars()
        return any(str(r) not in exclude for r in rows)


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


def apply_effects(
    conn: Connection, fx: Effects, now: datetime, *, dedupe_key: str | None = None
) -> None:
    """Write ``fx`` on ``conn`` (inside the caller's transaction).

    ``dedupe_key`` goes on a new execution's row (unique per tenant).

    Raises:
        StaleStepError: A run update found its run already moved on (a duplicate job
            finished it first); the caller must roll back.
    """
    if fx.new_execution is not None:
        conn.execute(_INSERT_EXECUTION, execution_values(fx.new_execution, dedupe_key))
    for u in fx.run_updates:
        result = conn.execute(
            _UPDATE_RUN,
            {
                "run_id": u.run_id,
                "expect": [s.value for s in u.expect],
                "status": u.status.value,
                "output": u.output,
                "error": u.error,
                "handles": u.handles,
                "state": u.state,
                "not_before": u.not_before,
                "completed_at": u.completed_at,
                "started_at": u.started_at,
                "owner": u.owner,
            },
        )
        if result.rowcount != 1:
            raise StaleStepError(u.run_id)
    if fx.cancel_live_runs:
        conn.execute(_CANCEL_LIVE, {"b_execution_id": fx.execution_id, "b_now": now})
    if fx.new_runs:
        conn.execute(_INSERT_RUN, [run_values(r) for r in fx.new_runs])
    if fx.execution_update is not None:
        x = fx.execution_update
        conn.execute(
            _UPDATE_EXECUTION,
            {
                "execution_id": fx.execution_id,
                "status": x.status.value,
                "output": x.output,
                "error": x.error,
                "started_at": x.started_at,
                "completed_at": x.completed_at,
            },
        )
    if fx.logs:
        insert_logs(conn, fx.tenant_id, fx.execution_id, fx.logs, now)
    if fx.turns:
        conn.execute(conversation_history.insert(), turn_rows(fx))
    # Last, so the tenant's sequence row is locked only for the commit itself.
    append_events(conn, fx.tenant_id, fx.events)


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


def insert_logs(
    conn: Connection, tenant_id: str, execution_id: str, logs: Iterable[LogLine], now: datetime
) -> None:
    """Append lines to an execution's log."""
    conn.execute(_INSERT_LOGS, [log_values(tenant_id, execution_id, line, now) for line in logs])


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
            {
                "id": e.id,
                "tenant_id": tenant_id,
                "stream_id": e.stream_id,
                "event_type": e.type,
                "payload": e.payload,
                "timestamp": e.timestamp,
                "sequence_number": first + i,
            }
            for i, e in enumerate(events)
        ],
    )

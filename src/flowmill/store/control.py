"""Children and signals in SQLite or PostgreSQL (the ``ControlStore`` port).

Engine-internal, so not tenant-scoped: a node only ever asks about its own execution's
children and signals. Children are read through ``ix_executions_parent``; a collection
reads one batch of iterations at a time, so memory stays flat however long the loop.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from flowmill.domain.states import ExecutionStatus, NodeRunStatus
from flowmill.engine.control import DETACHED, ChildRecord, ParkedRun, Signal
from flowmill.ids import uuid7
from flowmill.store.database import Database
from flowmill.store.tables import (
    LIVE_STATUSES,
    execution_signals,
    node_executions,
    workflow_executions,
)

we = workflow_executions
ne = node_executions
sg = execution_signals


class SqlControlStore:
    """:class:`~flowmill.engine.control.ControlStore` on the database."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def children(
        self, parent_id: str, node_id: str, start: int, stop: int
    ) -> list[ChildRecord]:
        q = (
            sa.select(we.c.id, we.c.iteration, we.c.status, we.c.output, we.c.error)
            .where(
                we.c.parent_execution_id == parent_id,
                we.c.parent_node_id == node_id,
                we.c.iteration >= start,
                we.c.iteration < stop,
            )
            .order_by(we.c.iteration)
        )
        rows = await self.db.read(lambda c: c.execute(q).all())
        return [ChildRecord(str(r[0]), r[1], ExecutionStatus(r[2]), r[3], r[4]) for r in rows]

    async def child(self, child_id: str) -> ChildRecord | None:
        q = sa.select(we.c.id, we.c.iteration, we.c.status, we.c.output, we.c.error).where(
            we.c.id == child_id
        )
        r = await self.db.read(lambda c: c.execute(q).first())
        return (
            None if r is None else ChildRecord(str(r[0]), r[1], ExecutionStatus(r[2]), r[3], r[4])
        )

    async def child_states(
        self, parent_id: str, node_id: str, start: int, stop: int
    ) -> list[tuple[int, ExecutionStatus]]:
        q = sa.select(we.c.iteration, we.c.status).where(
            we.c.parent_execution_id == parent_id,
            we.c.parent_node_id == node_id,
            we.c.iteration >= start,
            we.c.iteration < stop,
        )
        rows = await self.db.read(lambda c: c.execute(q).all())
        return [(int(r[0]), ExecutionStatus(r[1])) for r in rows]

    async def live_children(self, parent_id: str, limit: int = 500) -> list[str]:
        q = (
            sa.select(we.c.id)
            .where(
                we.c.parent_execution_id == parent_id,
                we.c.status.in_((*LIVE_STATUSES, ExecutionStatus.QUEUED.value)),
                we.c.trigger_type != DETACHED,
            )
            .limit(limit)
        )
        return [str(i) for i in await self.db.read(lambda c: c.execute(q).scalars().all())]

    async def parked(self, execution_id: str) -> list[ParkedRun]:
        q = sa.select(ne.c.id, ne.c.node_id, ne.c.attempt, ne.c.state, ne.c.not_before).where(
            ne.c.execution_id == execution_id, ne.c.status == NodeRunStatus.WAITING.value
        )
        rows = await self.db.read(lambda c: c.execute(q).all())
        return [ParkedRun(str(r[0]), r[1], r[2], dict(r[3] or {}), r[4]) for r in rows]

    async def add_signal(
        self,
        tenant_id: str,
        execution_id: str,
        name: str,
        payload: Any,
        now: datetime,
        signal_id: str | None = None,
    ) -> bool:
        row = {
            "id": signal_id or uuid7(),
            "tenant_id": tenant_id,
            "execution_id": execution_id,
            "name": name,
            "payload": payload,
            "received_at": now,
        }

        def _tx(conn: Connection) -> bool:
            if signal_id is not None:
                seen = conn.execute(sa.select(sg.c.id).where(sg.c.id == signal_id)).first()
                if seen is not None:
                    return False
            conn.execute(sg.insert().values(**row))
            return True

        try:
            return await self.db.write(_tx)
        except sa.exc.IntegrityError:
            return False  # the same id, inserted by a concurrent request

    async def take_signal(
        self, execution_id: str, names: tuple[str, ...], consumer: str, now: datetime
    ) -> Signal | None:
        def _tx(conn: Connection) -> Signal | None:
            mine = conn.execute(
                sa.select(sg).where(sg.c.execution_id == execution_id, sg.c.consumed_by == consumer)
            ).first()
            if mine is not None:
                return _signal(mine)
            free = (
                sa.select(sg)
                .where(
                    sg.c.execution_id == execution_id,
                    sg.c.name.in_(names),
                    sg.c.consumed_by.is_(None),
                )
                .order_by(sg.c.received_at, sg.c.id)
                .limit(1)
            )
            if self.db.is_postgres:
                free = free.with_for_update(skip_locked=True)
            row = conn.execute(free).first()
            if row is None:
                return None
            conn.execute(
                sg.update()
                .where(sg.c.id == row.id, sg.c.consumed_by.is_(None))
                .values(consumed_by=consumer, consumed_at=now)
            )
            return _signal(row)

        return await self.db.write(_tx)

    async def has_signal(self, execution_id: str, names: tuple[str, ...], consumer: str) -> bool:
        q = (
            sa.select(sg.c.id)
            .where(
                sg.c.execution_id == execution_id,
                sa.or_(
                    sa.and_(sg.c.name.in_(names), sg.c.consumed_by.is_(None)),
                    sg.c.consumed_by == consumer,
                ),
            )
            .limit(1)
        )
        return await self.db.read(lambda c: c.execute(q).first()) is not None


def _signal(row: Any) -> Signal:
    return Signal(str(row.id), row.name, row.payload, row.received_at)

"""Conversation turns are part of the step's checkpoint (SQLite, PostgreSQL): a
duplicate of the step that loses the race writes none; a second write of one step's
turns is refused by the unique key whatever path it takes."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import pytest
import sqlalchemy as sa

from flowmill.config import Settings
from flowmill.domain.execution import ConversationTurn, Effects, StaleStepError
from flowmill.engine import transitions as tx
from flowmill.runs import register
from flowmill.runtime import Runtime, open_runtime
from flowmill.store.tables import conversation_history

DOC = {
    "name": "turns",
    "tenant_id": "acme",
    "nodes": [{"id": "t", "type": "trigger"}, {"id": "a", "type": "noop"}],
    "edges": [{"source": "t", "target": "a"}],
}


@pytest.fixture
async def rt(database_url: str) -> AsyncIterator[Runtime]:
    async with open_runtime(Settings(database_url=database_url, sandbox_enabled=False)) as r:
        yield r


def _turns(now: datetime) -> list[ConversationTurn]:
    return [
        ConversationTurn("conv", "shop", "user", "hi", now, 0),
        ConversationTurn("conv", "shop", "assistant", "hello", now, 1, {"model": "m"}),
    ]


async def _count(rt: Runtime) -> list[tuple[str, str, int]]:
    ch = conversation_history
    rows = await rt.db.read(
        lambda c: c.execute(sa.select(ch.c.role, ch.c.node_id, ch.c.attempt).order_by(ch.c.seq))
    )
    return [tuple(r) for r in rows]  # type: ignore[misc]


async def test_turns_written_once_when_a_duplicate_step_checkpoints_second(rt: Runtime) -> None:
    wf_id, version, tenant = await register(rt, DOC, None)
    ex_id = await rt.engine.start_execution(tenant_id=tenant, workflow_id=wf_id, version=version)
    wf = await rt.engine.compiled(wf_id, version)
    (run,) = [r for r in await rt.executions.node_runs(ex_id) if r.node_id == "a"]
    ex = await rt.executions.get_execution(ex_id)
    assert ex is not None
    now = datetime.now(UTC)

    async def finish() -> Effects:
        outcome = tx.Succeeded({"reply": "hello"}, turns=_turns(now))
        return await rt.executions.checkpoint(
            ex_id, lambda e, reader: tx.after_step(wf, e, run, outcome, reader, now), assumed=ex
        )

    first = await finish()
    assert len(first.turns) == 2
    # the same step, run again by a second worker, finishing after the first
    with pytest.raises(StaleStepError):
        await finish()
    assert await _count(rt) == [("user", "a", 1), ("assistant", "a", 1)]


async def test_turns_of_one_step_cannot_be_written_twice(rt: Runtime) -> None:
    wf_id, version, tenant = await register(rt, DOC, None)
    ex_id = await rt.engine.start_execution(tenant_id=tenant, workflow_id=wf_id, version=version)
    wf = await rt.engine.compiled(wf_id, version)
    (run,) = [r for r in await rt.executions.node_runs(ex_id) if r.node_id == "a"]
    now = datetime.now(UTC)
    outcome = tx.Succeeded({"reply": "hello"}, turns=_turns(now))
    await rt.executions.checkpoint(
        ex_id, lambda e, reader: tx.after_step(wf, e, run, outcome, reader, now)
    )

    def again(e: object, reader: object) -> Effects:
        return Effects(ex_id, tenant, turns=_turns(now), turns_of=run.key)

    # each write path reports it in its driver's words
    unique = (sa.exc.IntegrityError, sqlite3.IntegrityError, asyncpg.UniqueViolationError)
    with pytest.raises(unique):
        await rt.executions.checkpoint(ex_id, again)  # type: ignore[arg-type]
    assert len(await _count(rt)) == 2

"""Batched writes and loads on PostgreSQL (``store.postgres_batch``): many starts and
steps in one statement, each item with its own guards, no deadlock between batches of
several tenants, gapless per-tenant event sequences, and plans made again as use grows."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest

from flowmill.config import Settings
from flowmill.domain.execution import ExecutionRecord, StepKey
from flowmill.domain.states import ExecutionStatus as X
from flowmill.engine import starts
from flowmill.ids import uuid7
from flowmill.runs import register
from flowmill.runtime import Runtime, open_runtime
from flowmill.store import postgres_batch as pg_batch
from flowmill.store.execution_store import SqlExecutionStore
from flowmill.store.postgres_batch import Plans, WriteItem

pytestmark = pytest.mark.postgres

CHAIN = {
    "name": "chain",
    "nodes": [{"id": "t", "type": "trigger"}, {"id": "a", "type": "noop"}],
    "edges": [{"source": "t", "target": "a"}],
}


@contextlib.asynccontextmanager
async def runtime(url: str) -> AsyncIterator[Runtime]:
    async with open_runtime(Settings(database_url=url, sweep_interval_s=0.05)) as rt:
        yield rt


def store_of(rt: Runtime) -> SqlExecutionStore:
    store = rt.executions
    assert isinstance(store, SqlExecutionStore)
    return store


async def sequences(url: str) -> dict[str, list[int]]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch(
            "SELECT tenant_id, sequence_number FROM event_store ORDER BY tenant_id, 2"
        )
    finally:
        await conn.close()
    out: dict[str, list[int]] = {}
    for tenant, seq in rows:
        out.setdefault(tenant, []).append(seq)
    return out


async def test_postgres_batch_concurrent_starts_share_statements(postgres_url: str) -> None:
    async with runtime(postgres_url) as rt:
        wf_id, version, tenant = await register(rt, CHAIN, "acme")
        ids = await asyncio.gather(
            *(
                rt.engine.start_execution(
                    tenant_id=tenant, workflow_id=wf_id, version=version, data={"i": i}
                )
                for i in range(40)
            )
        )
        writes = store_of(rt)._writes
        assert writes is not None
        assert writes.items == 40
        assert writes.batches < 40, "every start took a statement of its own"
        for execution_id in ids:
            ex = await rt.executions.get_execution(execution_id)
            assert ex is not None and ex.status is X.RUNNING
            runs = {r.node_id: r.status.value for r in await rt.executions.node_runs(ex.id)}
            assert runs == {"t": "succeeded", "a": "queued"}
    seqs = await sequences(postgres_url)
    assert seqs["acme"] == list(range(1, len(seqs["acme"]) + 1)), "gaps or duplicates"


async def test_postgres_batch_runs_executions_to_the_end(postgres_url: str) -> None:
    async with runtime(postgres_url) as rt, rt.engine.running():
        wf_id, version, tenant = await register(rt, CHAIN, "acme")
        ids = await asyncio.gather(
            *(
                rt.engine.start_execution(tenant_id=tenant, workflow_id=wf_id, version=version)
                for _ in range(30)
            )
        )
        done = [await rt.engine.wait(i, timeout=10) for i in ids]
        assert {ex.status for ex in done} == {X.SUCCEEDED}
    seqs = await sequences(postgres_url)
    assert seqs["acme"] == list(range(1, len(seqs["acme"]) + 1))


async def test_postgres_batch_dedupe_key_in_one_batch_starts_once(postgres_url: str) -> None:
    async with runtime(postgres_url) as rt:
        wf_id, version, tenant = await register(rt, CHAIN, "acme")
        ids = await asyncio.gather(
            *(
                rt.engine.start_execution(
                    tenant_id=tenant, workflow_id=wf_id, version=version, dedupe_key="evt-1"
                )
                for _ in range(5)
            )
        )
        assert len(set(ids)) == 1
        conn = await asyncpg.connect(postgres_url)
        try:
            count = await conn.fetchval("SELECT count(*) FROM workflow_executions")
            runs = await conn.fetchval("SELECT count(*) FROM node_executions")
        finally:
            await conn.close()
        assert count == 1 and runs == 2  # nothing of the losers was written


async def _start_items(rt: Runtime, tenants: list[str]) -> list[WriteItem]:
    items = []
    for tenant in tenants:
        wf_id, version, _ = await register(rt, CHAIN, tenant)
        wf = await rt.engine.compiled(wf_id, version)
        now = rt.engine.clock.now()
        ex = ExecutionRecord(
            id=uuid7(),
            tenant_id=tenant,
            workflow_id=wf_id,
            version=version,
            status=X.PENDING,
            trigger={"type": "manual", "data": None},
            trigger_type="manual",
            created_at=now,
        )
        items.append(WriteItem(starts.start_execution(wf, ex, "t", None, now)))
    return items


async def test_postgres_batch_concurrent_batches_of_many_tenants_stay_gapless(
    postgres_url: str,
) -> None:
    tenants = [f"tenant-{k}" for k in range(12)]
    rng = random.Random(7)
    async with runtime(postgres_url) as rt:
        engine = store_of(rt).db.engine  # type: ignore[attr-defined]
        plans = Plans()
        for _ in range(12):
            # Four statements at once, each bumping the sequences of a random handful of
            # tenants; an error (a deadlock included) raises here: the store would hide
            # it by retrying the items one by one.
            batches = [
                await _start_items(rt, rng.sample(tenants, rng.randint(2, len(tenants))))
                for _ in range(4)
            ]
            results = await asyncio.gather(
                *(pg_batch.write(engine, b, rt.engine.clock.now(), plans) for b in batches)
            )
            assert all(r.done for batch in results for r in batch)
    seqs = await sequences(postgres_url)
    for tenant, numbers in seqs.items():
        assert numbers == list(range(1, len(numbers) + 1)), tenant


async def test_postgres_batch_load_finds_steps_and_misses(postgres_url: str) -> None:
    async with runtime(postgres_url) as rt:
        wf_id, version, tenant = await register(rt, CHAIN, "acme")
        execution_id = await rt.engine.start_execution(
            tenant_id=tenant, workflow_id=wf_id, version=version, data={"x": 1}
        )
        engine = store_of(rt).db.engine  # type: ignore[attr-defined]
        keys = [StepKey(execution_id, "a", 1), StepKey(execution_id, "a", 2)]
        found, missing = await pg_batch.load(engine, keys, Plans())
        assert missing is None
        assert found is not None
        assert found.execution.id == execution_id and found.execution.tenant_id == "acme"
        assert found.execution.trigger["data"] == {"x": 1}
        assert found.run.node_id == "a" and found.run.status.value == "queued"


async def test_postgres_batch_plans_are_made_again_as_use_quadruples(postgres_url: str) -> None:
    conn = await asyncpg.connect(postgres_url)
    try:
        plans = Plans()
        statements: list[Any] = []
        for _ in range(65):
            statements.append(await plans.get(conn, "SELECT 1"))
        # Prepared at the first use, at 16 uses and at 64.
        assert plans.prepared == 3
        assert statements[0] is statements[15]
        assert statements[15] is not statements[16]
        assert statements[16] is statements[63]
        assert statements[63] is not statements[64]
    finally:
        await conn.close()

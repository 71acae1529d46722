"""The ``concurrent_executions`` quota on real databases (SQLite and PostgreSQL).

A tenant's executions beyond its cap wait in ``queued`` and start as others end; other
tenants are not held; the cap holds for concurrent starts of different workflows (on
PostgreSQL the workflow's row lock does not serialise those: the tenant's lock must).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from flowmill.config import Settings
from flowmill.domain.execution import ExecutionRecord
from flowmill.domain.states import ExecutionStatus as X
from flowmill.runs import register
from flowmill.runtime import Runtime, open_runtime
from flowmill.store.quotas import QuotaStore
from flowmill.testing import eventually
from tests.integration.distributed_support import Deployment, wait_all_done


def _doc(name: str, tenant: str, ms: int = 150) -> dict[str, Any]:
    return {
        "name": name,
        "tenant_id": tenant,
        "nodes": [
            {"id": "t", "type": "trigger"},
            {"id": "d", "type": "delay", "config": {"ms": ms}},
        ],
        "edges": [{"source": "t", "target": "d"}],
    }


@contextlib.asynccontextmanager
async def _runtime(url: str, **overrides: Any) -> AsyncIterator[Runtime]:
    # A slow sweep: executions must start because others ended, not because of it.
    settings = Settings(database_url=url, sweep_interval_s=30, **overrides)
    async with open_runtime(settings) as rt:
        yield rt


def _most_at_once(done: list[ExecutionRecord]) -> int:
    spans = [(e.started_at, e.completed_at) for e in done]
    return max(sum(1 for s, end in spans if s <= start < end) for start, _ in spans)  # type: ignore[operator]


async def test_tenant_execution_cap_queues_beyond_it_and_starts_them_as_others_end(
    database_url: str,
) -> None:
    async with _runtime(database_url) as rt:
        wf_a, v_a, acme = await register(rt, _doc("busy", "acme"), None)
        wf_b, v_b, other = await register(rt, _doc("calm", "other"), None)
        await QuotaStore(rt.db).update(acme, {"concurrent_executions": 2})
        rt.quotas.forget()
        # Started before the worker runs (a loaded machine may not start six within a
        # delay node's 150 ms), so none has ended when the statuses are read.
        ids = [
            await rt.engine.start_execution(tenant_id=acme, workflow_id=wf_a, version=v_a, data={})
            for _ in range(6)
        ]
        theirs = await rt.engine.start_execution(
            tenant_id=other, workflow_id=wf_b, version=v_b, data={}
        )
        statuses = [e.status for i in ids if (e := await rt.executions.get_execution(i))]
        assert statuses.count(X.QUEUED) == 4, statuses
        other_ex = await rt.executions.get_execution(theirs)
        assert other_ex is not None and other_ex.status is not X.QUEUED
        async with rt.engine.running():
            done = [await rt.engine.wait(i, timeout=20) for i in ids]
        assert all(e.status is X.SUCCEEDED for e in done), [e.status for e in done]
        assert _most_at_once(done) <= 2


async def test_tenant_execution_cap_holds_for_concurrent_starts_of_different_workflows(
    database_url: str,
) -> None:
    async with _runtime(database_url, tenant_concurrent_executions=2) as rt:
        tenant = "acme"
        workflows = [await register(rt, _doc(f"wf{i}", tenant), None) for i in range(6)]
        ids = await asyncio.gather(
            *(
                rt.engine.start_execution(tenant_id=tenant, workflow_id=wf, version=v, data={})
                for wf, v, _ in workflows
                for _ in range(2)
            )
        )
        started = [e for i in ids if (e := await rt.executions.get_execution(i))]
        assert sum(e.status is not X.QUEUED for e in started) == 2, [e.status for e in started]


async def test_tenant_execution_cap_start_queued_only_for_order_starts_when_there_is_room(
    database_url: str,
) -> None:
    """A start queued behind the tenant's older queued one (held by its workflow's own
    limit) while the tenant is below its cap: nothing may end to start it, so the start
    looks for room itself. No worker runs here, so no sweep either."""
    async with _runtime(database_url, tenant_concurrent_executions=3) as rt:
        one = {**_doc("one at a time", "acme"), "settings": {"max_concurrent": 1}}
        single, v1, tenant = await register(rt, one, None)
        free, v2, _ = await register(rt, _doc("free", "acme"), None)
        for _ in range(2):
            await rt.engine.start_execution(
                tenant_id=tenant, workflow_id=single, version=v1, data={}
            )
        late = await rt.engine.start_execution(
            tenant_id=tenant, workflow_id=free, version=v2, data={}
        )

        async def started() -> bool:
            ex = await rt.executions.get_execution(late)
            return ex is not None and ex.status is not X.QUEUED

        await eventually(started, 10, "the free workflow's execution started")


@pytest.fixture
def deployment(
    postgres_url: str, redis_url: str, redis_prefix: str, tmp_path: Path
) -> Iterator[Deployment]:
    d = Deployment(postgres_url, redis_url, redis_prefix, tmp_path)
    yield d
    d.stop_all()


async def test_tenant_execution_cap_holds_across_worker_processes(deployment: Deployment) -> None:
    """Started by an API process, run by two BullMQ workers that read the tenant's
    override from the database; the queued ones start as the workers end the others
    (their sweeps are too slow to be what starts them)."""
    total = 8
    async with open_runtime(deployment.settings(), kind="api") as rt:
        wf, version, tenant = await register(rt, _doc("capped", "acme"), None)
        await QuotaStore(rt.db).update(tenant, {"concurrent_executions": 2})
        rt.quotas.forget()
        for i in range(total):
            await rt.engine.start_execution(
                tenant_id=tenant, workflow_id=wf, version=version, data=i
            )
    for _ in range(2):
        await deployment.start_worker(FLOWMILL_SWEEP_INTERVAL_S="60")
    records = await wait_all_done(deployment, total, timeout=45)
    assert records.statuses == {"succeeded": total}
    conn = await asyncpg.connect(deployment.database_url)
    try:
        rows = await conn.fetch("SELECT started_at, completed_at FROM workflow_executions")
    finally:
        await conn.close()
    spans = sorted((r[0], r[1]) for r in rows)
    overlaps = [sum(1 for s, e in spans if s <= start < e) for start, _ in spans]
    assert max(overlaps) <= 2, spans

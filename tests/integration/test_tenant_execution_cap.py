"""The ``concurrent_executions`` quota on real databases (SQLite and PostgreSQL).

A tenant's executions beyond its cap wait in ``queued`` and start as others end; other
tenants are not held; the cap holds for concurrent starts of different workflows (on
PostgreSQL the workflow's row lock does not serialise those: the tenant's lock must).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from flowmill.config import Settings
from flowmill.domain.execution import ExecutionRecord
from flowmill.domain.states import ExecutionStatus as X
from flowmill.runs import register
from flowmill.runtime import Runtime, open_runtime
from flowmill.store.quotas import QuotaStore


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
    async with _runtime(database_url) as rt, rt.engine.running():
        wf_a, v_a, acme = await register(rt, _doc("busy", "acme"), None)
        wf_b, v_b, other = await register(rt, _doc("calm", "other"), None)
        await QuotaStore(rt.db).update(acme, {"concurrent_executions": 2})
        rt.quotas.forget()
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

"""Priorities: a high-priority execution started behind a backlog finishes first, on the
embedded queue (SQLite) and on BullMQ (PostgreSQL + Redis), whether the priority comes
from the start or from the workflow's ``settings.priority``."""

from __future__ import annotations

from typing import Any

import pytest

from flowmill.config import Settings
from flowmill.domain.states import ExecutionStatus as X
from flowmill.runs import register
from flowmill.runtime import open_runtime
from tests.engine_support import registry

BACKLOG = 12


def slow(name: str, **settings: Any) -> dict[str, Any]:
    return {
        "name": name,
        "settings": settings,
        "nodes": [
            {"id": "t", "type": "trigger"},
            {"id": "work", "type": "slow", "config": {"seconds": 0.1}},
        ],
        "edges": [{"source": "t", "target": "work"}],
    }


@pytest.fixture(params=["embedded", "bullmq"])
def queue_settings(request: pytest.FixtureRequest) -> dict[str, Any]:
    if request.param == "embedded":
        return {"database_url": request.getfixturevalue("sqlite_url")}
    return {
        "database_url": request.getfixturevalue("postgres_url"),
        "redis_url": request.getfixturevalue("redis_url"),
        "queue_prefix": request.getfixturevalue("redis_prefix"),
    }


@pytest.mark.parametrize("how", ["start", "settings"])
async def test_priorities_a_high_priority_start_overtakes_the_backlog(
    queue_settings: dict[str, Any], how: str
) -> None:
    settings = Settings(**queue_settings, concurrency=1, sandbox_enabled=False)
    async with open_runtime(settings, registry=registry()) as rt:
        backlog_id, version, tenant = await register(rt, slow("backlog"), None)
        urgent_doc = slow("urgent", **({"priority": 50} if how == "settings" else {}))
        urgent_id, urgent_version, _ = await register(rt, urgent_doc, None)
        # Queued before any worker runs: the whole backlog waits in the queue.
        backlog = [
            await rt.engine.start_execution(
                tenant_id=tenant, workflow_id=backlog_id, version=version, data={"n": n}
            )
            for n in range(BACKLOG)
        ]
        urgent = await rt.engine.start_execution(
            tenant_id=tenant,
            workflow_id=urgent_id,
            version=urgent_version,
            data={},
            priority=50 if how == "start" else None,
        )
        async with rt.engine.running():
            done = await rt.engine.wait(urgent, timeout=30)
            assert done.status is X.SUCCEEDED
            ended_before = [
                e
                for e in [await rt.executions.get_execution(i) for i in backlog]
                if e is not None and e.status.terminal
            ]
            # At most the one a worker had taken already (and none after it).
            assert len(ended_before) <= 1, len(ended_before)
            for execution_id in backlog:
                assert (await rt.engine.wait(execution_id, timeout=30)).status is X.SUCCEEDED

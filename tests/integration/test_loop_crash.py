"""Crash safety of loops and waits: workers SIGKILLed at random moments while parallel
loops of 200 items and waits for signals run (PostgreSQL + Redis, ``flowmill worker``
processes). Every execution completes; every iteration is one child execution that
succeeded once; no node run is recorded (or announced) as succeeded twice."""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from flowmill.runs import register
from flowmill.runtime import open_runtime
from tests.integration.distributed_support import Deployment, read_records, wait_all_done

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]
LOOPS, ITEMS, WAITS = 3, 200, 10

LOOP: dict[str, Any] = {
    "name": "crash loop",
    "nodes": [
        {"id": "t", "type": "trigger"},
        {
            "id": "each",
            "type": "loop",
            "config": {
                "count": ITEMS,
                "mode": "parallel",
                "concurrency": 20,
                "body": {
                    "nodes": [
                        {"id": "nap", "type": "delay", "config": {"ms": 20}},
                        {
                            "id": "sq",
                            "type": "transform",
                            "config": {"mapping": {"i": "{{index}}"}},
                        },
                    ],
                    "edges": [{"source": "nap", "target": "sq"}],
                },
            },
        },
        {
            "id": "n",
            "type": "transform",
            "config": {"mapping": {"last": f"{{{{input[{ITEMS - 1}].i}}}}"}},
        },
    ],
    "edges": [{"source": "t", "target": "each"}, {"source": "each", "target": "n"}],
}
WAIT: dict[str, Any] = {
    "name": "crash wait",
    "nodes": [
        {"id": "t", "type": "trigger"},
        {"id": "w", "type": "wait", "config": {"signal": "go"}},
    ],
    "edges": [{"source": "t", "target": "w"}],
}


@pytest.fixture
def deployment(
    postgres_url: str, redis_url: str, redis_prefix: str, tmp_path: Path
) -> Iterator[Deployment]:
    d = Deployment(postgres_url, redis_url, redis_prefix, tmp_path)
    d.env["FLOWMILL_CONTROL_POLL_S"] = "2"
    yield d
    d.stop_all()


async def _iterations(url: str) -> list[tuple[str, int, str, int]]:
    """(parent, iteration, status, rows) of every loop child."""
    conn = await asyncpg.connect(url, timeout=5)
    try:
        rows = await conn.fetch(
            "SELECT parent_execution_id, iteration, min(status), count(*) "
            "FROM workflow_executions WHERE parent_execution_id IS NOT NULL "
            "GROUP BY parent_execution_id, iteration"
        )
    finally:
        await conn.close()
    return [(str(r[0]), r[1], r[2], r[3]) for r in rows]


async def test_loop_crash_sigkill_mid_parallel_loops_and_waits(deployment: Deployment) -> None:
    rng = random.Random(int(os.environ.get("FLOWMILL_CRASH_SEED", "2468")))
    for _ in range(2):
        await deployment.start_worker()
    async with open_runtime(deployment.settings(), kind="api") as rt:
        loop_id, version, tenant = await register(rt, LOOP, None)
        wait_id, wait_version, _ = await register(rt, WAIT, None)
        loops = [
            await rt.engine.start_execution(
                tenant_id=tenant, workflow_id=loop_id, version=version, data={}
            )
            for _ in range(LOOPS)
        ]
        waits = [
            await rt.engine.start_execution(
                tenant_id=tenant, workflow_id=wait_id, version=wait_version, data={}
            )
            for _ in range(WAITS)
        ]
        killed_mid_work = 0
        for k in range(6):
            await asyncio.sleep(rng.uniform(0.3, 1.2))  # not a wait: the moment of the crash
            victim = rng.choice(deployment.alive())
            deployment.kill(victim)
            records = await read_records(deployment.database_url)
            if records.count("succeeded") < LOOPS * ITEMS:
                killed_mid_work += 1
            # Half the signals go out while a worker is down, half once it is back.
            for execution_id in waits[k * 2 : k * 2 + 1]:
                assert await rt.engine.signal(tenant, execution_id, "go", {"k": k})
            await deployment.start_worker()
            for execution_id in waits[k * 2 + 1 : k * 2 + 2]:
                assert await rt.engine.signal(tenant, execution_id, "go", {"k": k})
        assert killed_mid_work >= 3, f"the loops finished before most kills ({killed_mid_work})"
        total = LOOPS + WAITS + LOOPS * ITEMS
        records = await wait_all_done(deployment, total, timeout=240)
        for execution_id in loops:
            ex = await rt.engine.wait(execution_id, timeout=5)
            assert ex.output == {"last": ITEMS - 1}
        for execution_id in waits:
            ex = await rt.engine.wait(execution_id, timeout=5)
            assert ex.output is not None and "k" in ex.output
    assert records.statuses == {"succeeded": total}, records.statuses
    assert records.succeeded_twice == []
    assert records.completed_twice == []
    iterations = await _iterations(deployment.database_url)
    assert len(iterations) == LOOPS * ITEMS
    assert {(s, n) for _, _, s, n in iterations} == {("succeeded", 1)}

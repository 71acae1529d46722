"""SQLite's one writer thread between tenants: a flood's queued commits do not sit in
front of another tenant's single commit."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from flowmill.fairness import tenant_scope
from flowmill.store.database import connect
from flowmill.store.fair_executor import FairExecutor
from flowmill.testing import eventually


async def test_sqlite_writer_fairness_quiet_tenant_commits_after_one_of_a_flood(
    sqlite_url: str,
) -> None:
    db = connect(sqlite_url)
    order: list[str] = []
    hold = threading.Event()

    def blocking(_conn: Any) -> None:
        hold.wait(10)  # keeps the writer busy while the others queue up
        order.append("flood")

    def write(tenant: str) -> Any:
        def _fn(_conn: Any) -> None:
            order.append(tenant)

        return _fn

    async def as_tenant(tenant: str, fn: Any) -> None:
        with tenant_scope(tenant):
            await db.write(fn)

    try:
        first = asyncio.create_task(as_tenant("flood", blocking))
        floods = [asyncio.create_task(as_tenant("flood", write("flood"))) for _ in range(30)]
        await asyncio.sleep(0)  # not a wait: lets the flood's writes be submitted first
        quiet = asyncio.create_task(as_tenant("quiet", write("quiet")))
        await asyncio.sleep(0)  # not a wait: the quiet write is submitted behind them
        hold.set()
        await asyncio.gather(first, quiet, *floods)
        # One flood commit was running; the quiet one goes next, not 31st.
        assert order.index("quiet") <= 2, order
    finally:
        hold.set()
        await db.close()


async def test_sqlite_writer_fairness_executor_keeps_each_tenant_s_order() -> None:
    pool = FairExecutor(1)
    done: list[tuple[str, int]] = []
    gate = threading.Event()
    loop = asyncio.get_running_loop()
    try:
        blocker = loop.run_in_executor(pool, gate.wait, 10)
        calls = []
        for i in range(5):
            for tenant in ("a", "b"):
                with tenant_scope(tenant):
                    calls.append(loop.run_in_executor(pool, done.append, (tenant, i)))
        gate.set()
        await asyncio.gather(blocker, *calls)
        assert [i for t, i in done if t == "a"] == list(range(5))
        assert [i for t, i in done if t == "b"] == list(range(5))
        await eventually(lambda: pool.waiting == 0, 5, "nothing left waiting")
    finally:
        gate.set()
        pool.shutdown()


def test_sqlite_writer_fairness_executor_refuses_work_after_shutdown() -> None:
    pool = FairExecutor(1)
    assert pool.submit(lambda: 1).result(5) == 1
    pool.shutdown()
    with pytest.raises(RuntimeError):
        pool.submit(lambda: 2)

"""SQLite's one writer thread between tenants: a flood's queued commits do not sit in
front of another tenant's single commit."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from flowmill.domain.execution import Effects, StepKey
from flowmill.fairness import tenant_scope
from flowmill.ids import uuid7
from flowmill.store import migrate
from flowmill.store.database import connect
from flowmill.store.execution_store import SqliteExecutionStore
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


def test_sqlite_writer_fairness_executor_soonest_names_the_quietest_tenant() -> None:
    pool = FairExecutor(1)
    gate = threading.Event()
    try:
        with tenant_scope("flood"):
            calls = [pool.submit(gate.wait, 10) for _ in range(6)]
        with tenant_scope("busy"):
            calls.append(pool.submit(lambda: None))
        assert pool.soonest(["flood", "quiet"]) == "quiet"  # none waiting: next round
        assert pool.soonest(["flood", "busy"]) == "busy"  # one waiting, not five
        assert pool.soonest(["flood"]) == "flood"
    finally:
        gate.set()
        for call in calls:
            call.result(10)
        pool.shutdown()


@pytest.mark.parametrize("call", ["checkpoint", "load_step"])
async def test_sqlite_writer_fairness_quiet_tenant_s_step_skips_a_flood_s_batch(
    sqlite_url: str, call: str
) -> None:
    """A flood's batch of checkpoints (or step loads) waits in the flood's turn, behind
    its queued commits; a quiet tenant's one checkpoint arriving meanwhile goes alone in
    its own turn, not into the flood's next batch (it waited 20-50 ms there in
    bench/fairness.py)."""
    db = connect(sqlite_url)
    await migrate.upgrade(db)
    store = SqliteExecutionStore(db)
    done: list[str] = []
    hold = threading.Event()
    pool = db._readers if call == "load_step" else db._writer  # the queue the call waits in

    def flood_work(_conn: Any = None) -> None:
        hold.wait(10)
        time.sleep(0.02)  # not a wait: a slow commit, so the quiet step's end is seen between two
        done.append("flood")

    async def step(tenant: str) -> None:
        with tenant_scope(tenant):
            if call == "checkpoint":
                with pytest.raises(LookupError):  # no such execution: still a commit
                    await store.checkpoint(str(uuid7()), lambda *_: Effects("", ""))
            else:
                assert await store.load_step(StepKey(str(uuid7()), "n", 1), ()) is None
        done.append(f"{tenant} step")

    loop = asyncio.get_running_loop()
    try:
        with tenant_scope("flood"):
            queued = [loop.run_in_executor(pool, flood_work) for _ in range(20)]
        # The flood's steps: the first goes alone, the rest make up the batch that
        # waits behind it, in the flood's turn.
        flood_steps = [asyncio.create_task(step("flood")) for _ in range(3)]
        # The flood's commits waiting (one per thread holds it), its lone step, its batch.
        threads = pool._size
        await eventually(lambda: pool.waiting == 22 - threads, 5, "the flood's steps queued")
        quiet = asyncio.create_task(step("quiet"))
        for _ in range(5):
            await asyncio.sleep(0)  # not a wait: lets the quiet step reach its queue
        hold.set()
        await quiet
        # It was 20, after every queued commit; now after a round or so of the threads.
        assert done.count("flood") <= 3 * threads, done
        await asyncio.gather(*queued, *flood_steps)
    finally:
        hold.set()
        await db.close()

"""The in-process queue between tenants: a flood delays only its own tenant."""

from __future__ import annotations

import asyncio

from flowmill.engine.ports import Job, StepJob
from flowmill.fairness import FairShare
from flowmill.queue.local import LocalQueue
from flowmill.testkit.waiting import eventually


def _jobs(tenant: str, n: int, share: FairShare | None = None) -> list[Job]:
    out: list[Job] = []
    for i in range(n):
        priority = share.priority(tenant, 0) if share is not None else 0
        out.append(StepJob(f"{tenant}-{i}", "n", 1, tenant_id=tenant, priority=priority))
    return out


async def test_local_queue_fairness_reserve_consumer_serves_an_idle_tenant_at_once() -> None:
    q = LocalQueue(reserve=1)
    release = asyncio.Event()
    started: list[str] = []

    async def handle(job: Job) -> None:
        started.append(job.tenant_id)
        if job.tenant_id == "flood":
            await release.wait()

    await q.put(_jobs("flood", 50))
    consumer = asyncio.create_task(q.consume(handle, concurrency=4))
    await eventually(lambda: len(started) == 4, 5, "the four regular consumers busy")
    await q.put(_jobs("quiet", 1))
    # Every regular consumer holds a flood job that does not finish: the reserve
    # consumer, kept for tenants with nothing running, starts quiet's job at once.
    await eventually(lambda: "quiet" in started, 5, "quiet tenant's job started")
    assert started == ["flood"] * 4 + ["quiet"]
    release.set()
    await eventually(lambda: len(started) == 51, 5, "everything ran")
    await q.stop(1)
    await consumer


async def test_local_queue_fairness_quiet_tenant_goes_before_a_queued_flood() -> None:
    share = FairShare()
    q = LocalQueue(reserve=0)
    order: list[str] = []

    async def handle(job: Job) -> None:
        order.append(job.tenant_id)

    await q.put(_jobs("flood", 200, share))
    await q.put(_jobs("quiet", 2, share))
    consumer = asyncio.create_task(q.consume(handle, concurrency=1))
    await eventually(lambda: len(order) == 202, 5, "all jobs ran")
    await q.stop(1)
    await consumer
    # Both quiet jobs run among the first few, not after the 200 queued before them.
    assert order.index("quiet") < 3 and order[3:].count("quiet") <= 1, order[:10]


async def test_local_queue_fairness_reserve_never_takes_a_busy_tenants_job() -> None:
    q = LocalQueue(reserve=1)
    release = asyncio.Event()
    running: list[str] = []

    async def handle(job: Job) -> None:
        running.append(job.tenant_id)
        await release.wait()

    await q.put(_jobs("flood", 10))
    consumer = asyncio.create_task(q.consume(handle, concurrency=2))
    await eventually(lambda: len(running) == 2, 5, "two regular consumers busy")
    for _ in range(20):  # give the reserve consumer every chance to (wrongly) start one
        await asyncio.sleep(0)
    assert running == ["flood", "flood"]
    release.set()
    await eventually(lambda: len(running) == 10, 5, "everything ran")
    await q.stop(1)
    await consumer


async def test_local_queue_fairness_caps_one_tenants_running_jobs() -> None:
    q = LocalQueue(reserve=0, max_per_tenant=2)
    release = asyncio.Event()
    running: list[str] = []

    async def handle(job: Job) -> None:
        running.append(job.tenant_id)
        await release.wait()

    await q.put(_jobs("flood", 10))
    await q.put(_jobs("other", 1))
    consumer = asyncio.create_task(q.consume(handle, concurrency=5))
    await eventually(lambda: len(running) == 3, 5, "two flood jobs and the other one")
    for _ in range(20):  # nothing more starts while flood is at its cap
        await asyncio.sleep(0)
    assert sorted(running) == ["flood", "flood", "other"]
    release.set()
    await eventually(lambda: len(running) == 11, 5, "everything ran")
    await q.stop(1)
    await consumer

"""The raw BullMQ floor: what the Python ``bullmq`` package alone costs on this Redis.

The reference for the distributed engine (target: a 40-step durable chain within 2x
this floor and 80 ms). Measures, on the same Redis:

- chain: N jobs, each job's handler adds the next; the time from adding the first to
  the start of the N-th handler, median over many runs;
- throughput: no-op jobs drained from a pre-filled queue by one worker at a given
  concurrency;
- the same chain through Flowmill's ``BullMQQueue`` (adapter overhead, no database).

Run: ``.venv/bin/python bench/bullmq_floor.py`` (``FLOWMILL_BENCH_REDIS_URL`` or
``--url``; ``--runs``, ``--chain``). The functions are importable by other benches.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import redis.asyncio as aioredis
from bullmq import Queue, Worker

from flowmill.engine.ports import Job, StepJob
from flowmill.queue.bullmq import BullMQQueue
from flowmill.queue.bullmq_options import BullMQOptions
from flowmill.queue.bullmq_redis import make_client

DEFAULT_URL = os.environ.get("FLOWMILL_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")


@dataclass(frozen=True)
class Stats:
    """Timings of repeated runs, in milliseconds."""

    runs: int
    median_ms: float
    p90_ms: float
    min_ms: float

    @classmethod
    def of(cls, samples_s: list[float]) -> Stats:
        ms = sorted(s * 1000 for s in samples_s)
        p90 = ms[min(len(ms) - 1, int(len(ms) * 0.9))]
        return cls(len(ms), statistics.median(ms), p90, ms[0])


async def _drop_prefix(url: str, prefix: str) -> None:
    client = aioredis.Redis.from_url(url)
    try:
        keys = [k async for k in client.scan_iter(match=f"{prefix}:*", count=1000)]
        for i in range(0, len(keys), 500):
            await client.unlink(*keys[i : i + 500])
    finally:
        await client.aclose()


def _prefix() -> str:
    return f"fmbench-{uuid.uuid4().hex[:10]}"


async def _run_chains(
    start: Callable[[int], Awaitable[None]],
    done: dict[int, asyncio.Event],
    runs: int,
    warmup: int,
) -> Stats:
    samples = []
    for run in range(warmup + runs):
        done[run] = asyncio.Event()
        t0 = time.perf_counter()
        await start(run)
        await asyncio.wait_for(done[run].wait(), 30)
        if run >= warmup:
            samples.append(time.perf_counter() - t0)
    return Stats.of(samples)


async def floor_chain(
    url: str = DEFAULT_URL,
    *,
    length: int = 40,
    runs: int = 30,
    warmup: int = 3,
    priority: int = 0,
    concurrency: int = 1,
) -> Stats:
    """Chain of ``length`` jobs with the bare bullmq package (default job options but
    ``priority``), the next job added by the handler of the previous one."""
    prefix = _prefix()
    opts: dict[str, Any] = {"priority": priority} if priority else {}
    queue = Queue("chain", {"connection": make_client(url), "prefix": prefix})
    done: dict[int, asyncio.Event] = {}

    async def process(job: Any, token: str) -> None:
        run, n = job.data["run"], job.data["n"]
        if n == length:
            done[run].set()
        else:
            await queue.add("c", {"run": run, "n": n + 1}, opts)

    worker = Worker(
        "chain",
        process,
        {
            "connection": make_client(url),
            "prefix": prefix,
            "autorun": False,
            "concurrency": concurrency,
        },
    )
    runner = asyncio.ensure_future(worker.run())
    try:
        return await _run_chains(
            lambda run: queue.add("c", {"run": run, "n": 1}, opts), done, runs, warmup
        )
    finally:
        await worker.close()
        await runner
        await queue.close()
        await _drop_prefix(url, prefix)


async def floor_throughput(
    url: str = DEFAULT_URL, *, jobs: int = 3000, concurrency: int = 16
) -> float:
    """No-op jobs per second drained by one bare bullmq worker from a full queue."""
    prefix = _prefix()
    queue = Queue("tp", {"connection": make_client(url), "prefix": prefix})
    for i in range(0, jobs, 500):
        await queue.addBulk([{"name": "n", "data": {"i": j}} for j in range(i, min(jobs, i + 500))])
    left = jobs
    finished = asyncio.Event()

    async def process(job: Any, token: str) -> None:
        nonlocal left
        left -= 1
        if left == 0:
            finished.set()

    worker = Worker(
        "tp",
        process,
        {
            "connection": make_client(url),
            "prefix": prefix,
            "autorun": False,
            "concurrency": concurrency,
        },
    )
    t0 = time.perf_counter()
    runner = asyncio.ensure_future(worker.run())
    try:
        await asyncio.wait_for(finished.wait(), 120)
        return jobs / (time.perf_counter() - t0)
    finally:
        await worker.close()
        await runner
        await queue.close()
        await _drop_prefix(url, prefix)


async def adapter_chain(
    url: str = DEFAULT_URL, *, length: int = 40, runs: int = 30, warmup: int = 3
) -> Stats:
    """The same chain through Flowmill's ``BullMQQueue`` (step jobs, no database)."""
    prefix = _prefix()
    queue = BullMQQueue(url, BullMQOptions(prefix=prefix))
    done: dict[int, asyncio.Event] = {}

    async def handler(job: Job) -> None:
        assert isinstance(job, StepJob)
        if job.attempt == length:
            done[int(job.execution_id)].set()
        else:
            await queue.put([StepJob(job.execution_id, "n", job.attempt + 1)])

    consumer = asyncio.ensure_future(queue.consume(handler, concurrency=16))
    try:
        return await _run_chains(
            lambda run: queue.put([StepJob(str(run), "n", 1)]), done, runs, warmup
        )
    finally:
        await queue.stop(5)
        await consumer
        await queue.close()
        await _drop_prefix(url, prefix)


async def adapter_throughput(
    url: str = DEFAULT_URL, *, jobs: int = 3000, concurrency: int = 16
) -> float:
    """No-op step jobs per second drained by one ``BullMQQueue`` consumer."""
    prefix = _prefix()
    queue = BullMQQueue(url, BullMQOptions(prefix=prefix))
    for i in range(0, jobs, 500):
        await queue.put([StepJob("tp", "n", j + 1) for j in range(i, min(jobs, i + 500))])
    left = jobs
    finished = asyncio.Event()

    async def handler(job: Job) -> None:
        nonlocal left
        left -= 1
        if left == 0:
            finished.set()

    t0 = time.perf_counter()
    consumer = asyncio.ensure_future(queue.consume(handler, concurrency=concurrency))
    try:
        await asyncio.wait_for(finished.wait(), 120)
        return jobs / (time.perf_counter() - t0)
    finally:
        await queue.stop(5)
        await consumer
        await queue.close()
        await _drop_prefix(url, prefix)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=DEFAULT_URL)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--chain", type=int, default=40)
    parser.add_argument("--jobs", type=int, default=3000)
    args = parser.parse_args()

    print(f"Redis {args.url}; chain of {args.chain} jobs, {args.runs} runs each\n")
    print(f"{'chain':<52} {'median ms':>10} {'p90 ms':>8} {'min ms':>8} {'ms/hop':>7}")
    url, n = args.url, args.chain
    kw: dict[str, Any] = {"length": n, "runs": args.runs}
    chains: list[tuple[str, Callable[[], Awaitable[Stats]]]] = [
        ("bullmq floor (plain jobs, concurrency 1)", partial(floor_chain, url, **kw)),
        (
            "bullmq floor (prioritized jobs, concurrency 1)",
            partial(floor_chain, url, priority=1, **kw),
        ),
        (
            "bullmq floor (plain jobs, concurrency 16)",
            partial(floor_chain, url, concurrency=16, **kw),
        ),
        ("flowmill BullMQQueue (step jobs, concurrency 16)", partial(adapter_chain, url, **kw)),
    ]
    for name, measure in chains:
        s = await measure()
        hop = s.median_ms / n
        print(f"{name:<52} {s.median_ms:>10.1f} {s.p90_ms:>8.1f} {s.min_ms:>8.1f} {hop:>7.2f}")

    print(f"\n{'throughput, no-op jobs from a full queue':<52} {'jobs/s':>10}")
    for concurrency in (1, 16, 64):
        rate = await floor_throughput(args.url, jobs=args.jobs, concurrency=concurrency)
        print(f"{f'bullmq floor, concurrency {concurrency}':<52} {rate:>10.0f}")
    for concurrency in (1, 16, 64):
        rate = await adapter_throughput(args.url, jobs=args.jobs, concurrency=concurrency)
        print(f"{f'flowmill BullMQQueue, concurrency {concurrency}':<52} {rate:>10.0f}")


if __name__ == "__main__":
    asyncio.run(main())

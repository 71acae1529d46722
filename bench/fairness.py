"""Noisy neighbours: one tenant floods, another's short execution must not notice much.

Tenant A starts thousands of executions whose code node spins the CPU in the
JavaScript sandbox; tenant B runs one short execution (trigger → code node → end) now
and then. B's latency while A floods is printed beside B's latency on the idle system,
measured in the same run: the target is at most 2x.

    .venv/bin/python bench/fairness.py [--flood 5000] [--probes 15] [--busy-ms 20]
        [--queued-first]
    .venv/bin/python bench/fairness.py --postgres postgresql://... --redis redis://...

With ``--redis`` the flood and the probes go through BullMQ to two ``flowmill worker``
processes (the distributed layout); without, everything runs in this process on the
embedded default (SQLite, in-process queue).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from _util import median_ms, p95_ms, print_table
from bullmq_floor import _drop_prefix as drop_prefix
from distributed import temp_database
from flowmill.config import Settings
from flowmill.domain.states import ExecutionStatus
from flowmill.runs import register
from flowmill.runtime import Runtime, open_runtime

ROOT = Path(__file__).resolve().parents[1]


def busy(ms: int) -> dict[str, Any]:
    code = f"const t = Date.now(); while (Date.now() - t < {ms}) {{}} return input.data;"
    return {
        "name": "busy",
        "nodes": [
            {"id": "t", "type": "trigger"},
            {"id": "spin", "type": "function", "config": {"code": code}},
        ],
        "edges": [{"source": "t", "target": "spin"}],
    }


SHORT = {
    "name": "short",
    "nodes": [
        {"id": "t", "type": "trigger"},
        {"id": "code", "type": "function", "config": {"code": "return {ok: input.data.i};"}},
    ],
    "edges": [{"source": "t", "target": "code"}],
}


async def probe(rt: Runtime, wf: tuple[str, int, str], n: int, pause_s: float) -> list[float]:
    """B's latency, start to end, ``n`` times."""
    wf_id, version, tenant = wf
    samples = []
    for i in range(n):
        t0 = time.perf_counter()
        eid = await rt.engine.start_execution(
            tenant_id=tenant, workflow_id=wf_id, version=version, data={"i": i}
        )
        ex = await rt.engine.wait(eid, timeout=300)
        if ex.status is not ExecutionStatus.SUCCEEDED:
            raise RuntimeError(f"probe ended {ex.status}: {ex.error}")
        samples.append(time.perf_counter() - t0)
        await asyncio.sleep(pause_s)
    return samples


async def flood(rt: Runtime, wf: tuple[str, int, str], n: int) -> None:
    wf_id, version, tenant = wf
    sem = asyncio.Semaphore(int(os.environ.get("FLOOD_CONCURRENCY", "64")))

    async def one(i: int) -> None:
        async with sem:
            await rt.engine.start_execution(
                tenant_id=tenant, workflow_id=wf_id, version=version, data={"i": i}
            )

    await asyncio.gather(*(one(i) for i in range(n)))


async def scenario(settings: Settings, args: argparse.Namespace) -> dict[str, list[float]]:
    async with contextlib.AsyncExitStack() as stack:
        rt = await stack.enter_async_context(open_runtime(settings))
        if not args.redis:  # embedded: this process is the worker
            await stack.enter_async_context(rt.engine.running())
        noisy = await register(rt, {**busy(args.busy_ms), "tenant_id": "tenant-a"}, None)
        quiet = await register(rt, {**SHORT, "tenant_id": "tenant-b"}, None)
        await probe(rt, quiet, 3, 0)  # warm up
        idle = await probe(rt, quiet, args.probes, 0.05)
        flooding = asyncio.create_task(flood(rt, noisy, args.flood))
        if args.queued_first:
            await flooding  # every start of A's done: a backlog, no starts arriving
        else:
            await asyncio.sleep(1.0)  # a backlog builds up while A's starts pour in
        loaded = await probe(rt, quiet, args.probes, 0.2)
        await flooding
        return {"idle": idle, "loaded": loaded}


def workers(env: dict[str, str], count: int, home: Path) -> list[subprocess.Popen[bytes]]:
    out = []
    for i in range(count):
        log = open(home / f"worker-{i}.log", "wb")  # noqa: SIM115 - closed with the process
        out.append(
            subprocess.Popen(
                [sys.executable, "-m", "flowmill", "worker"], env=env, stdout=log, stderr=log
            )
        )
    return out


async def main(args: argparse.Namespace) -> None:
    async with contextlib.AsyncExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory())
        home = Path(tmp)
        if args.redis:
            # A database of its own: A's backlog is still queued when the probes end,
            # and in a shared database the next run's workers would sweep it up and run
            # it (idle latency went 11 -> 115 ms after two runs on `postgres`).
            database = await stack.enter_async_context(temp_database(args.postgres))
            env = {
                **os.environ,
                "FLOWMILL_DATABASE_URL": database,
                "FLOWMILL_REDIS_URL": args.redis,
                "FLOWMILL_QUEUE_PREFIX": f"fairbench-{uuid.uuid4().hex[:8]}",
                "FLOWMILL_HOME": str(home),
                "FLOWMILL_LOG_LEVEL": "warning",
            }
            settings = Settings(
                database_url=database,
                redis_url=args.redis,
                queue_prefix=env["FLOWMILL_QUEUE_PREFIX"],
                home=home,
                log_level="warning",
            )
            procs = workers(env, 2, home)
            try:
                result = await scenario(settings, args)
            finally:
                for p in procs:
                    p.send_signal(signal.SIGTERM)
                for p in procs:
                    p.wait(30)
                # A's backlog is left in Redis, thousands of jobs a run
                await drop_prefix(args.redis, env["FLOWMILL_QUEUE_PREFIX"])
            layout = "distributed: PostgreSQL + BullMQ, 2 workers"
        else:
            settings = Settings(database_url=f"sqlite:///{tmp}/bench.db", log_level="warning")
            result = await scenario(settings, args)
            layout = "embedded: SQLite, in-process queue"

    idle, loaded = result["idle"], result["loaded"]
    ratio = statistics.median(loaded) / statistics.median(idle)
    print_table(
        f"Noisy neighbour ({layout}): tenant A floods {args.flood} executions spinning "
        f"{args.busy_ms} ms each in the JS sandbox; tenant B's trigger -> code node, "
        f"{args.probes} probes "
        + ("once A's starts were all made" if args.queued_first else "while A's starts arrive")
        + f"; load average {os.getloadavg()[0]:.1f}",
        ["tenant B", "median (ms)", "p95 (ms)", "ratio to idle", "target"],
        [
            ["idle system", median_ms(idle), p95_ms(idle), "1.0x", ""],
            [
                "while A floods",
                median_ms(loaded),
                p95_ms(loaded),
                f"{ratio:.1f}x",
                "<= 2x " + ("met" if ratio <= 2 else "MISSED"),
            ],
        ],
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flood", type=int, default=5000, help="executions tenant A starts")
    parser.add_argument("--probes", type=int, default=15, help="tenant B's measured runs")
    parser.add_argument("--busy-ms", type=int, default=20, help="CPU each A code node spins")
    parser.add_argument(
        "--queued-first",
        action="store_true",
        help="probe once A's starts are all made (its backlog queued), not while they arrive",
    )
    parser.add_argument("--postgres", default="", help="PostgreSQL URL (distributed layout)")
    parser.add_argument("--redis", default="", help="Redis URL: run on BullMQ with 2 workers")
    asyncio.run(main(parser.parse_args()))

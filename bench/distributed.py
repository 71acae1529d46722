"""Distributed-mode benchmark (PostgreSQL + Redis/BullMQ), beside the raw BullMQ floor.

Measured in one run, on the same Redis and PostgreSQL:

- floor: a bare BullMQ chain of 40 jobs, each handler adding the next
  (``bullmq_floor.floor_chain``), and bare BullMQ no-op throughput of one worker
  process (``bullmq_floor.floor_throughput``);
- latency: a durable 40-step chain (``trigger`` then 40 ``noop`` nodes), a PostgreSQL
  commit per step, Flowmill's worker in this process; from ``start_execution`` to the
  terminal status, median over ``--runs`` after 3 warm-up runs. Twice: as deployed (the
  runner runs the next step of a chain inline, so one BullMQ job per execution) and
  with inline off (every step a BullMQ job, like the floor);
- throughput: 2 ``flowmill worker`` processes draining ``--executions`` executions of
  ``trigger -> noop -> noop`` started from this process (no worker here), for each
  ``--concurrency``: node runs succeeded / (last node ``completed_at`` - first
  execution ``created_at``), from the database's own timestamps; with the workers
  running while 8 (``--producers``) and then 32 concurrent callers start the
  executions, and once with the executions all started first (the workers' drain
  rate alone).

Each run uses a fresh database ``flowmill_bench_<random>`` (dropped at the end) and
fresh Redis key prefixes (deleted at the end); worker processes get SIGTERM, then
SIGKILL. About 2 minutes with the defaults on 2 CPUs.

    ./dev bench distributed    or
    .venv/bin/python bench/distributed.py [--runs 25] [--executions 1000]
        [--concurrency 16,32,64] [--processes 2] [--producers 8]
        [--pg postgresql://postgres@127.0.0.1:5432/postgres]
        [--redis redis://127.0.0.1:6379/0]

(``FLOWMILL_BENCH_PG_URL`` and ``FLOWMILL_BENCH_REDIS_URL`` set the defaults.)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import redis.asyncio as aioredis

from _util import median_ms, print_table
from bullmq_floor import Stats, _drop_prefix, floor_chain, floor_throughput
from engine import time_runs
from flowmill.config import Settings
from flowmill.constants import NODE_QUEUE
from flowmill.domain.states import ExecutionStatus
from flowmill.logs import configure
from flowmill.runs import register
from flowmill.runtime import open_runtime

DEFAULT_PG = os.environ.get(
    "FLOWMILL_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
DEFAULT_REDIS = os.environ.get("FLOWMILL_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
FLOWMILL_BIN = Path(sys.executable).with_name("flowmill")
TERMINAL = tuple(s.value for s in ExecutionStatus if s.terminal)

# Published figures for 40 light sequential tasks (their hardware, not this machine).
REFERENCES = [("Hatchet", 1200.0), ("Temporal", 3000.0), ("Prefect", 4900.0)]


# --- workflows ------------------------------------------------------------------------------


def noop_chain(n: int) -> dict[str, Any]:
    """``trigger`` then ``n`` ``noop`` nodes in a line."""
    nodes: list[dict[str, Any]] = [{"id": "t", "type": "trigger"}]
    edges = []
    prev = "t"
    for i in range(n):
        nodes.append({"id": f"s{i}", "type": "noop"})
        edges.append({"source": prev, "target": f"s{i}"})
        prev = f"s{i}"
    return {"name": f"noop-chain-{n}-{uuid.uuid4().hex[:6]}", "nodes": nodes, "edges": edges}


# --- PostgreSQL -----------------------------------------------------------------------------


def with_database(url: str, name: str) -> str:
    """``url`` pointing at database ``name``."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


def _asyncpg_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


@contextlib.asynccontextmanager
async def temp_database(admin_url: str) -> AsyncIterator[str]:
    """A fresh database ``flowmill_bench_<random>``, dropped on the way out."""
    name = f"flowmill_bench_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(_asyncpg_dsn(admin_url))
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    try:
        yield with_database(admin_url, name)
    finally:
        conn = await asyncpg.connect(_asyncpg_dsn(admin_url))
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


async def server_settings(url: str) -> dict[str, str]:
    """The durability settings in effect on the server."""
    conn = await asyncpg.connect(_asyncpg_dsn(url))
    try:
        out = {}
        for name in ("server_version", "fsync", "synchronous_commit", "wal_sync_method"):
            out[name] = await conn.fetchval(f"SHOW {name}")
        return out
    finally:
        await conn.close()


def settings_for(db_url: str, redis_url: str, prefix: str, **kw: Any) -> Settings:
    """Settings of a distributed deployment on this database, Redis and key prefix."""
    return Settings(
        database_url=db_url,
        redis_url=redis_url,
        queue_prefix=prefix,
        sandbox_enabled=False,  # noop/trigger need no sandbox
        log_level="warning",
        **kw,
    )


# --- latency: one durable chain at a time -------------------------------------------------


@dataclass
class ChainResult:
    """Timings of one chain scenario and the BullMQ step jobs it took."""

    samples: list[float]
    jobs_per_run: float


async def completed_step_jobs(redis_url: str, prefix: str) -> int:
    """Step jobs BullMQ holds as completed under ``prefix`` (all of them, when the
    retention is large enough)."""
    client = aioredis.Redis.from_url(redis_url)
    try:
        return int(await client.zcard(f"{prefix}:{NODE_QUEUE}:completed"))
    finally:
        await client.aclose()


async def chain_latency(
    db_url: str,
    redis_url: str,
    prefix: str,
    *,
    length: int = 40,
    runs: int = 25,
    warmup: int = 3,
    inline: bool = True,
) -> ChainResult:
    """Seconds from ``start_execution`` to the terminal status of a ``length``-step
    noop chain, worker in this process, every step checkpointed to PostgreSQL.

    ``inline`` is the runner's default: a worker runs the next ready step of a chain
    itself (up to ``RunnerOptions.inline_limit``) instead of a queue round trip, so only
    the first step is a BullMQ job. Off, every step is a BullMQ job.
    """
    settings = settings_for(db_url, redis_url, prefix, queue_keep_completed=1_000_000)
    async with open_runtime(settings, kind="worker") as rt:
        rt.engine.runner.options = replace(rt.engine.runner.options, inline=inline)
        async with rt.engine.running():
            samples = await time_runs(rt, noop_chain(length), runs, warmup)
    jobs = await completed_step_jobs(redis_url, prefix)
    return ChainResult(samples, jobs / (runs + warmup))


# --- throughput: worker processes -----------------------------------------------------------


@dataclass
class Workers:
    """``flowmill worker`` subprocesses and their log files."""

    procs: list[subprocess.Popen[bytes]]
    logs: list[Path]

    def tail(self, lines: int = 20) -> str:
        out = []
        for p, log in zip(self.procs, self.logs, strict=True):
            text = log.read_text(errors="replace").splitlines()[-lines:]
            out.append(f"--- worker pid {p.pid} (exit {p.poll()}) ---\n" + "\n".join(text))
        return "\n".join(out)


def start_workers(
    n: int, concurrency: int, db_url: str, redis_url: str, prefix: str, log_dir: Path
) -> Workers:
    """Start ``n`` ``flowmill worker`` processes on this database and queue prefix."""
    env = {
        **os.environ,
        "FLOWMILL_DATABASE_URL": db_url,
        "FLOWMILL_REDIS_URL": redis_url,
        "FLOWMILL_QUEUE_PREFIX": prefix,
        "FLOWMILL_LOG_LEVEL": "warning",
        "FLOWMILL_SANDBOX_ENABLED": "false",
        "FLOWMILL_QUEUE_KEEP_COMPLETED": "1000000",  # to count the jobs afterwards
    }
    workers = Workers([], [])
    try:
        for i in range(n):
            log = log_dir / f"worker-c{concurrency}-{i}.log"
            with log.open("wb") as fh:
                proc = subprocess.Popen(
                    [str(FLOWMILL_BIN), "worker", "--concurrency", str(concurrency)],
                    env=env,
                    stdout=fh,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            workers.procs.append(proc)
            workers.logs.append(log)
    except BaseException:
        stop_workers(workers)
        raise
    return workers


def stop_workers(workers: Workers, grace_s: float = 10.0) -> None:
    """SIGTERM every worker, then SIGKILL whichever is still there after ``grace_s``."""
    for p in workers.procs:
        if p.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                p.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for p in workers.procs:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                p.kill()
            p.wait()


async def _wait_workers_ready(
    conn: asyncpg.Connection, workers: Workers, timeout_s: float = 60
) -> None:
    """Until every worker process has registered itself in ``workers``."""
    pids = [p.pid for p in workers.procs]
    deadline = time.monotonic() + timeout_s
    while True:
        dead = [p for p in workers.procs if p.poll() is not None]
        if dead:
            raise RuntimeError(f"a worker exited early:\n{workers.tail()}")
        ready = await conn.fetchval("SELECT count(*) FROM workers WHERE pid = ANY($1::int[])", pids)
        if ready == len(pids):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"workers not ready after {timeout_s} s:\n{workers.tail()}")
        await asyncio.sleep(0.1)


@dataclass
class Throughput:
    """One batch of executions drained by the worker processes."""

    concurrency: int
    prefill: bool  # all executions started before the workers were
    producers: int  # concurrent callers starting executions
    executions: int
    succeeded: int
    node_runs: int  # node runs succeeded, trigger runs (written at start) included
    worker_runs: int  # node runs succeeded that workers ran (all but the triggers)
    jobs: int  # step jobs BullMQ completed
    window_s: float  # last node completed_at - first execution created_at
    drain_s: float  # last node completed_at - first worker-run node started_at
    produce_s: float  # time this process took to start all executions

    @property
    def per_s(self) -> float:
        """Node runs per second as the target defines it (whole window)."""
        return self.node_runs / self.window_s

    @property
    def drain_per_s(self) -> float:
        """Node runs per second done by the workers, while they were at it."""
        return self.worker_runs / self.drain_s

    @property
    def starts_per_s(self) -> float:
        return self.executions / self.produce_s


_BATCH_STATS = """
SELECT
  (SELECT count(*) FROM workflow_executions
    WHERE workflow_id = ANY($1::uuid[]) AND status = 'succeeded') AS succeeded,
  (SELECT min(created_at) FROM workflow_executions
    WHERE workflow_id = ANY($1::uuid[])) AS first_created,
  count(*) FILTER (WHERE n.status = 'succeeded') AS node_runs,
  count(*) FILTER (WHERE n.status = 'succeeded' AND n.node_id <> 't') AS worker_runs,
  min(n.started_at) FILTER (WHERE n.node_id <> 't') AS first_started,
  max(n.completed_at) AS last_completed
FROM node_executions n JOIN workflow_executions e ON e.id = n.execution_id
WHERE e.workflow_id = ANY($1::uuid[])
"""


async def throughput(
    db_url: str,
    redis_url: str,
    prefix: str,
    log_dir: Path,
    *,
    concurrency: int,
    executions: int = 1000,
    processes: int = 2,
    producers: int = 8,
    tenants: int = 1,
    prefill: bool = False,
    timeout_s: float = 120,
) -> Throughput:
    """Start ``executions`` of ``trigger -> noop -> noop`` from this process (no worker
    here; ``producers`` concurrent callers) and let ``processes`` worker processes drain
    them; rates from the database's timestamps.

    Args:
        prefill: Start every execution before starting the workers (their jobs wait in
            Redis), so the drain rate is the workers' alone; otherwise the workers run
            while this process starts executions.
        tenants: Spread the executions round-robin over this many tenants.
    """
    settings = settings_for(
        db_url, redis_url, prefix, db_pool_size=producers + 2, queue_keep_completed=1_000_000
    )
    conn = await asyncpg.connect(_asyncpg_dsn(db_url))
    workers: Workers | None = None
    try:
        async with open_runtime(settings, kind="embedded") as rt:
            wfs = [await register(rt, noop_chain(2), f"bench-{k}") for k in range(tenants)]
            wf_ids = [wf_id for wf_id, _, _ in wfs]
            if not prefill:
                workers = start_workers(processes, concurrency, db_url, redis_url, prefix, log_dir)
                await _wait_workers_ready(conn, workers)

            todo = iter(range(executions))

            async def produce() -> None:
                for i in todo:
                    wf_id, version, tenant = wfs[i % tenants]
                    await rt.engine.start_execution(
                        tenant_id=tenant, workflow_id=wf_id, version=version, data={"i": i}
                    )

            t0 = time.perf_counter()
            await asyncio.gather(*(produce() for _ in range(producers)))
            produce_s = time.perf_counter() - t0
            if workers is None:
                workers = start_workers(processes, concurrency, db_url, redis_url, prefix, log_dir)

            deadline = time.monotonic() + timeout_s
            while True:
                finished = await conn.fetchval(
                    "SELECT count(*) FROM workflow_executions "
                    "WHERE workflow_id = ANY($1::uuid[]) AND status = ANY($2::text[])",
                    wf_ids,
                    list(TERMINAL),
                )
                if finished >= executions:
                    break
                if any(p.poll() is not None for p in workers.procs):
                    raise RuntimeError(f"a worker died:\n{workers.tail()}")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{finished}/{executions} finished after {timeout_s} s")
                await asyncio.sleep(0.05)

        row = await conn.fetchrow(_BATCH_STATS, wf_ids)
        return Throughput(
            concurrency=concurrency,
            prefill=prefill,
            producers=producers,
            executions=executions,
            succeeded=row["succeeded"],
            node_runs=row["node_runs"],
            worker_runs=row["worker_runs"],
            jobs=await completed_step_jobs(redis_url, prefix),
            window_s=(row["last_completed"] - row["first_created"]).total_seconds(),
            drain_s=(row["last_completed"] - row["first_started"]).total_seconds(),
            produce_s=produce_s,
        )
    finally:
        if workers is not None:
            stop_workers(workers)
        await conn.close()


# --- report ---------------------------------------------------------------------------------


def _cpu_times() -> tuple[int, int] | None:
    """(busy, total) jiffies of all CPUs, from /proc/stat (None off Linux)."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields) - idle, sum(fields)


async def cpu_busy(seconds: float = 1.0) -> float | None:
    """Share of all CPUs busy over ``seconds`` (what else runs on the machine)."""
    before = _cpu_times()
    await asyncio.sleep(seconds)
    after = _cpu_times()
    if before is None or after is None or after[1] == before[1]:
        return None
    return (after[0] - before[0]) / (after[1] - before[1])


def _mark(ok: bool) -> str:
    return "met" if ok else "MISSED"


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.0%}"


async def main(args: argparse.Namespace) -> None:
    configure("warning")
    os.environ.setdefault("COLUMNS", "150")  # rich: wide tables even into a pipe
    base = f"fmbench-{uuid.uuid4().hex[:10]}"
    prefixes: list[str] = []
    log_dir = Path(tempfile.mkdtemp(prefix="flowmill-bench-"))
    concurrencies = [int(c) for c in args.concurrency.split(",") if c]
    n, runs = args.chain, args.runs
    idle_busy = await cpu_busy(1.0)  # before we start anything
    cpu0 = _cpu_times()
    t_start = time.perf_counter()
    try:
        floor = await floor_chain(args.redis, length=n, runs=runs)
        floor_prio = await floor_chain(args.redis, length=n, runs=runs, priority=1)
        floor_tp = {
            c: await floor_throughput(args.redis, jobs=args.executions * 2, concurrency=c)
            for c in concurrencies
        }
        async with temp_database(args.pg) as db_url:
            pg = await server_settings(db_url)
            chains = {}
            for inline in (True, False):
                prefixes.append(f"{base}-chain-{'inline' if inline else 'queued'}")
                chains[inline] = await chain_latency(
                    db_url, args.redis, prefixes[-1], length=n, runs=runs, inline=inline
                )
            results = []
            for c in concurrencies:
                # Starts with the workers running, from few callers and from many (a
                # start waits for its commit, so few callers bound the start rate);
                # then the workers alone, on a queue filled first.
                for prefill, producers in ((False, args.producers), (False, 32), (True, 8)):
                    tag = "-prefill" if prefill else f"-p{producers}"
                    prefixes.append(f"{base}-c{c}{tag}")
                    results.append(
                        await throughput(
                            db_url,
                            args.redis,
                            prefixes[-1],
                            log_dir,
                            concurrency=c,
                            executions=args.executions,
                            processes=args.processes,
                            producers=producers,
                            prefill=prefill,
                        )
                    )
    finally:
        for prefix in prefixes:
            await _drop_prefix(args.redis, prefix)
        shutil.rmtree(log_dir, ignore_errors=True)
    total_s = time.perf_counter() - t_start
    cpu1 = _cpu_times()
    bench_busy = (
        (cpu1[0] - cpu0[0]) / (cpu1[1] - cpu0[1]) if cpu0 and cpu1 and cpu1[1] > cpu0[1] else None
    )

    print(
        f"PostgreSQL {pg['server_version']}: SHOW fsync = {pg['fsync']}, "
        f"SHOW synchronous_commit = {pg['synchronous_commit']} "
        f"(wal_sync_method {pg['wal_sync_method']}); Redis {args.redis}\n"
        f"{os.cpu_count()} CPUs, busy {_pct(idle_busy)} in the second before the bench "
        f"(other load), {_pct(bench_busy)} during it; bench took {total_s:.0f} s"
    )
    rows: list[list[object]] = []
    for label, st in (
        (f"raw floor: bare BullMQ chain, {n} plain jobs", floor),
        (f"bare BullMQ chain, {n} prioritized jobs", floor_prio),
    ):
        ratio = st.median_ms / floor.median_ms
        rows.append([label, st.median_ms, st.p90_ms, st.median_ms / n, n, f"{ratio:.2f}x", "", ""])
    for inline, label in ((True, "default, next step inline"), (False, "inline off")):
        r = chains[inline]
        ours = median_ms(r.samples)
        ratio = ours / floor.median_ms
        rows.append(
            [
                f"flowmill: trigger + {n} noop ({label})",
                ours,
                Stats.of(r.samples).p90_ms,
                ours / n,
                f"{r.jobs_per_run:.1f}",
                f"{ratio:.2f}x",
                "<= 80 ms, <= 2x",
                f"{_mark(ours <= 80)}, {_mark(ratio <= 2)}",
            ]
        )
    rows += [
        [f"reference: {name} (published, other hardware)", ms, "", ms / 40, "", "", "", ""]
        for name, ms in REFERENCES
    ]
    print_table(
        f"{n}-step sequential chain, durable (a PostgreSQL commit per step), median of "
        f"{runs} runs after 3 warm-up; Flowmill's worker in this process",
        [
            "scenario",
            "median ms",
            "p90 ms",
            "ms/step",
            "BullMQ jobs/run",
            "/ floor",
            "target",
            "",
        ],
        rows,
    )
    print_table(
        f"Throughput: {args.processes} `flowmill worker` processes, {args.executions} "
        "executions of trigger -> noop -> noop started from this process",
        [
            "conc./proc",
            "callers",
            "workers during starts",
            "node runs/s",
            "workers' drain runs/s",
            "window s",
            "starts/s",
            "BullMQ jobs/exec",
            "succeeded",
            "bare BullMQ jobs/s",
            "target >= 1,000/s",
        ],
        [
            [
                r.concurrency,
                r.producers,
                "no (prefilled)" if r.prefill else "yes",
                f"{r.per_s:.0f}",
                f"{r.drain_per_s:.0f}",
                r.window_s,
                f"{r.starts_per_s:.0f}",
                f"{r.jobs / r.executions:.2f}",
                f"{r.succeeded}/{r.executions}",
                f"{floor_tp[r.concurrency]:.0f}",
                _mark(r.per_s >= 1000),
            ]
            for r in results
        ],
    )
    print(
        "callers: concurrent start_execution calls in the producing process (each waits "
        "for its commit, as an API request does).\n"
        "node runs/s = node runs succeeded (3 per execution, the trigger's included) / "
        "(last node completed_at - first execution created_at), from the database.\n"
        "workers' drain runs/s = the 2 noop runs per execution / (last completed_at - "
        "first noop started_at).\nbare BullMQ jobs/s: one bare bullmq worker process "
        "at that concurrency, no-op jobs from a full queue (bullmq_floor.floor_throughput)."
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg", default=DEFAULT_PG, help="admin URL (database to connect to)")
    parser.add_argument("--redis", default=DEFAULT_REDIS)
    parser.add_argument("--runs", type=int, default=25, help="measured runs per chain (>= 20)")
    parser.add_argument("--chain", type=int, default=40, help="steps in the chain")
    parser.add_argument("--executions", type=int, default=1000, help="per throughput batch")
    parser.add_argument("--concurrency", default="16,32,64", help="per worker process")
    parser.add_argument("--processes", type=int, default=2, help="worker processes")
    parser.add_argument(
        "--producers", type=int, default=8, help="callers starting executions (also: 32)"
    )
    asyncio.run(main(parser.parse_args()))

"""Read-side benchmark: projector throughput, Socket.IO latency, the write path's cost.

Measured in one run, each beside a reference taken in the same run:

- projector: ``--events`` synthetic events of a realistic mix (per execution: started,
  3 steps started + completed, ended; some failed attempts, retries, webhook calls) over
  50 workflows, written straight into ``event_store``, then ``Projector.rebuild()``
  (its default batches: 5,000 events on PostgreSQL, 500 on SQLite): events/s on
  PostgreSQL (target >= 5,000/s), on SQLite, and the floor of reading the same events
  in the same batches without projecting them;
- Socket.IO: ``flowmill serve`` (embedded, PostgreSQL) in a subprocess, ``--clients``
  python-socketio clients (websocket) in this process subscribed to a workflow's room,
  ``--executions`` executions of ``trigger -> 5 noop`` one after another; latency of each
  message = when a client got it - the event's ``timestamp`` (taken just before the
  step's commit, so the figure includes the commit); p50 over every message of every
  client (target p50 <= 10 ms with 100 clients), beside 1 client;
- write path: ``bench/distributed.py``'s throughput (2 ``flowmill worker`` processes
  draining ``trigger -> noop -> noop`` executions, a ``flowmill scheduler`` beside
  them), read side off (no metrics, no projector) against on (metrics in every process,
  the scheduler running the projector), alternated ``--pairs`` times; target: on is at
  most 5 % slower (medians); and CPU per node run of all the processes.

    .venv/bin/python bench/read_side.py [--events 50000] [--clients 100]
        [--executions 30] [--pairs 3] [--pg URL] [--redis URL] [--skip write]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import sqlalchemy as sa

from _util import print_table
from distributed import (
    DEFAULT_PG,
    DEFAULT_REDIS,
    FLOWMILL_BIN,
    _asyncpg_dsn,
    _pct,
    cpu_busy,
    temp_database,
    throughput,
)
from flowmill.ids import uuid7
from flowmill.logs import configure
from flowmill.projections.projector import Projector
from flowmill.store import migrate
from flowmill.store.database import connect
from flowmill.store.tables import event_store, tenants

TENANTS = 4
WORKFLOWS = 50


# --- projector ------------------------------------------------------------------------


def synthetic_events(n: int, rng: random.Random) -> Iterator[dict[str, Any]]:
    """``n`` event rows in the engine's shapes, tenants round-robin per execution."""
    seq = dict.fromkeys(range(TENANTS), 0)
    now = datetime.now(UTC) - timedelta(days=2)
    workflows = [str(uuid.uuid4()) for _ in range(WORKFLOWS)]
    made = 0
    i = 0
    while made < n:
        tenant = i % TENANTS
        wf = workflows[rng.randrange(WORKFLOWS)]
        ex = uuid7()
        now += timedelta(milliseconds=rng.randint(1, 50))
        types: list[tuple[str, dict[str, Any]]] = [("execution.started", {"version": 1})]
        for node in ("t", "a", "b"):
            types.append(("node.started", {"node_id": node, "attempt": 1}))
            if node == "b" and rng.random() < 0.1:
                types.append(("node.failed", {"node_id": node, "attempt": 1, "duration_ms": 5}))
                types.append(("node.retry_scheduled", {"node_id": node, "attempt": 2}))
                types.append(("node.started", {"node_id": node, "attempt": 2}))
            ms = rng.randint(0, 200)
            types.append(("node.completed", {"node_id": node, "attempt": 1, "duration_ms": ms}))
        end = "execution.failed" if rng.random() < 0.05 else "execution.completed"
        types.append((end, {"duration_ms": rng.randint(1, 900)}))
        if rng.random() < 0.2:
            types.append(("webhook.received", {"trigger_id": wf, "provider": "stripe",
                                               "status": "processed", "route": "/w"}))  # fmt: skip
        for type_, payload in types:
            seq[tenant] += 1
            stream = wf if type_ == "webhook.received" else ex
            yield {
                "id": uuid7(),
                "tenant_id": f"bench-{tenant}",
                "stream_id": stream,
                "event_type": type_,
                "payload": {"execution_id": ex, "workflow_id": wf, **payload},
                "timestamp": now,
                "sequence_number": seq[tenant],
            }
            made += 1
        i += 1


async def fill(url: str, n: int) -> int:
    """A migrated database at ``url`` holding ``n`` synthetic events; returns the count."""
    db = connect(url)
    try:
        await migrate.upgrade(db)
        rows = list(synthetic_events(n, random.Random(1)))
        heads: dict[str, int] = {}
        for r in rows:
            heads[r["tenant_id"]] = r["sequence_number"]

        def _write(conn: sa.Connection) -> None:
            for tenant, head in heads.items():
                conn.execute(
                    tenants.insert().values(
                        id=tenant, name=tenant, created_at=datetime.now(UTC), event_seq=head
                    )
                )
            for start in range(0, len(rows), 5000):
                conn.execute(event_store.insert(), rows[start : start + 5000])

        await db.write(_write)
        return len(rows)
    finally:
        await db.close()


async def project(url: str) -> tuple[int, float, float, int]:
    """(events, seconds to rebuild every read model, seconds to only read the events in
    the same batches, the batch size: the projector's default for the database)."""
    db = connect(url)
    try:
        projector = Projector(db)
        batch = projector.batch_size
        t0 = time.perf_counter()
        events = await projector.rebuild()
        took = time.perf_counter() - t0

        def _read_all(conn: sa.Connection) -> int:
            count = 0
            for (tenant,) in conn.execute(sa.select(tenants.c.id)):
                after = 0
                while True:
                    q = (
                        sa.select(event_store)
                        .where(event_store.c.tenant_id == tenant,
                               event_store.c.sequence_number > after)
                        .order_by(event_store.c.sequence_number)
                        .limit(batch)
                    )  # fmt: skip
                    got = conn.execute(q).all()
                    if not got:
                        break
                    count += len(got)
                    after = got[-1].sequence_number
            return count

        t1 = time.perf_counter()
        await db.read(_read_all)
        floor = time.perf_counter() - t1
        return events, took, floor, batch
    finally:
        await db.close()


# --- Socket.IO latency -----------------------------------------------------------------


@contextlib.asynccontextmanager
async def served(db_url: str, home: Path) -> AsyncIterator[tuple[str, str, int]]:
    """``flowmill serve`` on a free port; yields (url, first API key, its pid)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {
        **os.environ,
        "FLOWMILL_HOME": str(home),
        "FLOWMILL_DATABASE_URL": db_url,
        "FLOWMILL_SANDBOX_ENABLED": "false",
        "FLOWMILL_LOG_LEVEL": "warning",
    }
    env.pop("FLOWMILL_REDIS_URL", None)
    proc = subprocess.Popen(
        [str(FLOWMILL_BIN), "serve", "--port", str(port)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=home,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        key = ""
        deadline = time.monotonic() + 60
        while not key:
            line = (await asyncio.to_thread(proc.stdout.readline)).decode()
            if line.startswith("API key: "):
                key = line.split()[-1]
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("flowmill serve did not start")
        url = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient() as c:
            while True:
                with contextlib.suppress(httpx.TransportError):
                    if (await c.get(f"{url}/health")).status_code == 200:
                        break
                await asyncio.sleep(0.05)
        yield url, key, proc.pid
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.to_thread(proc.wait, 20)
        except subprocess.TimeoutExpired:
            proc.kill()


CHAIN = {
    "name": "latency",
    "status": "active",
    "nodes": [{"id": "t", "type": "trigger"}] + [{"id": f"n{i}", "type": "noop"} for i in range(5)],
    "edges": [{"source": "t", "target": "n0"}]
    + [{"source": f"n{i}", "target": f"n{i + 1}"} for i in range(4)],
}


async def socket_latency(
    url: str, key: str, clients: int, executions: int, processes: int
) -> list[float]:
    """Seconds from each message's event timestamp to its arrival, over all clients
    (lean clients, ``bench/socket_clients.py``, spread over ``processes``)."""
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {key}"}) as api:
        wf = (await api.post("/api/workflows", json=CHAIN)).json()["id"]
        script = Path(__file__).with_name("socket_clients.py")
        procs = []
        for k in range(processes):
            n = clients // processes + (1 if k < clients % processes else 0)
            if n == 0:
                continue
            procs.append(
                await asyncio.create_subprocess_exec(
                    sys.executable,
                    str(script),
                    url,
                    key,
                    f"workflow:{wf}",
                    str(n),
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                )
            )
        for p in procs:
            assert p.stdout is not None
            line = await asyncio.wait_for(p.stdout.readline(), 120)
            assert line.strip() == b"ready", line
        for _ in range(executions):
            r = await api.post(f"/api/workflows/{wf}/execute", params={"wait": 10}, json={})
            assert r.json()["status"] == "succeeded", r.text
            await asyncio.sleep(0.2)  # let each burst drain: latency, not throughput
        await asyncio.sleep(1)
        latencies: list[float] = []
        for p in procs:
            out, _ = await p.communicate(b"")
            latencies += [arrived - stamp for arrived, stamp in json.loads(out.splitlines()[-1])]
        # per execution: started, 6 steps (the trigger's too) started and completed, completed
        expected = 14 * executions * clients
        assert len(latencies) == expected, (len(latencies), expected)
        return latencies


async def commit_ms(db_url: str, n: int = 200) -> float:
    """p50 of a one-row INSERT + COMMIT on the same PostgreSQL (what the latency's start,
    the event's timestamp taken before the step's commit, includes)."""
    conn = await asyncpg.connect(_asyncpg_dsn(db_url))
    try:
        # a logged table: a temporary one skips the WAL, so its commit costs nothing
        await conn.execute("CREATE TABLE bench_commit (n int)")
        took = []
        for i in range(n):
            t = time.perf_counter()
            await conn.execute("INSERT INTO bench_commit VALUES ($1)", i)
            took.append(time.perf_counter() - t)
        return statistics.median(took) * 1000
    finally:
        await conn.close()


def process_cpu_s(pid: int) -> float:
    """CPU seconds a running process used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


# --- write path, read side on and off ---------------------------------------------------


@dataclass
class Side:
    """The read side of one write-path batch: the scheduler's process, if any."""

    scheduler: subprocess.Popen[bytes] | None = None

    def scheduler_cpu_s(self) -> float:
        """CPU seconds the running scheduler used so far (0 without one)."""
        return 0.0 if self.scheduler is None else process_cpu_s(self.scheduler.pid)


@contextlib.asynccontextmanager
async def read_side(
    on: bool, db_url: str, redis_url: str, prefix: str, log: Path
) -> AsyncIterator[Side]:
    """Metrics on or off in every process (workers inherit the environment), and a
    ``flowmill scheduler`` beside the workers either way (a deployment has one for its
    schedules), running the projector only when on. It is started, and done starting,
    before the batch, as in production: long before."""
    saved = os.environ.get("FLOWMILL_METRICS_ENABLED")
    os.environ["FLOWMILL_METRICS_ENABLED"] = "true" if on else "false"
    side = Side()
    env = {
        **os.environ,
        "FLOWMILL_DATABASE_URL": db_url,
        "FLOWMILL_REDIS_URL": redis_url,
        "FLOWMILL_QUEUE_PREFIX": prefix,
        "FLOWMILL_SANDBOX_ENABLED": "false",
        "FLOWMILL_LOG_LEVEL": "warning",
        "FLOWMILL_PROJECTIONS_ENABLED": "true" if on else "false",
    }
    out = log.open("wb")
    side.scheduler = subprocess.Popen([str(FLOWMILL_BIN), "scheduler"], env=env,
                                      stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
    deadline = time.monotonic() + 60
    while b"running" not in log.read_bytes():
        if side.scheduler.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the scheduler did not start: {log.read_text()}")
        await asyncio.sleep(0.05)
    await asyncio.sleep(1)  # its first rounds
    try:
        yield side
    finally:
        if side.scheduler is not None:
            side.scheduler.send_signal(signal.SIGTERM)
            try:
                side.scheduler.wait(20)
            except subprocess.TimeoutExpired:
                side.scheduler.kill()
            out.close()
        if saved is None:
            os.environ.pop("FLOWMILL_METRICS_ENABLED", None)
        else:
            os.environ["FLOWMILL_METRICS_ENABLED"] = saved


def _cpu_s() -> float:
    """CPU seconds of this process and of its children that ended."""
    me, kids = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


async def lag_after(db_url: str) -> int:
    conn = await asyncpg.connect(_asyncpg_dsn(db_url))
    try:
        return int(
            await conn.fetchval(
                "SELECT coalesce(sum(t.event_seq - coalesce(c.last_sequence, 0)), 0) "
                "FROM tenants t LEFT JOIN event_consumers c ON c.tenant_id = t.id "
                "AND c.consumer = 'projection:workflow_summary'"
            )
        )
    finally:
        await conn.close()


async def main(args: argparse.Namespace) -> None:
    configure("warning")
    os.environ.setdefault("COLUMNS", "150")
    skip = set(args.skip.split(",")) if args.skip else set()
    rows: list[list[object]] = []
    home = Path(tempfile.mkdtemp(prefix="flowmill-bench-rs-"))
    if "projector" not in skip:
        async with temp_database(args.pg) as pg_url:
            n = await fill(pg_url, args.events)
            events, took, floor, batch = await project(pg_url)
        sqlite_url = f"sqlite:///{home / 'projector.db'}"
        await fill(sqlite_url, args.events)
        s_events, s_took, s_floor, s_batch = await project(sqlite_url)
        rate = events / took
        rows += [
            [f"projector, PostgreSQL (rebuild, batches of {batch:,})", f"{rate:,.0f} events/s",
             f"{events:,} events in {took:.2f} s", ">= 5,000/s",
             "met" if rate >= 5000 else "MISSED"],
            ["  reference: only reading them, PostgreSQL", f"{events / floor:,.0f} events/s",
             f"{floor:.2f} s", "", ""],
            [f"projector, SQLite (batches of {s_batch:,})", f"{s_events / s_took:,.0f} events/s",
             f"{s_events:,} events in {s_took:.2f} s", "", ""],
            ["  reference: only reading them, SQLite", f"{s_events / s_floor:,.0f} events/s",
             f"{s_floor:.2f} s", "", ""],
        ]  # fmt: skip
        assert n == events, (n, events)
    if "socket" not in skip:
        async with temp_database(args.pg) as pg_url, served(pg_url, home) as (url, key, pid):
            busy = await cpu_busy(1.0)
            cpu0 = process_cpu_s(pid)
            one = await socket_latency(url, key, 1, args.executions, 1)
            cpu1 = process_cpu_s(pid)
            many = await socket_latency(url, key, args.clients, args.executions, args.processes)
            cpu2 = process_cpu_s(pid)
            commit = await commit_ms(pg_url)
        p50 = pct(many, 0.5)
        # the server's CPU for the extra 99 recipients of each message: what fanning out
        # one frame costs, whatever else the machine runs (the latency is not so steady)
        extra_frames = len(many) - len(one)
        fan_out_us = ((cpu2 - cpu1) - (cpu1 - cpu0)) / max(1, extra_frames) * 1e6
        rows += [
            [f"Socket.IO, {args.clients} clients: commit -> client", f"p50 {p50:.1f} ms",
             f"p95 {pct(many, 0.95):.1f} ms, max {max(many) * 1000:.1f} ms, {len(many):,} msgs",
             "p50 <= 10 ms", "met" if p50 <= 10 else "MISSED"],
            ["  reference: 1 client", f"p50 {pct(one, 0.5):.1f} ms",
             f"p95 {pct(one, 0.95):.1f} ms, {len(one):,} msgs", "", ""],
            ["  server CPU per extra recipient of a message", f"{fan_out_us:.1f} us",
             f"server CPU: {(cpu1 - cpu0) * 1000:,.0f} ms with 1 client, "
             f"{(cpu2 - cpu1) * 1000:,.0f} ms with {args.clients}", "", ""],
            ["  reference: one INSERT + COMMIT, same PostgreSQL", f"p50 {commit:.1f} ms",
             f"CPUs busy before the test (other load): {_pct(busy)}", "", ""],
        ]  # fmt: skip
    if "write" not in skip:
        results: dict[bool, list[float]] = {False: [], True: []}
        cpu: dict[bool, list[float]] = {False: [], True: []}
        lags = []
        async with temp_database(args.pg) as db_url:
            for k in range(args.pairs):
                for on in (False, True) if k % 2 == 0 else (True, False):
                    prefix = f"fmbench-rs-{uuid.uuid4().hex[:8]}"
                    log = home / f"sched-{k}-{on}.log"
                    async with read_side(on, db_url, args.redis, prefix, log) as side:
                        before, sched0 = _cpu_s(), side.scheduler_cpu_s()
                        r = await throughput(
                            db_url, args.redis, prefix, home, concurrency=32,
                            executions=args.write_executions, processes=2, producers=8,
                        )  # fmt: skip
                        if on:
                            await asyncio.sleep(3)  # the projector's next rounds
                            lags.append(await lag_after(db_url))
                        # CPU per node run of this process, its workers (ended) and the
                        # scheduler while the batch ran: steadier than the rate on a
                        # machine others share
                        used = _cpu_s() - before + side.scheduler_cpu_s() - sched0
                    cpu[on].append(used / r.node_runs * 1000)
                    results[on].append(r.per_s)
        off, on_ = statistics.median(results[False]), statistics.median(results[True])
        slower = (off - on_) / off
        cpu_off, cpu_on = statistics.median(cpu[False]), statistics.median(cpu[True])
        rows += [
            ["write path: node runs/s, read side OFF (median)", f"{off:,.0f}/s",
             ", ".join(f"{x:,.0f}" for x in results[False]), "", ""],
            ["write path: node runs/s, read side ON (median)", f"{on_:,.0f}/s",
             ", ".join(f"{x:,.0f}" for x in results[True])
             + f"; projector behind by {lags} events 3 s after each batch",
             "<= 5 % slower", f"{slower:+.1%} slower: " + ("met" if slower <= 0.05 else "MISSED")],
            ["  CPU per node run (all processes), read side OFF", f"{cpu_off:.3f} ms",
             ", ".join(f"{x:.3f}" for x in cpu[False]), "", ""],
            ["  CPU per node run (all processes), read side ON", f"{cpu_on:.3f} ms",
             ", ".join(f"{x:.3f}" for x in cpu[True]), "",
             f"{(cpu_on - cpu_off) / cpu_off:+.1%} CPU"],
        ]  # fmt: skip
    print_table(
        "Read side (one run, each figure beside its reference)",
        ["measure", "ours", "detail", "target", ""],
        rows,
    )


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg", default=DEFAULT_PG)
    parser.add_argument("--redis", default=DEFAULT_REDIS)
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--processes", type=int, default=2, help="client processes")
    parser.add_argument("--executions", type=int, default=30)
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--write-executions", type=int, default=1000)
    parser.add_argument("--skip", default="", help="comma list of projector,socket,write")
    asyncio.run(main(parser.parse_args()))

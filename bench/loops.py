"""Loop benchmark: what an iteration costs beside a step, and what parallelism buys.

Each row is measured in the same run as its reference:

- a sequential loop of N items over a one-node body, per iteration, beside the per-step
  cost of a plain N-step chain (an iteration is a child execution: its start, its two
  steps, its end and the parent's wake and resumption — target <= 2x a step);
- the same loop (``--http-items``, default 1,000 as in the target) with ``concurrency:
  10`` over a body that waits 20 ms on a local HTTP server, beside the sequential loop
  over that body (target >= 8x faster);
- the peak RSS of a process running a LARGE-item loop beside one running a SMALL-item
  loop (``--rss SMALL,LARGE``, default 1,000 and 100,000; embedded, parallel mode, a
  fresh process each; target: within 1.5x).

Embedded (SQLite) always; PostgreSQL too when ``--postgres URL`` names a server whose
maintenance database can create a scratch database (dropped afterwards).

    .venv/bin/python bench/loops.py [--items 1000] [--http-items 1000]
        [--postgres postgresql://127.0.0.1:5432/postgres] [--rss 1000,100000 | --rss '']
        [--rss-only]
The heap is frozen once the engine is up, as ``flowmill serve`` and ``flowmill worker``
freeze theirs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from typing import Any

import asyncpg

from _util import freeze_heap_like_a_server, print_table
from flowmill.config import Settings
from flowmill.domain.states import ExecutionStatus
from flowmill.runs import register
from flowmill.runtime import Runtime, open_runtime

HTTP_DELAY_S = 0.020


def chain(n: int) -> dict[str, Any]:
    nodes: list[dict[str, Any]] = [{"id": "t", "type": "trigger"}]
    edges = []
    prev = "t"
    for i in range(n):
        nodes.append({"id": f"s{i}", "type": "transform", "config": {"mapping": {"step": i}}})
        edges.append({"source": prev, "target": f"s{i}"})
        prev = f"s{i}"
    return {"name": f"chain-{n}", "nodes": nodes, "edges": edges}


def loop(name: str, n: int, body_node: dict[str, Any], **config: Any) -> dict[str, Any]:
    node = {
        "id": "each",
        "type": "loop",
        "config": {
            "count": n,
            "max_iterations": max(n, 1),
            "body": {"nodes": [body_node], "edges": []},
            **config,
        },
    }
    return {
        "name": name,
        "nodes": [{"id": "t", "type": "trigger"}, node],
        "edges": [{"source": "t", "target": "each"}],
    }


ONE_NODE = {"id": "one", "type": "transform", "config": {"mapping": {"i": "{{index}}"}}}


async def timed(rt: Runtime, doc: dict[str, Any]) -> float:
    wf_id, version, tenant = await register(rt, doc, None)
    t0 = time.perf_counter()
    execution_id = await rt.engine.start_execution(
        tenant_id=tenant, workflow_id=wf_id, version=version, data={}
    )
    ex = await rt.engine.wait(execution_id, timeout=1800)
    elapsed = time.perf_counter() - t0
    if ex.status is not ExecutionStatus.SUCCEEDED:
        raise RuntimeError(f"{doc['name']} ended {ex.status}: {ex.error}")
    return elapsed


@contextlib.asynccontextmanager
async def slow_http() -> AsyncIterator[str]:
    """A local HTTP server answering every request after 20 ms."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                if not head:
                    return
                await asyncio.sleep(HTTP_DELAY_S)  # not a wait: the service's latency
                writer.write(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                    b'content-length: 11\r\n\r\n{"ok":true}'
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/work"
    finally:
        server.close()
        await server.wait_closed()


async def scenario(label: str, settings: Settings, items: int, http_items: int) -> list[list[Any]]:
    rows: list[list[Any]] = []
    async with open_runtime(settings) as rt, rt.engine.running(), slow_http() as url:
        freeze_heap_like_a_server()
        await timed(rt, chain(20))  # warm-up: caches, connections
        await timed(rt, loop("warm", 5, ONE_NODE))
        plain = await timed(rt, chain(items))
        seq = await timed(rt, loop(f"seq-{items}", items, ONE_NODE))
        per_step = plain / items * 1000
        per_iteration = seq / items * 1000
        rows.append(
            [
                f"{label}: {items}-item sequential loop, one-node body",
                f"{per_iteration:.2f} ms / iteration",
                f"{per_step:.2f} ms / step ({items}-step chain)",
                f"{per_iteration / per_step:.1f}x",
                "<= 2x",
            ]
        )
        http = {"id": "call", "type": "http_request", "config": {"url": url}}
        one_by_one = await timed(rt, loop(f"http-seq-{http_items}", http_items, http))
        parallel = await timed(
            rt,
            loop(f"http-par-{http_items}", http_items, http, mode="parallel", concurrency=10),
        )
        rows.append(
            [
                f"{label}: {http_items}-item loop, body waits 20 ms on HTTP, concurrency 10",
                f"{parallel:.2f} s",
                f"{one_by_one:.2f} s sequential",
                f"{one_by_one / parallel:.1f}x faster",
                ">= 8x faster",
            ]
        )
    return rows


@contextlib.asynccontextmanager
async def scratch_postgres(admin_url: str) -> AsyncIterator[str]:
    name = f"flowmill_bench_loops_{os.getpid()}"
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    base = admin_url.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        conn = await asyncpg.connect(admin_url)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()


async def rss_child(items: int) -> None:
    """Run one loop of ``items`` in this process; print its peak RSS in KiB."""
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            database_url=f"sqlite:///{tmp}/rss.db", home=tmp, log_level="warning",
            sandbox_enabled=False, loop_max_iterations=max(items, 1),
        )  # fmt: skip
        async with open_runtime(settings) as rt, rt.engine.running():
            await timed(rt, loop(f"rss-{items}", items, ONE_NODE, mode="parallel"))
    print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def peak_rss(items: int) -> int:
    """Peak RSS (KiB) of a fresh process running an ``items``-item loop."""
    out = subprocess.run(
        [sys.executable, __file__, "--rss-child", str(items)],
        check=True,
        capture_output=True,
        text=True,
    )
    return int(out.stdout.strip().splitlines()[-1])


def rss_row(small: int, large: int) -> list[Any]:
    """Peak RSS of a LARGE-item loop beside a SMALL-item one (a fresh process each)."""
    a, b = peak_rss(small), peak_rss(large)
    return [
        f"embedded: peak RSS of a {large:,}-item parallel loop",
        f"{b / 1024:.0f} MiB",
        f"{a / 1024:.0f} MiB ({small:,} items)",
        f"{b / a:.2f}x",
        "<= 1.5x",
    ]


async def main(items: int, http_items: int, postgres: str | None, rss: str | None) -> None:
    common: dict[str, Any] = {
        "log_level": "warning",
        "http_allow_hosts": ["127.0.0.1"],
        "sandbox_enabled": False,
    }
    rows: list[list[Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        sqlite = Settings(database_url=f"sqlite:///{tmp}/bench.db", home=tmp, **common)
        rows += await scenario("embedded", sqlite, items, http_items)
    if postgres:
        async with scratch_postgres(postgres) as url:
            rows += await scenario(
                "PostgreSQL", Settings(database_url=url, **common), items, http_items
            )
    if rss:
        small, large = (int(x) for x in rss.split(","))
        rows.append(rss_row(small, large))
    print_table(
        "Loops: an iteration beside a step, parallel beside sequential (same run)",
        ["scenario", "ours", "reference", "ratio", "target"],
        rows,
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1000, help="items of the loop and chain")
    parser.add_argument("--http-items", type=int, default=1000, help="items of the HTTP loops")
    parser.add_argument("--postgres", default=None, help="maintenance database URL")
    parser.add_argument(
        "--rss",
        default="1000,100000",
        help="SMALL,LARGE: peak RSS of two loops, each in a fresh process ('' to skip)",
    )
    parser.add_argument("--rss-only", action="store_true", help="only the RSS row")
    parser.add_argument("--rss-child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_child is not None:
        asyncio.run(rss_child(args.rss_child))
    elif args.rss_only:
        small, large = (int(x) for x in args.rss.split(","))
        print_table(
            "Loops: peak RSS, embedded (a fresh process each)",
            ["scenario", "ours", "reference", "ratio", "target"],
            [rss_row(small, large)],
        )
    else:
        asyncio.run(main(args.items, args.http_items, args.postgres, args.rss or None))

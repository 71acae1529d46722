"""Embedded-mode engine benchmark (SQLite in WAL, every step checkpointed).

Prints, for each scenario, our figure beside the floor measured in the same run: the
same number of bare SQLite transactions (one small insert and update per step, same
pragmas) — the cost of durability alone, with no engine around it. The heap is frozen
once the engine is up, as ``flowmill serve`` and ``flowmill worker`` freeze theirs (until
this stop's notes the bench did not, and its figures carried full collections those
processes do not make: 73-77 ms instead of 81-90 for the fan-out on one machine).

    ./dev bench engine       or    .venv/bin/python bench/engine.py [--runs N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

from _util import freeze_heap_like_a_server, median_ms, print_table
from flowmill.config import Settings
from flowmill.domain.states import ExecutionStatus
from flowmill.runs import register
from flowmill.runtime import Runtime, open_runtime


def chain(n: int) -> dict[str, Any]:
    nodes: list[dict[str, Any]] = [{"id": "t", "type": "trigger"}]
    edges = []
    prev = "t"
    for i in range(n):
        nid = f"s{i}"
        nodes.append(
            {"id": nid, "type": "transform", "config": {"mapping": {"step": i, "prev": "{{step}}"}}}
        )
        edges.append({"source": prev, "target": nid})
        prev = nid
    return {"name": f"chain-{n}", "nodes": nodes, "edges": edges}


def fan_out(width: int) -> dict[str, Any]:
    nodes: list[dict[str, Any]] = [
        {"id": "t", "type": "trigger"},
        {"id": "join", "type": "merge", "config": {"mode": "array"}},
    ]
    edges = []
    for i in range(width):
        nodes.append({"id": f"b{i}", "type": "transform", "config": {"mapping": {"i": i}}})
        edges += [{"source": "t", "target": f"b{i}"}, {"source": f"b{i}", "target": "join"}]
    return {"name": f"fan-{width}", "nodes": nodes, "edges": edges}


async def time_runs(rt: Runtime, doc: dict[str, Any], runs: int, warmup: int = 3) -> list[float]:
    wf_id, version, tenant = await register(rt, doc, None)
    samples = []
    for i in range(warmup + runs):
        t0 = time.perf_counter()
        execution_id = await rt.engine.start_execution(
            tenant_id=tenant, workflow_id=wf_id, version=version, data={"i": i}
        )
        ex = await rt.engine.wait(execution_id, timeout=120)
        elapsed = time.perf_counter() - t0
        if ex.status is not ExecutionStatus.SUCCEEDED:
            raise RuntimeError(f"{doc['name']} ended {ex.status}: {ex.error}")
        if i >= warmup:
            samples.append(elapsed)
    return samples


def sqlite_floor(path: Path, steps: int, runs: int) -> list[float]:
    """One transaction per step, as bare as it gets: the price of durability."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(
        "CREATE TABLE IF NOT EXISTS step (id INTEGER PRIMARY KEY, run INT, n INT, "
        "status TEXT, output TEXT)"
    )
    samples = []
    for r in range(runs):
        t0 = time.perf_counter()
        prev = None
        for i in range(steps):
            conn.execute("BEGIN IMMEDIATE")
            if prev is not None:
                conn.execute(
                    "UPDATE step SET status='done', output=? WHERE id=?", (f'{{"step": {i}}}', prev)
                )
            prev = conn.execute(
                "INSERT INTO step (run, n, status) VALUES (?, ?, 'queued')", (r, i)
            ).lastrowid
            conn.execute("COMMIT")
        samples.append(time.perf_counter() - t0)
    conn.close()
    return samples


async def main(runs: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(database_url=f"sqlite:///{tmp}/bench.db", log_level="warning")
        async with open_runtime(settings) as rt, rt.engine.running():
            freeze_heap_like_a_server()
            c40 = await time_runs(rt, chain(40), runs)
            c10 = await time_runs(rt, chain(10), runs)
            c1000 = await time_runs(rt, chain(1000), max(3, runs // 5), warmup=1)
            fan_runs = max(5, runs // 2)
            cpu0 = time.process_time()
            fan = await time_runs(rt, fan_out(200), fan_runs, warmup=1)
            # CPU of the whole process per run (warm-up included): steadier than the
            # wall clock on a machine others share
            fan_cpu = (time.process_time() - cpu0) / (fan_runs + 1) * 1000
        floor40 = sqlite_floor(Path(tmp) / "floor.db", 41, runs)
        floor1000 = sqlite_floor(Path(tmp) / "floor.db", 1001, max(3, runs // 5))

    per10 = median_ms(c10) / 10
    per1000 = median_ms(c1000) / 1000
    print_table(
        f"Embedded engine (SQLite WAL, synchronous=NORMAL), median of {runs} runs, "
        f"load average {os.getloadavg()[0]:.2f}",
        ["scenario", "ours (ms)", "floor: bare SQLite commits (ms)", "ours / floor", "target"],
        [
            [
                "40-step chain, end to end",
                median_ms(c40),
                median_ms(floor40),
                f"{median_ms(c40) / median_ms(floor40):.1f}x",
                "<= 40 ms",
            ],
            ["per step, 10-step chain", per10, "", "", ""],
            [
                "per step, 1,000-step chain",
                per1000,
                median_ms(floor1000) / 1001,
                f"{per1000 / per10:.2f}x of 10-step",
                "<= 1.5x of 10-step",
            ],
            ["200-way fan-out + join", median_ms(fan), "", "", "<= 100 ms"],
            ["200-way fan-out + join, CPU per run", fan_cpu, "", "", ""],
        ],
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=25, help="measured runs per scenario")
    asyncio.run(main(parser.parse_args().runs))

"""Sandbox latency and throughput, next to the raw in-process engine (the floor).

    .venv/bin/python bench/sandbox.py            # full run
    .venv/bin/python bench/sandbox.py --quick    # fewer iterations

Rows:
- raw QuickJS: the same engine evaluating in this process (fresh context per call, and
  one reused context): the cost floor, with none of the isolation.
- sandbox: through ``Sandbox`` (worker process, pipe round trip, fresh context, limits).
- python: a Python code node (fresh jailed process per run).
- 1,000 conditions: string conditions like ``input.data.total > 100``, one call each,
  one after another and all at once (the pool evaluates in parallel).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import _quickjs  # type: ignore[import-not-found]

from flowmill.engine.services import CodeLimits
from flowmill.sandbox import Sandbox, SandboxSettings

SCOPE: dict[str, Any] = {
    "input": {"data": {"message": "hello", "total": 150}},
    "trigger": {"type": "webhook.test", "data": {"message": "hello"}},
    "nodes": {},
    "vars": {},
    "execution": {"id": "bench"},
}
SEED_CODE = 'return { result: input.data.message + " processed" };'
CONDITION = "input.data.total > 100"


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))]


def row(name: str, xs_ms: list[float], target: str = "") -> str:
    p50, p95 = pct(xs_ms, 0.5), pct(xs_ms, 0.95)
    rate = 1000.0 / statistics.mean(xs_ms)
    return f"| {name:<46} | {p50:>8.3f} | {p95:>8.3f} | {rate:>10,.0f} | {target:<12} |"


def timed_sync(fn: Callable[[], Any], n: int) -> list[float]:
    out = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        out.append((time.perf_counter() - start) * 1000)
    return out


async def timed(fn: Callable[[], Awaitable[Any]], n: int) -> list[float]:
    out = []
    for _ in range(n):
        start = time.perf_counter()
        await fn()
        out.append((time.perf_counter() - start) * 1000)
    return out


def raw_fresh() -> Any:
    ctx = _quickjs.Context()
    ctx.set_memory_limit(64 << 20)
    ctx.set("s", json.dumps(SCOPE))
    return ctx.eval(f"(function (input) {{ return {CONDITION} }})(JSON.parse(s).input)")


_REUSED = _quickjs.Context()


def raw_reused() -> Any:
    _REUSED.set("s", json.dumps(SCOPE))
    return _REUSED.eval(f"(function (input) {{ return {CONDITION} }})(JSON.parse(s).input)")


async def main(quick: bool) -> None:
    n = 300 if quick else 2000
    rows = []
    rows.append(row("raw QuickJS in-process, fresh context (floor)", timed_sync(raw_fresh, n)))
    rows.append(row("raw QuickJS in-process, reused context", timed_sync(raw_reused, n)))
    async with Sandbox(SandboxSettings()) as sb:
        assert await sb.evaluate_many([CONDITION], SCOPE) == [True]
        await timed(lambda: sb.evaluate_many([CONDITION], SCOPE), 200)  # warm up
        rows.append(
            row(
                "sandbox: trivial JS expression (1 round trip)",
                await timed(lambda: sb.evaluate_many([CONDITION], SCOPE), n),
                "p50 <= 1 ms",
            )
        )
        limits = CodeLimits()
        rows.append(
            row(
                "sandbox: seed `function` node code",
                await timed(lambda: sb.run("javascript", SEED_CODE, SCOPE, limits), n),
                "p50 <= 1 ms",
            )
        )
        py_n = 30 if quick else 100
        if sb.python.available:
            code = "return {'result': input['data']['message'] + ' processed'}"
            rows.append(
                row(
                    f"python code node ({sb.python.isolation})",
                    await timed(lambda: sb.run("python", code, SCOPE, limits), py_n),
                    "p50 <= 50 ms",
                )
            )
        start = time.perf_counter()
        for _ in range(1000):
            await sb.evaluate_many([CONDITION], SCOPE)
        sequential = time.perf_counter() - start
        start = time.perf_counter()
        await asyncio.gather(*(sb.evaluate_many([CONDITION], SCOPE) for _ in range(1000)))
        concurrent = time.perf_counter() - start
        workers = sb.settings.worker_count
        describe = sb.describe()
    print(f"sandbox: {describe}")
    print()
    print(f"| {'case':<46} | {'p50 ms':>8} | {'p95 ms':>8} | {'ops/s':>10} | {'target':<12} |")
    print(f"|{'-' * 48}|{'-' * 10}|{'-' * 10}|{'-' * 12}|{'-' * 14}|")
    for r in rows:
        print(r)
    print()
    print("| 1,000 JS conditions              | total s | conditions/s |")
    print("|----------------------------------|---------|--------------|")
    print(f"| one after another                | {sequential:7.3f} | {1000 / sequential:12,.0f} |")
    label = f"all at once ({workers} workers)"
    print(f"| {label:<32} | {concurrent:7.3f} | {1000 / concurrent:12,.0f} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer iterations")
    asyncio.run(main(parser.parse_args().quick))

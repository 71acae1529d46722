"""Web app benchmark: JavaScript shipped for the first load, time to the first render of
the executions page over 1,000,000 PostgreSQL executions, and the live-update delay
from a step's commit to the page showing it, in headless Chromium (Playwright).

Each figure is printed beside a reference measured in the same run: the API call the
page makes (for the first render), the SSE stream read by a plain HTTP client (for the
live delay). The 1M-row database is bench/api.py's (``flowmill_bench``, seeded with
``generate_series``, kept between runs; ``--reseed`` rebuilds it).

    ./dev bench ui     or    .venv/bin/python bench/ui.py [--samples N] [--reseed]
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import os
import re
import statistics
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from playwright.async_api import Browser, async_playwright
from rich.console import Console

from _util import print_table
from api import DB_NAME, ROWS, TENANT, db_url, new_key, seed, served
from flowmill.api import webapp

# The assets the served app ships: the imported package's (PYTHONPATH chooses which
# checkout is measured, for the page loads and for the sizes alike).
DIST = webapp.DIST
CHROMIUM = os.environ.get("FLOWMILL_BENCH_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
console = Console(width=150)

# The first row of the executions table, timed from the navigation's start.
FIRST_ROW = """
new MutationObserver((_, obs) => {
  if (document.querySelector('tr[data-execution-id]')) {
    window.__firstRow = performance.now();
    obs.disconnect();
  }
}).observe(document, {childList: true, subtree: true});
"""
# When each graph node is first drawn as succeeded, in epoch milliseconds.
SEEN = """
window.__seen = {};
new MutationObserver((records) => {
  const now = performance.timeOrigin + performance.now();
  for (const r of records) {
    const el = r.target;
    if (el.dataset && el.dataset.nodeId && el.dataset.status === 'succeeded'
        && el.classList.contains('flow-node') && !(el.dataset.nodeId in window.__seen)) {
      window.__seen[el.dataset.nodeId] = now;
    }
  }
}).observe(document, {attributes: true, attributeFilter: ['data-status'], subtree: true});
"""


FINAL = {"execution.completed", "execution.failed", "execution.cancelled"}


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def first_load_bytes() -> tuple[int, int, list[str]]:
    """Gzipped and raw bytes of the scripts index.html loads (entry + modulepreloads)."""
    index = (DIST / "index.html").read_text()
    names = re.findall(r'(?:src|href)="/(assets/[^"]+\.js)"', index)
    raw = [(DIST / n).read_bytes() for n in names]
    return sum(len(gzip.compress(b, 9)) for b in raw), sum(map(len, raw)), names


async def new_context(b: Browser, key: str) -> Any:
    ctx = await b.new_context(viewport={"width": 1360, "height": 900})
    await ctx.add_init_script(f"sessionStorage.setItem('flowmill.credential', {key!r});")
    return ctx


async def page_js(b: Browser, url: str, key: str, path: str, ready: str) -> int:
    """Bytes of JavaScript on the wire (compressed) for a cold load of ``path``."""
    ctx = await new_context(b, key)
    page = await ctx.new_page()
    sizes: list[int] = []

    async def on_response(r: Any) -> None:
        if r.url.endswith(".js"):
            sizes.append(int((await r.all_headers()).get("content-length", "0")))

    page.on("response", on_response)
    await page.goto(url + path)
    await page.wait_for_selector(ready, timeout=30_000)
    await page.wait_for_load_state("networkidle")
    await ctx.close()
    return sum(sizes)


async def first_render(b: Browser, url: str, key: str, path: str, samples: int) -> list[float]:
    """Milliseconds from navigation start to the first execution row, cold cache."""
    out = []
    for _ in range(samples):
        ctx = await new_context(b, key)
        await ctx.add_init_script(FIRST_ROW)
        page = await ctx.new_page()
        await page.goto(url + path)
        await page.wait_for_selector("tr[data-execution-id]", timeout=30_000)
        out.append(float(await page.evaluate("window.__firstRow")))
        await ctx.close()
    return out


def api_floor(url: str, key: str, params: dict[str, Any], samples: int) -> list[float]:
    """The page's own list request, alone, over a fresh connection each time (ms)."""
    out = []
    for _ in range(samples):
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}) as c:
            t0 = time.perf_counter()
            r = c.get("/api/executions", params={**params, "limit": 50})
            out.append((time.perf_counter() - t0) * 1000)
            assert r.status_code == 200, r.text
    return out


def chain(steps: int, first_ms: int, gap_ms: int) -> dict[str, Any]:
    """trigger → delay → s1 → delay → s2 …: each step's end is a sample."""
    nodes: list[dict[str, Any]] = [{"id": "t", "type": "trigger"}]
    edges = []
    prev = "t"
    for i in range(1, steps + 1):
        d, s = f"d{i}", f"s{i}"
        nodes += [
            {"id": d, "type": "delay", "config": {"ms": first_ms if i == 1 else gap_ms}},
            {"id": s, "type": "transform", "config": {"mapping": {"i": i}}},
        ]
        edges += [{"source": prev, "target": d}, {"source": d, "target": s}]
        prev = s
    return {"name": "Live update bench", "status": "active", "nodes": nodes, "edges": edges}


async def sse_times(url: str, key: str, execution_id: str) -> dict[str, float]:
    """Epoch ms at which a plain client reads each node.completed event."""
    seen: dict[str, float] = {}
    headers = {"Authorization": f"Bearer {key}"}
    async with (
        httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as c,
        c.stream("GET", f"/api/executions/{execution_id}/events") as r,
    ):
        event = ""
        async for line in r.aiter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: ") and event == "node.completed":
                node = re.search(r'"node_id":\s*"([^"]+)"', line)
                if node and node.group(1) not in seen:
                    seen[node.group(1)] = time.time() * 1000
            elif line.startswith("data: ") and event in FINAL:
                return seen
    return seen


async def live_delay(b: Browser, url: str, key: str, runs: int) -> tuple[list[float], list[float]]:
    """Page and plain-SSE delays (ms) from each step's commit (completed_at) to seen."""
    page_d: list[float] = []
    sse_d: list[float] = []
    async with httpx.AsyncClient(
        base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60
    ) as c:
        wf = (await c.post("/api/workflows", json=chain(10, 1500, 150))).json()["id"]
        for _ in range(runs):
            ctx = await new_context(b, key)
            await ctx.add_init_script(SEEN)
            page = await ctx.new_page()
            r = await c.post(f"/api/workflows/{wf}/execute", json={"input": {}})
            ex = r.json()["execution_id"]
            sse = asyncio.create_task(sse_times(url, key, ex))
            await page.goto(f"{url}/executions/{ex}")
            await page.wait_for_selector(
                '[data-testid="execution-status"] >> text=succeeded', timeout=60_000
            )
            seen_page: dict[str, float] = await page.evaluate("window.__seen")
            seen_sse = await asyncio.wait_for(sse, 30)
            await ctx.close()
            detail = (await c.get(f"/api/executions/{ex}")).json()
            for n in detail["nodes"]:
                if n["node_id"] in ("t", "d1") or n["status"] != "succeeded":
                    continue  # before the page was surely open and following
                done = datetime.fromisoformat(n["completed_at"]).timestamp() * 1000
                if n["node_id"] in seen_page:
                    page_d.append(seen_page[n["node_id"]] - done)
                if n["node_id"] in seen_sse:
                    sse_d.append(seen_sse[n["node_id"]] - done)
    return page_d, sse_d


async def main(samples: int, runs: int, reseed: bool) -> None:
    os.environ.setdefault("COLUMNS", "150")
    gz, raw, names = first_load_bytes()
    await seed(reseed)
    pg_env = {"FLOWMILL_DATABASE_URL": db_url(DB_NAME)}
    with tempfile.TemporaryDirectory() as tmp:
        key = new_key(pg_env, Path(tmp), TENANT)
        with served(pg_env, Path(tmp), expect_key=False) as (url, _):
            async with async_playwright() as p:
                b = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
                try:
                    wire_list = await page_js(b, url, key, "/executions", "tr[data-execution-id]")
                    render = {
                        "all": await first_render(b, url, key, "/executions", samples),
                        "failed": await first_render(
                            b, url, key, "/executions?status=failed", samples
                        ),
                    }
                    floor = {
                        "all": api_floor(url, key, {}, samples),
                        "failed": api_floor(url, key, {"status": "failed"}, samples),
                    }
                    page_d, sse_d = await live_delay(b, url, key, runs)
                finally:
                    await b.close()
    print_table(
        "JavaScript for the first load (the app's shell; each page adds its own chunk)",
        ["what", "gzipped (KB)", "raw (KB)", "target"],
        [
            [f"index.html's scripts ({len(names)} files)", gz / 1024, raw / 1024, "<= 300 KB gz"],
            ["on the wire for a cold /executions (measured)", wire_list / 1024, "", ""],
        ],
    )
    print_table(
        f"First render of the executions page (first row drawn, from navigation start), "
        f"cold cache, headless Chromium; PostgreSQL holds {ROWS:,} executions of the "
        f"tenant; {samples} loads each",
        ["page", "p50 (ms)", "p95 (ms)", "ref: its list request alone, p50 (ms)", "target"],
        [
            [
                f"/executions{'?status=failed' if k == 'failed' else ''}",
                statistics.median(v),
                pct(v, 95),
                statistics.median(floor[k]),
                "<= 1000 ms",
            ]
            for k, v in render.items()
        ],
    )
    print_table(
        f"Live update: a step's commit (its completed_at) to being shown; {runs} executions "
        "of 10 steps 150 ms apart",
        ["seen by", "samples", "p50 (ms)", "p95 (ms)", "max (ms)", "target"],
        [
            [
                "the execution page (graph node turns succeeded)",
                len(page_d),
                statistics.median(page_d),
                pct(page_d, 95),
                max(page_d),
                "p50 <= 250 ms",
            ],
            [
                "ref: a plain SSE client (httpx)",
                len(sse_d),
                statistics.median(sse_d),
                pct(sse_d, 95),
                max(sse_d),
                "",
            ],
        ],
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=10, help="page loads per case")
    parser.add_argument("--runs", type=int, default=3, help="executions followed live")
    parser.add_argument("--reseed", action="store_true", help="rebuild the 1M-row database")
    args = parser.parse_args()
    asyncio.run(main(args.samples, args.runs, args.reseed))

"""Large payloads: a 50 MB JSON webhook body and a 50 MB HTTP download, each through five
nodes, against ``flowmill serve`` in its own process; prints the server's peak RSS.

Each row runs in a fresh server, so its peak is its own: the server is warmed up with a
small request through the same workflow, its peak counter is reset (``/proc/<pid>/
clear_refs``), then the payload goes through and the peak (``VmHWM``) is read once the
execution has ended. Two ratios: the whole peak over the payload (the target: under
3x), and what the payload added to the warmed-up server over the payload.

- webhook: trigger → five transforms passing the body on (``{{data}}``, ``{{doc}}``);
- download: trigger → ``http_request`` GET of a local server → four transforms;
- ``signed`` (``--signed``): the webhook flow with the ``hmac`` provider (HMAC-SHA256 of
  the body in ``X-Signature``), verified as the body streams in;
- ``touched``: the same webhook flow with one node reading into the body
  (``{{doc.items[1].name}}``), which loads and decodes it in the server;
- ``--reference``: the webhook flow with ``FLOWMILL_BLOB_STORE=off`` (values inline, as
  before blobs), same server, same payload.

Layouts: embedded SQLite (files store) and PostgreSQL in one process (database store;
FLOWMILL_BENCH_POSTGRES_URL, default the local server; a database
``flowmill_bench_payloads`` is created, or the one FLOWMILL_BENCH_PAYLOADS_DB names, so
that two people benching on one server do not drop each other's).

Usage: ``python bench/payloads.py [--mb 50] [--layouts sqlite,postgres] [--signed] [--touched]
[--reference]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import hmac
import json
import os
import re
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _util import print_table
from flowmill.testing import free_port, unverified_webhook
from webhooks import fresh_database, process

DB_NAME = os.environ.get("FLOWMILL_BENCH_PAYLOADS_DB", "flowmill_bench_payloads")
MB = 1024 * 1024


def payload(size: int) -> bytes:
    """A JSON document of about ``size`` bytes: a list of small objects, as an export."""
    item = {"id": 0, "name": "item-0", "email": "someone@example.com", "pad": "x" * 60}
    per = len(json.dumps(item)) + 2
    n = size // per
    items = [
        {"id": i, "name": f"item-{i}", "email": "someone@example.com", "pad": "x" * 60}
        for i in range(n)
    ]
    return json.dumps({"items": items}).encode()


def transforms(
    first: str, n: int, touch: bool
) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    nodes: list[dict[str, Any]] = []
    edges: list[dict[str, str]] = []
    prev = first
    for i in range(n):
        mapping: dict[str, Any] = {"doc": "{{data}}" if i == 0 else "{{doc}}"}
        if touch and i == 2:
            mapping["second"] = "{{doc.items[1].name}}"
        nodes.append({"id": f"t{i}", "type": "transform", "config": {"mapping": mapping}})
        edges.append({"source": prev, "target": f"t{i}"})
        prev = f"t{i}"
    return nodes, edges


def webhook_workflow(touch: bool) -> dict[str, Any]:
    nodes, edges = transforms("in", 5, touch)
    trigger = {"id": "in", "type": "trigger", "config": {"triggerType": "webhook"}}
    return {"name": "bench payload webhook", "status": "active", "nodes": [trigger, *nodes],
            "edges": edges}  # fmt: skip


def download_workflow(url: str) -> dict[str, Any]:
    nodes, edges = transforms("fetch", 4, False)
    fetch = {"id": "fetch", "type": "http_request", "config": {"method": "GET", "url": url}}
    return {
        "name": "bench payload download",
        "status": "active",
        "nodes": [{"id": "in", "type": "trigger"}, fetch, *nodes],
        "edges": [{"source": "in", "target": "fetch"}, *edges],
    }


@contextlib.contextmanager
def file_server(bodies: dict[str, bytes]) -> Iterator[int]:
    """A local HTTP server sending each body in 64 KB writes."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            body = bodies[self.path]
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            view = memoryview(body)
            for at in range(0, len(body), 64 * 1024):
                self.wfile.write(view[at : at + 64 * 1024])

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def memory(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of ``pid``, in bytes."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0]) * 1024
    return fields["VmRSS"], fields["VmHWM"]


@contextlib.asynccontextmanager
async def server(layout: str, tmp: Path, port: int, **env_extra: str) -> AsyncIterator[Any]:
    home = Path(tempfile.mkdtemp(dir=tmp))
    env = {
        **os.environ,
        "FLOWMILL_HOME": str(home),
        "FLOWMILL_LOG_LEVEL": "warning",
        "FLOWMILL_HTTP_ALLOW_CIDRS": "127.0.0.1/32",
        "FLOWMILL_SECRET_KEYS": "bench:" + "B" * 43 + "=",
        **env_extra,
    }
    if layout == "sqlite":
        env["FLOWMILL_DATABASE_URL"] = f"sqlite:///{home}/flowmill.db"
    else:
        env["FLOWMILL_DATABASE_URL"] = await fresh_database(DB_NAME)
    log = home / "serve.log"
    async with process(["serve", "--port", str(port), "--no-scheduler"], env, log) as proc:
        key = await wait_up(f"http://127.0.0.1:{port}", log)
        yield proc, key


async def wait_up(url: str, log: Path) -> str:
    """The API key ``serve`` prints, once it answers (two minutes: the machine may be
    shared and slow to start a process)."""
    deadline = time.monotonic() + 120
    async with httpx.AsyncClient() as c:
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.TransportError):
                if (await c.get(f"{url}/health")).status_code == 200:
                    break
            await asyncio.sleep(0.1)  # polling a starting process: the bench's own wait
        else:
            raise SystemExit(f"serve did not come up; see {log}")
    for _ in range(100):
        match = re.search(r"API key: (\S+)", log.read_text())
        if match is not None:
            return match.group(1)
        await asyncio.sleep(0.1)  # the key is printed just after the port opens
    raise SystemExit(f"no API key printed; see {log}")


async def ended(api: httpx.AsyncClient, execution_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        body: dict[str, Any] = (await api.get(f"/api/executions/{execution_id}")).json()
        if body.get("status") in ("succeeded", "failed", "cancelled"):
            return body
        await asyncio.sleep(0.05)  # polling the API: the bench's own wait
    raise SystemExit(f"execution {execution_id} did not end")


SECRET = "bench-payload-secret-0123456789"


async def run_webhook(
    api: httpx.AsyncClient, base: str, body: bytes, small: bytes, touch: bool, signed: bool
) -> str:
    wf = (await api.post("/api/workflows", json=webhook_workflow(touch))).json()["id"]
    if signed:
        signed_hook = {"workflow_id": wf, "node_id": "in", "provider": "hmac", "secret": SECRET}
        hook = await api.post("/api/webhooks", json=signed_hook)
        hook.raise_for_status()
        hook_id = hook.json()["id"]
    else:
        hook_id = await unverified_webhook(api, wf, "in")
    url = f"{base}/webhooks/{hook_id}/{'hmac' if signed else 'none'}"

    async def send(data: bytes) -> str:
        headers = {"Content-Type": "application/json"}
        if signed:
            headers["X-Signature"] = hmac.new(SECRET.encode(), data, hashlib.sha256).hexdigest()
        async with httpx.AsyncClient(timeout=600) as c:
            r = await c.post(url, content=data, headers=headers)
        r.raise_for_status()
        event = r.json()["event_id"]
        for _ in range(6000):
            page = (await api.get(f"/api/webhooks/{hook_id}/events")).json()
            item = next((i for i in page["items"] if i["id"] == event), None)
            if item and item["execution_ids"]:
                return str(item["execution_ids"][0])
            await asyncio.sleep(0.05)  # polling the API: the bench's own wait
        raise SystemExit("webhook event never started an execution")

    await ended(api, await send(small))  # warm up
    return await send(body)


async def run_download(api: httpx.AsyncClient, file_port: int, path: str, warm: str) -> str:
    async def start(p: str) -> str:
        wf = (await api.post("/api/workflows", json=download_workflow(
            f"http://127.0.0.1:{file_port}{p}"))).json()["id"]  # fmt: skip
        r = await api.post(f"/api/workflows/{wf}/execute", json={})
        r.raise_for_status()
        return str(r.json()["execution_id"])

    await ended(api, await start(warm))
    return await start(path)


async def measure(
    layout: str, scenario: str, body: bytes, small: bytes, file_port: int, tmp: Path
) -> list[Any]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {"FLOWMILL_BLOB_STORE": "off"} if scenario == "reference" else {}
    async with (
        server(layout, tmp, port, **env) as (proc, key),
        httpx.AsyncClient(
            base_url=base, headers={"Authorization": f"Bearer {key}"}, timeout=600
        ) as api,
    ):
        # warm-up runs inside run_*; the peak is reset just before the payload
        started = time.monotonic()
        if scenario == "download":
            await ended(api, await run_download(api, file_port, "/small", "/small"))
            baseline, _ = memory(proc.pid)
            Path(f"/proc/{proc.pid}/clear_refs").write_text("5")
            started = time.monotonic()
            execution = await run_download(api, file_port, "/big", "/small")
        else:
            touch, signed = scenario == "touched", scenario == "signed"
            # the first call warms up; its second payload is the measured one
            execution = await run_webhook(api, base, small, small, touch, signed)
            await ended(api, execution)
            baseline, _ = memory(proc.pid)
            Path(f"/proc/{proc.pid}/clear_refs").write_text("5")
            started = time.monotonic()
            execution = await run_webhook(api, base, body, small, touch, signed)
        result = await ended(api, execution)
        seconds = time.monotonic() - started
        _, peak = memory(proc.pid)
    size = len(body)
    status = result["status"]
    return [
        {"sqlite": "embedded SQLite", "postgres": "PostgreSQL"}[layout],
        scenario,
        f"{size / MB:.1f}",
        f"{baseline / MB:.0f}",
        f"{peak / MB:.0f}",
        f"{peak / size:.2f}",
        f"{(peak - baseline) / size:.2f}",
        f"{seconds:.1f}",
        status,
    ]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mb", type=float, default=50)
    parser.add_argument("--layouts", default="sqlite,postgres")
    parser.add_argument("--signed", action="store_true", help="add the signed webhook row")
    parser.add_argument("--touched", action="store_true", help="add the touched row")
    parser.add_argument("--reference", action="store_true", help="add the blobs-off row")
    args = parser.parse_args()
    body = payload(int(args.mb * MB))
    small = payload(4096)
    tmp = Path(tempfile.mkdtemp(prefix="fm-bench-payloads-"))
    scenarios = ["webhook", "download"]
    if args.signed:
        scenarios.append("signed")
    if args.touched:
        scenarios.append("touched")
    if args.reference:
        scenarios.append("reference")
    rows = []
    with file_server({"/big": body, "/small": small}) as file_port:
        for layout in args.layouts.split(","):
            for scenario in scenarios:
                row = await measure(layout, scenario, body, small, file_port, tmp)
                print(" | ".join(str(v) for v in row), flush=True)  # partial results survive
                rows.append(row)
    load = os.getloadavg()[0]
    print_table(
        f"Large payloads through five nodes, server peak RSS ({os.cpu_count()} CPUs, "
        f"load {load:.1f}); target: peak under 3x the payload",
        ["layout", "flow", "payload MB", "warm RSS MB", "peak RSS MB", "peak / payload",
         "added / payload", "time (s)", "status"],
        rows,
    )  # fmt: skip


if __name__ == "__main__":
    asyncio.run(main())

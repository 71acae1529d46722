"""The API in tests: in-process (httpx over ASGI) or served over loopback HTTP (uvicorn
in the test's event loop), on a real database, with tenants ``tenant-a`` and
``tenant-b`` and a key for each.

The canonical fixtures live in ``tests/conftest.py``: ``api`` (in-process on a copy of
a migrated SQLite file), ``api_each_db`` (in-process on SQLite and PostgreSQL) and
``live`` (over loopback HTTP on SQLite and PostgreSQL); ``@pytest.mark.api_settings(
worker=False, **settings)`` changes what they open. ``open_api`` and ``live_api`` are
for tests that need a special setup or more than one.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from flowmill.api.app import build_context, close_app, create_app
from flowmill.api.deps import ApiContext
from flowmill.api.server import _Server
from flowmill.config import Settings
from flowmill.runtime import Runtime, open_runtime
from flowmill.testing import eventually, free_port

ROOT = Path(__file__).resolve().parents[1]
SEED = ROOT / "examples" / "seed-webhook-test.json"
KEYS = "k1:" + "A" * 43 + "="  # a fixed 32-byte test key
TENANTS = ("tenant-a", "tenant-b")
ENDED = ("succeeded", "failed", "cancelled")

# The seed's 3-node workflow with its `function` node replaced by a mapping `transform`
# (the JavaScript sandbox is built on another branch).
THREE_NODES: dict[str, Any] = {
    "name": "Test Workflow",
    "description": "A simple test workflow",
    "tenant_id": "test-client",
    "nodes": [
        {
            "id": "trigger-1",
            "name": "Webhook Trigger",
            "type": "trigger",
            "config": {"triggerType": "webhook", "actionType": "test"},
        },
        {
            "id": "process-1",
            "name": "Process Data",
            "type": "transform",
            "config": {"mapping": {"result": "{{data.message}} processed"}},
        },
        {
            "id": "response-1",
            "name": "Send Response",
            "type": "response",
            "config": {"template": "The processed result is: {{result}}"},
        },
    ],
    "edges": [
        {"source": "trigger-1", "target": "process-1"},
        {"source": "process-1", "target": "response-1"},
    ],
    "tags": ["test"],
}

FAILING: dict[str, Any] = {
    "name": "Fails at the end",
    "nodes": [
        {"id": "t", "type": "trigger"},
        {"id": "a", "type": "transform", "config": {"mapping": {"x": "{{data.x}}"}}},
        {"id": "boom", "type": "fail", "config": {"message": "no"}},
    ],
    "edges": [{"source": "t", "target": "a"}, {"source": "a", "target": "boom"}],
}

WAITING: dict[str, Any] = {
    "name": "Waits an hour",
    "nodes": [
        {"id": "t", "type": "trigger"},
        {"id": "pause", "type": "delay", "config": {"ms": 3_600_000}},
    ],
    "edges": [{"source": "t", "target": "pause"}],
}


@dataclass
class Api:
    """The app, its parts and a client per tenant."""

    runtime: Runtime
    ctx: ApiContext
    app: Any
    a: httpx.AsyncClient  # tenant "tenant-a"
    b: httpx.AsyncClient  # tenant "tenant-b"
    anon: httpx.AsyncClient  # no credentials

    async def workflow(self, doc: dict[str, Any] | None = None, *, publish: bool = True) -> str:
        """Create (and publish) a workflow as tenant A; return its id."""
        r = await self.a.post("/api/workflows", json={**(doc or THREE_NODES)})
        assert r.status_code == 201, r.text
        wf_id: str = r.json()["id"]
        if publish:
            assert (await self.a.post(f"/api/workflows/{wf_id}/publish")).status_code == 200
        return wf_id

    async def run(self, wf_id: str, data: Any = None, wait: float = 10) -> dict[str, Any]:
        """Execute as tenant A and wait for the end."""
        r = await self.a.post(
            f"/api/workflows/{wf_id}/execute", params={"wait": wait}, json={"input": data}
        )
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body


def client(app: Any, key: str | None) -> httpx.AsyncClient:
    """An httpx client calling the app in-process."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://flowmill.test", headers=headers
    )


@contextlib.asynccontextmanager
async def open_api(url: str, *, worker: bool = True, **settings: Any) -> AsyncIterator[Api]:
    """The API on the database at ``url`` with tenants ``tenant-a`` and ``tenant-b``."""
    options: dict[str, Any] = {"database_url": url, "sweep_interval_s": 0.05, **settings}
    async with open_runtime(Settings(**options)) as rt:
        ctx = build_context(rt)
        app = create_app(rt, context=ctx)
        keys = await _tenants(ctx, TENANTS)
        async with contextlib.AsyncExitStack() as stack:
            if worker:
                await stack.enter_async_context(rt.engine.running())
            a = await stack.enter_async_context(client(app, keys["tenant-a"]))
            b = await stack.enter_async_context(client(app, keys["tenant-b"]))
            anon = await stack.enter_async_context(client(app, None))
            yield Api(rt, ctx, app, a, b, anon)


async def _tenants(ctx: ApiContext, tenants: tuple[str, ...]) -> dict[str, str]:
    keys = {}
    for tenant in tenants:
        await ctx.tenants.ensure(tenant)
        keys[tenant] = (await ctx.keys.create(tenant, "test")).secret
    return keys


# httpx's default is 5 s a read: a test's first request to a fresh server (a workflow
# compiled, the first PostgreSQL connections) took longer than that when CI ran beside
# bench/distributed.py (tests/under_load.py). A test that waits on purpose sets its own.
LIVE_TIMEOUT = httpx.Timeout(30.0)


@dataclass
class Live:
    """The API served over loopback: what webhook senders and other processes call."""

    runtime: Runtime
    url: str
    http: httpx.AsyncClient  # no credentials: what a webhook sender is
    keys: dict[str, str]
    clients: list[httpx.AsyncClient] = field(default_factory=list)
    app: Any = None

    def as_tenant(self, tenant: str) -> httpx.AsyncClient:
        """A client authenticated as ``tenant`` (closed with the server)."""
        client = httpx.AsyncClient(
            base_url=self.url,
            headers={"Authorization": f"Bearer {self.keys[tenant]}"},
            timeout=LIVE_TIMEOUT,
        )
        self.clients.append(client)
        return client

    async def wait_event(
        self,
        client: httpx.AsyncClient,
        webhook_id: str,
        event_id: str,
        done: tuple[str, ...] = ("processed", "no_match", "failed"),
    ) -> dict[str, Any]:
        """The webhook event once its status is one of ``done``."""

        async def finished() -> dict[str, Any]:
            page = (await client.get(f"/api/webhooks/{webhook_id}/events")).json()
            [item] = [i for i in page["items"] if i["id"] == event_id] or [None]
            assert item is not None and item["status"] in done, item
            return dict(item)

        return await eventually(finished, 15, f"webhook event {event_id} in {done}")

    async def execution(self, client: httpx.AsyncClient, execution_id: str) -> dict[str, Any]:
        """The execution once it has ended."""

        async def ended() -> dict[str, Any]:
            body = (await client.get(f"/api/executions/{execution_id}")).json()
            assert body["status"] in ENDED, body
            return dict(body)

        return await eventually(ended, 15, f"execution {execution_id} ending")


@contextlib.asynccontextmanager
async def live_api(
    url: str,
    *,
    tenants: tuple[str, ...] = TENANTS,
    worker: bool = True,
    scheduler: bool = False,
    **settings: Any,
) -> AsyncIterator[Live]:
    """The API on the database at ``url``, served on a free loopback port."""
    options: dict[str, Any] = {
        "database_url": url,
        "secret_keys": KEYS,
        "sweep_interval_s": 0.05,
        "shutdown_grace_s": 1,
        "webhook_cache_s": 0,
        **settings,
    }
    async with open_runtime(Settings(**options)) as rt:
        ctx = build_context(rt)
        app = create_app(rt, context=ctx)
        keys = await _tenants(ctx, tenants)
        port = free_port()
        server = _Server(uvicorn.Config(app, port=port, log_level="error", lifespan="off"))
        async with contextlib.AsyncExitStack() as stack:
            if worker:
                await stack.enter_async_context(rt.engine.running())
            if scheduler:
                await stack.enter_async_context(rt.triggers.service.running())
            serving = asyncio.create_task(server.serve())
            try:
                await eventually(lambda: server.started, 30, "uvicorn serving")
                base = f"http://127.0.0.1:{port}"
                async with httpx.AsyncClient(base_url=base, timeout=LIVE_TIMEOUT) as http:
                    live = Live(rt, base, http, keys, app=app)
                    try:
                        yield live
                    finally:
                        for c in live.clients:
                            await c.aclose()
            finally:
                server.should_exit = True
                await serving
                await close_app(app)

"""The API in-process for tests: a runtime on a real database, the app over it, and
httpx clients authenticated as two tenants."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx

from flowmill.api.app import build_context, create_app
from flowmill.api.deps import ApiContext
from flowmill.config import Settings
from flowmill.runtime import Runtime, open_runtime

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
        keys = {}
        for tenant in ("tenant-a", "tenant-b"):
            await ctx.tenants.ensure(tenant)
            keys[tenant] = (await ctx.keys.create(tenant, "test")).secret
        async with contextlib.AsyncExitStack() as stack:
            if worker:
                await stack.enter_async_context(rt.engine.running())
            a = await stack.enter_async_context(client(app, keys["tenant-a"]))
            b = await stack.enter_async_context(client(app, keys["tenant-b"]))
            anon = await stack.enter_async_context(client(app, None))
            yield Api(rt, ctx, app, a, b, anon)

"""Webhooks over real HTTP: the API on a loopback port (uvicorn in the test's loop),
a runtime on a real database, tenants with keys, and a signing helper."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from flowmill.api.app import build_context, close_app, create_app
from flowmill.api.server import _Server
from flowmill.config import Settings
from flowmill.runtime import Runtime, open_runtime

ROOT = Path(__file__).resolve().parents[1]
SEED = ROOT / "examples" / "seed-webhook-test.json"
KEYS = "k1:" + "A" * 43 + "="  # a fixed 32-byte test key


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def meta_signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def slack_headers(secret: str, body: bytes, ts: int) -> dict[str, str]:
    base = b"v0:" + str(ts).encode() + b":" + body
    sig = "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": str(ts), "X-Slack-Signature": sig}


@dataclass
class Live:
    """The API served over loopback."""

    runtime: Runtime
    url: str
    http: httpx.AsyncClient  # no credentials: what a webhook sender is
    keys: dict[str, str]
    clients: list[httpx.AsyncClient]
    app: Any = None

    def as_tenant(self, tenant: str) -> httpx.AsyncClient:
        """A client authenticated as ``tenant`` (closed with the server)."""
        client = httpx.AsyncClient(
            base_url=self.url, headers={"Authorization": f"Bearer {self.keys[tenant]}"}
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
        for _ in range(300):
            page = (await client.get(f"/api/webhooks/{webhook_id}/events")).json()
            for item in page["items"]:
                if item["id"] == event_id and item["status"] in done:
                    return dict(item)
            await asyncio.sleep(0.02)
        raise AssertionError(f"event {event_id} not done: {page}")

    async def execution(self, client: httpx.AsyncClient, execution_id: str) -> dict[str, Any]:
        for _ in range(500):
            body = (await client.get(f"/api/executions/{execution_id}")).json()
            if body["status"] in ("succeeded", "failed", "cancelled"):
                return dict(body)
            await asyncio.sleep(0.02)
        raise AssertionError(f"execution {execution_id} did not end: {body}")


@contextlib.asynccontextmanager
async def live_api(
    url: str,
    *,
    tenants: tuple[str, ...] = ("tenant-a", "tenant-b"),
    worker: bool = True,
    scheduler: bool = False,
    **settings: Any,
) -> AsyncIterator[Live]:
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
        keys = {}
        for tenant in tenants:
            await ctx.tenants.ensure(tenant)
            keys[tenant] = (await ctx.keys.create(tenant, "test")).secret
        port = free_port()
        server = _Server(uvicorn.Config(app, port=port, log_level="error", lifespan="off"))
        async with contextlib.AsyncExitStack() as stack:
            if worker:
                await stack.enter_async_context(rt.engine.running())
            if scheduler:
                await stack.enter_async_context(rt.triggers.service.running())
            serving = asyncio.create_task(server.serve())
            try:
                while not server.started:
                    await asyncio.sleep(0.01)
                base = f"http://127.0.0.1:{port}"
                async with httpx.AsyncClient(base_url=base) as http:
                    live = Live(rt, base, http, keys, [], app)
                    try:
                        yield live
                    finally:
                        for c in live.clients:
                            await c.aclose()
            finally:
                server.should_exit = True
                await serving
                await close_app(app)

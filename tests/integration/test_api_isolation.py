"""Tenant isolation: tenant B, with its own valid key, tries every route of the app on
tenant A's objects. Each answers 404 and nothing of A's changes. On SQLite and
PostgreSQL.

The routes come from the app itself, and every route must have an entry in ``CASES``:
a route added without one fails ``test_api_isolation_every_route_has_a_case``. Adding a
route is one line here, saying what B tries:

- ``Owned(...)``: the route names one of A's objects (in the path or the body); B must
  get 404 ``not_found``. Path parameters are filled with A's objects by name
  (``workflow_id``, ``execution_id``, ...); ``use=`` picks another one, e.g. the
  execution still running (``{"execution_id": "live"}``).
- ``Listed()``: a list; B's answer must hold none of A's ids.
- ``CallersOwn(...)``: acts on the caller's own tenant (creating its own things); B
  calls it, and A's objects must not change.
- ``NotTenantScoped("why")``: no tenant in it (health, docs, webhook ingress, which
  senders call without an API key and providers verify).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest

from flowmill.api.app import build_app
from flowmill.config import Settings
from flowmill.testing import eventually
from tests.api_support import FAILING, KEYS, THREE_NODES, WAITING, Api

Ids = Mapping[str, Any]
Body = Callable[[Ids], Any] | None


@dataclass(frozen=True)
class Owned:
    """Names one of A's objects: B gets 404 and A's objects do not change."""

    body: Body = None
    query: str = ""
    use: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Listed:
    """A list: B's answer holds none of A's ids."""

    query: str = ""


@dataclass(frozen=True)
class CallersOwn:
    """Acts on the caller's own tenant only."""

    body: Body = None


@dataclass(frozen=True)
class NotTenantScoped:
    """No tenant's object in it."""

    why: str


@dataclass(frozen=True)
class Streamed:
    """A stream that stays open: what B receives in its first second holds none of A's
    ids."""

    query: str = ""


Case = Owned | Listed | CallersOwn | NotTenantScoped | Streamed
INGRESS = NotTenantScoped("webhook ingress: no API key, the provider's verification decides")
IMPORT = NotTenantScoped("405: /api/workflows/import is no workflow id")
RESUME = NotTenantScoped("resume URL: no API key, its HMAC token names the execution")
VALIDATE = NotTenantScoped("405: /api/workflows/validate is no workflow id")
ADMIN = NotTenantScoped("the admin API takes FLOWMILL_ADMIN_KEY, never a tenant's key")
HIJACKED = {**THREE_NODES, "name": "hijacked"}

CASES: dict[tuple[str, str], Case | tuple[Case, ...]] = {
    ("GET", "/openapi.json"): NotTenantScoped("the API's description"),
    ("GET", "/docs"): NotTenantScoped("the API's documentation page"),
    ("GET", "/health"): NotTenantScoped("liveness"),
    ("GET", "/ready"): NotTenantScoped("readiness"),
    ("GET", "/api/tenant"): CallersOwn(),
    ("GET", "/api/workflows"): Listed(),
    ("POST", "/api/workflows/validate"): CallersOwn(lambda ids: THREE_NODES),
    ("GET", "/api/node-types"): NotTenantScoped("the node types installed, alike for all"),
    ("POST", "/api/workflows"): CallersOwn(lambda ids: THREE_NODES),
    ("POST", "/api/workflows/import"): CallersOwn(lambda ids: THREE_NODES),
    ("GET", "/api/workflows/{workflow_id}"): Owned(),
    ("PUT", "/api/workflows/{workflow_id}"): Owned(lambda ids: HIJACKED),
    ("PATCH", "/api/workflows/{workflow_id}"): Owned(lambda ids: {"name": "hijacked"}),
    ("DELETE", "/api/workflows/{workflow_id}"): Owned(),
    ("POST", "/api/workflows/{workflow_id}/publish"): Owned(),
    ("POST", "/api/workflows/{workflow_id}/unpublish"): Owned(),
    ("GET", "/api/workflows/{workflow_id}/export"): Owned(),
    ("GET", "/api/workflows/{workflow_id}/versions"): Owned(),
    ("POST", "/api/workflows/{workflow_id}/versions"): Owned(lambda ids: {"definition": HIJACKED}),
    ("GET", "/api/workflows/{workflow_id}/versions/{version}"): (
        Owned(),
        Owned(use={"version": "version_id"}),
    ),
    ("POST", "/api/workflows/{workflow_id}/versions/{version}/publish"): (
        Owned(),
        Owned(use={"version": "version_id"}),
    ),
    ("GET", "/api/workflows/{workflow_id}/versions/{a}/diff/{b}"): Owned(),
    ("POST", "/api/workflows/{workflow_id}/execute"): (
        Owned(lambda ids: {"input": {"message": "b"}}),
        Owned(lambda ids: {"input": {}, "version": 1}, query="?wait=1"),
    ),
    ("GET", "/api/workflows/{workflow_id}/executions"): Owned(),
    ("GET", "/api/executions"): (Listed(), Listed("?workflow_id={workflow_id}")),
    ("GET", "/api/executions/{execution_id}"): Owned(),
    ("GET", "/api/executions/{execution_id}/logs"): Owned(),
    ("GET", "/api/executions/{execution_id}/children"): Owned(),
    ("POST", "/api/executions/{execution_id}/signals/{name}"): Owned(
        # the name is any valid one: a workflow id will do
        body=lambda _ids: {"approved": True},
        use={"execution_id": "live", "name": "workflow_id"},
    ),
    ("GET", "/api/resume/{token}"): RESUME,
    ("POST", "/api/resume/{token}"): RESUME,
    ("GET", "/api/executions/{execution_id}/events"): Owned(),
    ("POST", "/api/executions/{execution_id}/cancel"): Owned(use={"execution_id": "live"}),
    ("POST", "/api/executions/{execution_id}/retry"): (
        Owned(lambda ids: {}, use={"execution_id": "failed"}),
        Owned(lambda ids: {"from_start": True}),
    ),
    ("GET", "/api/keys"): Listed(),
    ("POST", "/api/keys"): CallersOwn(lambda ids: {"name": "b's own"}),
    ("DELETE", "/api/keys/{key_id}"): Owned(),
    ("GET", "/api/webhooks"): Listed(),
    ("POST", "/api/webhooks"): Owned(lambda ids: ids["hook_body"]),
    ("GET", "/api/webhooks/{webhook_id}"): Owned(),
    ("POST", "/api/webhooks/{webhook_id}"): INGRESS,
    ("DELETE", "/api/webhooks/{webhook_id}"): Owned(),
    ("GET", "/api/webhooks/{webhook_id}/events"): Owned(),
    ("GET", "/api/triggers"): Listed(),
    ("GET", "/api/triggers/{trigger_id}"): Owned(),
    ("PATCH", "/api/triggers/{trigger_id}"): (
        Owned(lambda ids: {"enabled": False}),
        Owned(lambda ids: {"enabled": False}, use={"trigger_id": "route"}),
    ),
    ("GET", "/api/triggers/{trigger_id}/next_runs"): Owned(),
    ("POST", "/api/events"): CallersOwn(lambda ids: {"type": "order.created", "data": {}}),
    ("POST", "/webhooks/{webhook_id}/{provider}"): INGRESS,
    ("GET", "/webhooks/{webhook_id}/{provider}"): INGRESS,
    ("POST", "/webhooks/{client_id}/{trigger_type}/{action_type}"): INGRESS,
    ("GET", "/webhooks/{client_id}/{trigger_type}/{action_type}"): INGRESS,
    # versions by id (seed 002), start nodes and job status (seed 004)
    ("GET", "/api/workflows/{workflow_id}/triggers"): Owned(),
    ("POST", "/api/workflows/{workflow_id}/triggers"): Owned(lambda ids: {"type": "webhook"}),
    ("GET", "/api/executions/{execution_id}/jobs"): Owned(),
    ("GET", "/api/jobs/{job_id}"): Owned(),
    ("GET", "/api/workflows/import"): IMPORT,
    ("PUT", "/api/workflows/import"): IMPORT,
    ("PATCH", "/api/workflows/import"): IMPORT,
    ("DELETE", "/api/workflows/import"): IMPORT,
    ("GET", "/api/workflows/validate"): VALIDATE,
    ("PUT", "/api/workflows/validate"): VALIDATE,
    ("PATCH", "/api/workflows/validate"): VALIDATE,
    ("DELETE", "/api/workflows/validate"): VALIDATE,
    # seed 003's paths: the same handlers as /api
    ("GET", "/workflows"): Listed(),
    ("POST", "/workflows"): CallersOwn(lambda ids: THREE_NODES),
    ("GET", "/workflows/{workflow_id}"): Owned(),
    ("PUT", "/workflows/{workflow_id}"): Owned(lambda ids: {"name": "hijacked"}),
    ("DELETE", "/workflows/{workflow_id}"): Owned(),
    ("POST", "/workflows/{workflow_id}/trigger"): Owned(lambda ids: {"input": {"message": "b"}}),
    ("GET", "/workflows/{workflow_id}/executions"): Owned(),
    ("GET", "/workflows/executions/history"): Listed(),
    ("GET", "/workflows/executions/{execution_id}"): Owned(),
    # credentials, agents, channels, conversations
    ("GET", "/api/credentials"): Listed(),
    ("POST", "/api/credentials"): CallersOwn(
        lambda ids: {"name": "b-own", "type": "bearer", "data": {"token": "b-token"}}
    ),
    ("GET", "/api/credentials/{credential_id}"): Owned(),
    ("PATCH", "/api/credentials/{credential_id}"): Owned(lambda ids: {"name": "hijacked"}),
    ("DELETE", "/api/credentials/{credential_id}"): Owned(),
    ("POST", "/api/credentials/{credential_id}/rotate"): Owned(
        lambda ids: {"data": {"token": "stolen"}}
    ),
    ("GET", "/api/agents"): Listed(),
    ("POST", "/api/agents"): CallersOwn(lambda ids: {"name": "b-agent", "model": "m"}),
    ("GET", "/api/agents/{agent_id}"): Owned(),
    ("PATCH", "/api/agents/{agent_id}"): Owned(lambda ids: {"name": "hijacked"}),
    ("DELETE", "/api/agents/{agent_id}"): Owned(),
    ("GET", "/api/channels"): Listed(),
    ("POST", "/api/channels"): CallersOwn(lambda ids: {"name": "b-ig", "account_id": "b-acct"}),
    ("GET", "/api/channels/{channel_id}"): Owned(),
    ("PATCH", "/api/channels/{channel_id}"): Owned(lambda ids: {"name": "hijacked"}),
    ("DELETE", "/api/channels/{channel_id}"): Owned(),
    ("GET", "/api/conversations/{conversation_id}"): Owned(),
    # the read side
    ("GET", "/api/analytics/workflows"): Listed(),
    ("GET", "/api/analytics/workflows/{workflow_id}"): Owned(),
    ("GET", "/api/analytics/nodes"): Listed(),
    ("GET", "/api/analytics/webhooks"): Listed(),
    ("GET", "/api/projections"): Listed(),
    ("GET", "/api/events"): Listed("?after=0"),
    ("GET", "/api/events/stream"): Streamed("?after=0"),
    ("GET", "/metrics"): NotTenantScoped("the process's metrics (no tenant label by default)"),
    # operations and quotas
    ("GET", "/api/queues"): Listed(),
    ("GET", "/api/tenant/quotas"): CallersOwn(),
    ("GET", "/api/admin/tenants/{tenant_id}/quotas"): ADMIN,
    # large payloads
    ("GET", "/api/blobs/{blob_id}"): Owned(),
    ("PATCH", "/api/admin/tenants/{tenant_id}/quotas"): ADMIN,
}


def app_routes(app: Any) -> set[tuple[str, str]]:
    """(method, path template) of every route of ``app`` (HEAD and static mounts aside)."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # FastAPI before routers were kept nested: the list is flat
        found: Iterable[Any] = app.routes
    else:
        found = iter_route_contexts(app.routes)
    return {
        (method, route.path)
        for route in found
        for method in getattr(route, "methods", None) or ()
        if method != "HEAD"
    }


def _cases(value: Case | tuple[Case, ...]) -> tuple[Case, ...]:
    return value if isinstance(value, tuple) else (value,)


def test_api_isolation_every_route_has_a_case() -> None:
    routes = app_routes(build_app(Settings()))
    missing = sorted(routes - CASES.keys())
    assert not missing, (
        "routes without a tenant-isolation case; add one line each to CASES in "
        f"tests/integration/test_api_isolation.py: {missing}"
    )
    stale = sorted(CASES.keys() - routes)
    assert not stale, f"CASES names routes the app does not have: {stale}"


async def _snapshot(api: Api, ids: Ids) -> dict[str, Any]:
    wf = ids["workflow_id"]
    executions = [ids[k] for k in ("execution_id", "failed", "live")]
    workflow = (await api.a.get(f"/api/workflows/{wf}")).json()
    versions = (await api.a.get(f"/api/workflows/{wf}/versions")).json()
    runs = [(await api.a.get(f"/api/executions/{e}")).json() for e in executions]
    listed = (await api.a.get("/api/executions")).json()
    keys = (await api.a.get("/api/keys")).json()
    for k in keys["items"]:
        k.pop("last_used_at")
    hook = (await api.a.get(f"/api/webhooks/{ids['webhook_id']}")).json()
    triggers = (await api.a.get("/api/triggers")).json()
    return {
        "wf": workflow,
        "versions": versions,
        "runs": runs,
        "list": listed,
        "keys": keys,
        "hook": hook,
        "triggers": triggers,
    }


async def _conversation_of_a(api: Api, conversation_id: str) -> None:
    """A turn of a conversation of A's (agents write them with their step's checkpoint)."""
    from datetime import UTC, datetime

    from flowmill.ids import uuid7
    from flowmill.store.tables import conversation_history

    row = {
        "id": uuid7(),
        "tenant_id": "tenant-a",
        "conversation_id": conversation_id,
        "role": "user",
        "content": "hello",
        "timestamp": datetime.now(UTC),
    }
    await api.runtime.db.write(lambda c: c.execute(conversation_history.insert().values(**row)))


async def _blob_of_a(api: Api, execution_id: str) -> str:
    """A stored large value of A's execution, which A itself can download."""
    from flowmill.blobs.store import Owner

    assert api.runtime.blobs is not None
    ref = await api.runtime.blobs.write_bytes(
        "tenant-a", Owner(execution_id=execution_id), b"a's payload", media_type="text/plain"
    )
    assert (await api.a.get(ref.url)).content == b"a's payload"
    return ref.id


async def _objects_of_a(api: Api) -> dict[str, Any]:
    """A's objects: a workflow run to its end, one failed, one waiting; a webhook."""
    wf = await api.workflow(THREE_NODES)
    bad = await api.workflow(FAILING)
    slow = await api.workflow(WAITING)
    done = (await api.run(wf, {"message": "a"}))["id"]
    failed = (await api.run(bad, {"x": 1}))["id"]
    live = (await api.a.post(f"/api/workflows/{slow}/execute", json={})).json()["execution_id"]

    async def parked() -> bool:
        return (await api.a.get(f"/api/executions/{live}")).json()["status"] == "waiting"

    await eventually(parked, 15, "A's slow execution waiting on its delay")
    key_id = (await api.a.get("/api/keys")).json()["items"][0]["id"]
    hook_body = {
        "workflow_id": wf,
        "node_id": "trigger-1",
        "provider": "none",
        "config": {"allow_unverified": True},
    }
    hook = (await api.a.post("/api/webhooks", json=hook_body)).json()["id"]
    # The seed-route trigger that publishing the workflow made, beside the webhook.
    listed = (await api.a.get("/api/triggers", params={"workflow_id": wf})).json()["items"]
    [route] = [t["id"] for t in listed if t["id"] != hook]
    version_id = (await api.a.get(f"/api/workflows/{wf}/versions/1")).json()["id"]
    job = (await api.a.get(f"/api/executions/{done}/jobs")).json()["items"][0]["id"]
    credential = await api.a.post(
        "/api/credentials", json={"name": "a-page", "type": "bearer", "data": {"token": "a-t"}}
    )
    agent = await api.a.post("/api/agents", json={"name": "a-agent", "model": "m"})
    channel = await api.a.post(
        "/api/channels",
        json={"name": "a-ig", "account_id": "a-acct", "credential": credential.json()["id"]},
    )
    for r in (credential, agent, channel):
        assert r.status_code == 201, r.text
    await _conversation_of_a(api, "a-conversation")
    blob = await _blob_of_a(api, done)
    return {
        "blob_id": blob,
        "version_id": version_id,
        "job_id": job,
        "credential_id": credential.json()["id"],
        "agent_id": agent.json()["id"],
        "channel_id": channel.json()["id"],
        "conversation_id": "a-conversation",
        "tenant_id": "tenant-a",
        "workflow_id": wf,
        "execution_id": done,
        "failed": failed,
        "live": live,
        "version": 1,
        "a": 1,
        "b": 1,
        "key_id": key_id,
        "webhook_id": hook,
        "trigger_id": hook,
        "route": route,
        "hook_body": hook_body,
    }


async def _first_second_of(api: Api, path: str) -> str:
    """What B's stream at ``path`` sends in its first second."""
    chunks: list[str] = []

    async def read() -> None:
        async with api.b.stream("GET", path) as r:
            assert r.status_code == 200, r.status_code
            async for text in r.aiter_text():
                chunks.append(text)

    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(read(), 1.0)
    return "".join(chunks)


@pytest.mark.api_settings(secret_keys=KEYS)  # credentials need keys on PostgreSQL
async def test_api_isolation_every_route_across_tenants_is_404(api_each_db: Api) -> None:
    api = api_each_db
    ids = await _objects_of_a(api)
    before = await _snapshot(api, ids)
    a_ids = {v for k, v in ids.items() if isinstance(v, str)}
    tried = 0
    for (method, template), value in sorted(CASES.items()):
        for case in _cases(value):
            if isinstance(case, NotTenantScoped):
                continue
            params = {
                **ids,
                **{name: ids[other] for name, other in getattr(case, "use", {}).items()},
            }
            path = template.format(**params) + getattr(case, "query", "").format(**params)
            body = case.body(ids) if getattr(case, "body", None) is not None else None
            if isinstance(case, Streamed):
                received = await _first_second_of(api, path)
                assert not [i for i in a_ids if i in received], (path, received[:300])
                tried += 1
                continue
            try:
                # A stream of another tenant's events that opened would never end.
                r = await asyncio.wait_for(api.b.request(method, path, json=body), 20)
            except TimeoutError:
                raise AssertionError(f"{method} {path}: no answer in 20 s") from None
            what = (method, path, r.status_code, r.text[:300])
            if isinstance(case, Owned):
                assert r.status_code == 404, what
                assert r.json()["error"]["code"] == "not_found", what
            elif isinstance(case, Listed):
                assert r.status_code == 200, what
                assert not [i for i in a_ids if i in r.text], what
            else:
                assert r.status_code < 500, what
            tried += 1
    assert tried >= 40  # the table was walked, not skipped

    # Anything B started or changed would show in A's objects (starts and changes are
    # committed before their answers).
    after = await _snapshot(api, ids)
    assert after == before
    assert (await api.a.get("/api/tenant")).status_code == 200  # A's key still works

"""Channels over real HTTP (SQLite, PostgreSQL): ``/api/channels``, a Meta-signed
Instagram delivery matched to its channel by account id, the customer and channel as
execution metadata (filterable), echoes ignored, a channel's own workflow."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from tests.stubs_support import instagram_dm, meta_body
from tests.webhook_support import Live, live_api, meta_signature

APP_SECRET = "meta-app-secret-0123456789"
ACCOUNT = "17841400000001"


@pytest.fixture
async def live(database_url: str) -> AsyncIterator[Live]:
    async with live_api(database_url, sandbox_enabled=False) as served:
        yield served


def ig_workflow(name: str = "ig") -> dict[str, Any]:
    return {
        "name": name,
        "nodes": [
            {
                "id": "dm",
                "type": "trigger",
                "config": {
                    "triggerType": "instagram",
                    "actionType": "message",
                    "provider": "meta",
                    "secretCredential": "ig-app-secret",
                },
            },
            {"id": "seen", "type": "noop"},
        ],
        "edges": [{"source": "dm", "target": "seen"}],
    }


async def _publish(a: httpx.AsyncClient, doc: dict[str, Any]) -> str:
    r = await a.post("/api/workflows", json=doc)
    assert r.status_code == 201, r.text
    wf: str = r.json()["id"]
    assert (await a.post(f"/api/workflows/{wf}/publish")).status_code == 200
    return wf


async def _deliver(live: Live, payload: dict[str, Any], tenant: str = "tenant-a") -> httpx.Response:
    body = meta_body(payload)
    return await live.http.post(
        f"/webhooks/{tenant}/instagram/message",
        content=body,
        headers={
            "Content-Type": "application/json",
            "X-Hub-Signature-256": meta_signature(APP_SECRET, body),
        },
    )


async def _executions(a: httpx.AsyncClient, want: int, **query: str) -> list[dict[str, Any]]:
    for _ in range(400):
        items = (await a.get("/api/executions", params=query)).json()["items"]
        done = [i for i in items if i["status"] in ("succeeded", "failed")]
        if len(done) >= want:
            return done
        await __import__("asyncio").sleep(0.02)
    raise AssertionError(f"fewer than {want} executions: {items}")


async def _setup(live: Live) -> tuple[httpx.AsyncClient, str]:
    a = live.as_tenant("tenant-a")
    r = await a.post("/api/credentials", json={"name": "ig-app-secret", "type": "secret",
                                               "data": {"secret": APP_SECRET}})  # fmt: skip
    assert r.status_code == 201, r.text
    r = await a.post("/api/credentials", json={"name": "ig-page", "type": "bearer",
                                               "data": {"token": "EAAG-page"}})  # fmt: skip
    assert r.status_code == 201
    r = await a.post("/api/agents", json={"name": "ava", "model": "m"})
    assert r.status_code == 201
    agent_id = r.json()["id"]
    r = await a.post(
        "/api/channels",
        json={"name": "Rosa's Instagram", "account_id": ACCOUNT, "credential": "ig-page",
              "agent_id": agent_id},
    )  # fmt: skip
    assert r.status_code == 201, r.text
    return a, r.json()["id"]


async def test_channels_delivery_matched_by_account_becomes_execution_metadata(live: Live) -> None:
    a, channel_id = await _setup(live)
    await _publish(a, ig_workflow())
    for sender, mid in (("IGSID-1", "m1"), ("IGSID-2", "m2"), ("IGSID-1", "m3")):
        r = await _deliver(live, instagram_dm(ACCOUNT, sender, f"hello {mid}", mid))
        assert r.status_code == 200, r.text
    items = await _executions(a, 3)
    agent_id = (await a.get("/api/agents")).json()["items"][0]["id"]
    first = next(i for i in items if i["metadata"]["messageId"] == "m1")
    assert first["metadata"] == {
        "source": "instagram",
        "customerId": "IGSID-1",
        "clientId": channel_id,
        "channelId": channel_id,
        "accountId": ACCOUNT,
        "conversationId": f"{channel_id}:IGSID-1",
        "agentId": agent_id,
        "replyCredential": "ig-page",
        "text": "hello m1",
        "messageId": "m1",
    }
    only = await _executions(a, 2, customer_id="IGSID-1")
    assert sorted(i["metadata"]["messageId"] for i in only) == ["m1", "m3"]
    both = await _executions(a, 1, customer_id="IGSID-2", client_id=channel_id)
    assert [i["metadata"]["messageId"] for i in both] == ["m2"]
    r = await a.get("/api/executions", params={"client_id": "another-channel"})
    assert r.json()["items"] == []
    detail = (await a.get(f"/api/executions/{first['id']}")).json()
    assert detail["metadata"]["customerId"] == "IGSID-1"
    # another tenant sees none of it
    b = live.as_tenant("tenant-b")
    assert (await b.get("/api/executions", params={"customer_id": "IGSID-1"})).json()["items"] == []
    assert (await b.get(f"/api/channels/{channel_id}")).status_code == 404


async def test_channels_echo_starts_nothing_and_unknown_account_has_no_channel(live: Live) -> None:
    a, _ = await _setup(live)
    await _publish(a, ig_workflow())
    r = await _deliver(live, instagram_dm(ACCOUNT, ACCOUNT, "our own reply", "e1", echo=True))
    assert r.status_code == 200
    r = await _deliver(live, instagram_dm("999", "IGSID-9", "hi", "u1"))
    assert r.status_code == 200
    (only,) = await _executions(a, 1)
    assert only["metadata"]["customerId"] == "IGSID-9" and "clientId" not in only["metadata"]


async def test_channels_with_a_workflow_start_only_it(live: Live) -> None:
    a, channel_id = await _setup(live)
    mine = await _publish(a, ig_workflow("mine"))
    await _publish(a, ig_workflow("other"))
    r = await a.patch(f"/api/channels/{channel_id}", json={"workflow_id": mine})
    assert r.status_code == 200 and r.json()["workflow_id"] == mine
    await _deliver(live, instagram_dm(ACCOUNT, "IGSID-1", "hi", "w1"))
    (only,) = await _executions(a, 1)
    assert only["workflow_id"] == mine


async def test_channels_api_validates_and_scopes(live: Live) -> None:
    a, channel_id = await _setup(live)
    b = live.as_tenant("tenant-b")
    r = await a.post("/api/channels", json={"name": "dup", "account_id": ACCOUNT})
    assert r.status_code == 409 and r.json()["error"]["details"][0]["field"] == "body.account_id"
    other_agent = (await b.post("/api/agents", json={"name": "x", "model": "m"})).json()["id"]
    r = await a.post(
        "/api/channels", json={"name": "n", "account_id": "2", "agent_id": other_agent}
    )
    assert r.status_code == 422 and r.json()["error"]["details"][0]["field"] == "body.agent_id"
    r = await a.post("/api/channels", json={"name": "n", "account_id": "2", "credential": "nope"})
    assert r.status_code == 422
    r = await a.post("/api/channels", json={"name": "n", "account_id": "has space"})
    assert r.status_code == 422
    assert [c["id"] for c in (await a.get("/api/channels")).json()["items"]] == [channel_id]
    assert (await b.delete(f"/api/channels/{channel_id}")).status_code == 404
    assert (await a.delete(f"/api/channels/{channel_id}")).status_code == 204
    assert (await a.get(f"/api/channels/{channel_id}")).status_code == 404

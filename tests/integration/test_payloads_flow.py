"""Large payloads end to end, over real HTTP, on SQLite and PostgreSQL: a webhook body and
an HTTP download above the blob threshold pass through five nodes by reference, a path
into them loads them, API answers show a reference with a download link, and retention
deletes the blobs with their execution."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from flowmill.blobs.ref import BLOB_KEY
from flowmill.retention.policy import RetentionPolicies, RetentionPolicy
from flowmill.retention.pruner import Pruner
from flowmill.store.tables import blobs
from flowmill.testing import FakeClock
from flowmill.testkit.servers import Seen, StubHandler, stub_api
from tests.api_support import Live
from tests.webhook_support import unverified_webhook

THRESHOLD = 64 * 1024
BIG = {"items": [{"id": i, "name": f"item-{i}", "pad": "x" * 40} for i in range(5000)]}
BIG_BYTES = json.dumps(BIG).encode()  # ~330 KB: over the threshold


def _five_nodes(first: dict[str, Any]) -> dict[str, Any]:
    """``first`` (a trigger or an HTTP download), then four nodes: three pass the value on
    by reference, one reads into it, the last answers with what was read."""
    return {
        "name": "big payload",
        "status": "active",
        "nodes": [
            first,
            {"id": "pass1", "type": "transform", "config": {"mapping": {"doc": "{{doc}}"}}},
            {
                "id": "touch",
                "type": "transform",
                "config": {
                    "mapping": {
                        "doc": "{{doc}}",
                        "second": "{{doc.items[1].name}}",
                        "count": "{{doc.items.length}}",
                    }
                },
            },
            {
                "id": "pass2",
                "type": "transform",
                "config": {
                    "mapping": {"doc": "{{doc}}", "second": "{{second}}", "count": "{{count}}"}
                },
            },
            {
                "id": "answer",
                "type": "transform",
                "config": {"mapping": {"doc": "{{doc}}", "said": "{{second}} of {{count}}"}},
            },
        ],
        "edges": [
            {"source": first["id"], "target": "pass1"},
            {"source": "pass1", "target": "touch"},
            {"source": "touch", "target": "pass2"},
            {"source": "pass2", "target": "answer"},
        ],
    }


async def _ended(live: Live, api: httpx.AsyncClient, execution_id: str) -> dict[str, Any]:
    return await live.execution(api, execution_id)


async def _blob_rows(live: Live) -> int:
    q = sa.select(sa.func.count()).select_from(blobs).where(blobs.c.tenant_id == "tenant-a")
    return int(await live.runtime.db.read(lambda c: c.execute(q).scalar_one()))


def _check_reference(doc: Any) -> dict[str, Any]:
    assert isinstance(doc, dict) and set(doc) == {BLOB_KEY}, str(doc)[:300]
    ref: dict[str, Any] = doc[BLOB_KEY]
    assert ref["size"] == len(BIG_BYTES) and ref["url"] == f"/api/blobs/{ref['id']}"
    return ref


@pytest.mark.api_settings(blob_threshold_bytes=THRESHOLD)
async def test_payloads_webhook_body_passes_five_nodes_by_reference(live: Live) -> None:
    api = live.as_tenant("tenant-a")
    trigger = {"id": "hook", "type": "trigger", "config": {"triggerType": "webhook"}}
    doc = _five_nodes(trigger)
    # the trigger's output is {type, data, ...}: the first node takes the body from it
    doc["nodes"][1]["config"]["mapping"] = {"doc": "{{data}}"}
    wf = (await api.post("/api/workflows", json=doc)).json()["id"]
    hook = await unverified_webhook(api, wf, "hook")
    ack = await live.http.post(
        f"/webhooks/{hook}/none",
        content=BIG_BYTES,
        headers={"Content-Type": "application/json"},
    )
    assert ack.status_code == 200, ack.text
    event = await live.wait_event(api, hook, ack.json()["event_id"])
    [execution_id] = event["execution_ids"]
    ex = await _ended(live, api, execution_id)
    assert ex["status"] == "succeeded", ex
    out = ex["output"]
    assert out["said"] == f"item-1 of {len(BIG['items'])}", json.dumps(ex)[:3000]  # read into it
    ref = _check_reference(out["doc"])  # passed on by reference, not inlined
    assert len(json.dumps(ex)) < THRESHOLD  # the API answer holds no megabytes
    got = await api.get(ref["url"])
    assert got.status_code == 200 and got.content == BIG_BYTES
    assert got.headers["content-type"].startswith("application/json")
    assert (await live.as_tenant("tenant-b").get(ref["url"])).status_code == 404
    assert await _blob_rows(live) == 1  # stored once, whatever the number of nodes


def _download(h: StubHandler, seen: Seen, q: dict[str, str]) -> None:
    h.send_response(200)
    h.send_header("Content-Type", "application/json")
    h.send_header("Content-Length", str(len(BIG_BYTES)))
    h.end_headers()
    for at in range(0, len(BIG_BYTES), 16 * 1024):
        h.wfile.write(BIG_BYTES[at : at + 16 * 1024])


@pytest.mark.api_settings(blob_threshold_bytes=THRESHOLD, http_allow_cidrs=["127.0.0.1/32"])
async def test_payloads_http_download_passes_five_nodes_and_goes_with_retention(
    live: Live,
) -> None:
    api = live.as_tenant("tenant-a")
    with stub_api({"/export.json": _download}) as server:
        fetch = {
            "id": "fetch",
            "type": "http_request",
            "config": {"method": "GET", "url": server.url("/export.json")},
        }
        doc = _five_nodes(fetch)
        doc["nodes"][1]["config"]["mapping"] = {"doc": "{{data}}"}
        doc["nodes"].insert(0, {"id": "start", "type": "trigger"})
        doc["edges"].insert(0, {"source": "start", "target": "fetch"})
        wf = (await api.post("/api/workflows", json=doc)).json()["id"]
        r = await api.post(f"/api/workflows/{wf}/execute", params={"wait": 30}, json={})
        assert r.status_code == 200, r.text
        started = r.json()
        ex = await _ended(live, api, started.get("id") or started["execution_id"])
    assert ex["status"] == "succeeded", ex
    assert ex["output"]["said"] == f"item-1 of {len(BIG['items'])}"
    ref = _check_reference(ex["output"]["doc"])
    assert (await api.get(ref["url"])).content == BIG_BYTES
    assert await _blob_rows(live) == 1

    clock = FakeClock()
    clock.advance(400 * 86400.0)
    pruner = Pruner(
        live.runtime.db,
        RetentionPolicies(RetentionPolicy(executions_days=30), {}),
        pause_s=0,
        clock=clock,
        blobs=live.runtime.blobs,
    )
    report = await pruner.prune(tenant_id="tenant-a")
    assert report.tenants["tenant-a"].blobs == 1
    assert await _blob_rows(live) == 0
    assert (await api.get(ref["url"])).status_code == 404

"""Webhook ingress over real HTTP, per provider: valid requests are recorded and start
the workflow; tampered, wrongly signed and stale ones are refused with 401, recorded
with their reason, and start nothing; replays are `duplicate`; handshakes answered."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx

from tests.api_support import THREE_NODES, Live, live_api
from tests.webhook_support import (
    last_node,
    meta_signature,
    slack_headers,
    stripe_header,
    unverified_webhook,
)

SECRET = "it-is-a-secret-of-some-length"
STRIPE_SECRET = "whsec_test_0123456789abcdef"


async def _setup(
    live: Live, provider: str, secret: str | None, **extra: Any
) -> tuple[httpx.AsyncClient, str, str]:
    api = live.as_tenant("tenant-a")
    r = await api.post("/api/workflows", json={**THREE_NODES, "status": "active"})
    wf = r.json()["id"]
    body: dict[str, Any] = {
        "name": "hook",
        "workflow_id": wf,
        "node_id": "trigger-1",
        "provider": provider,
        **extra,
    }
    if secret:
        body["secret"] = secret
    created = await api.post("/api/webhooks", json=body)
    assert created.status_code == 201, created.text
    return api, wf, created.json()["id"]


async def _executions(api: httpx.AsyncClient, wf: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = (
        await api.get(f"/api/workflows/{wf}/executions", params={"trigger_type": "webhook"})
    ).json()["items"]
    return items


async def _event(live: Live, api: httpx.AsyncClient, hook: str, event_id: str) -> dict[str, Any]:
    page = (await api.get(f"/api/webhooks/{hook}/events")).json()
    return next(e for e in page["items"] if e["id"] == event_id)


async def test_webhook_ingress_meta_valid_tampered_wrong_secret_replay_handshake(
    live: Live,
) -> None:
    api, wf, hook = await _setup(live, "meta", SECRET, config={"verify_token": "tok-123"})
    registered = (await api.get(f"/api/webhooks/{hook}")).json()
    assert "secret" not in json.dumps(registered).replace("secret_hint", "")
    assert registered["secret_hint"] == "…" + SECRET[-4:]
    url = f"/webhooks/{hook}/meta"
    assert registered["urls"][0].endswith(url)

    # Meta's GET handshake, on both URL forms; a wrong token gets the bare 401.
    q = {"hub.mode": "subscribe", "hub.verify_token": "tok-123", "hub.challenge": "c-42"}
    for path in (url, f"/api/webhooks/{hook}"):
        r = await live.http.get(path, params=q)
        assert (r.status_code, r.text) == (200, "c-42")
    bad = await live.http.get(url, params={**q, "hub.verify_token": "nope"})
    assert bad.status_code == 401

    body = (
        b'{"object":"instagram","entry":[{"id":"1","messaging":[{"message":{"text":"h\\u00e9"}}]}]}'
    )
    ok = await live.http.post(
        url,
        content=body,
        headers={
            "X-Hub-Signature-256": meta_signature(SECRET, body),
            "Content-Type": "application/json",
        },
    )
    assert ok.status_code == 200, ok.text
    assert ok.json()["status"] == "received"
    event = await live.wait_event(api, hook, ok.json()["event_id"])
    assert event["status"] == "processed"
    assert event["event_type"] == "instagram"
    [execution_id] = event["execution_ids"]
    assert (await live.execution(api, execution_id))["status"] == "succeeded"

    # The same bytes again (Meta retries resend them): duplicate, nothing started.
    again = await live.http.post(
        url,
        content=body,
        headers={
            "X-Hub-Signature-256": meta_signature(SECRET, body),
            "Content-Type": "application/json",
        },
    )
    assert again.json()["status"] == "duplicate"
    dup = await _event(live, api, hook, again.json()["event_id"])
    assert (dup["status"], dup["execution_ids"]) == ("duplicate", [])

    tampered = body.replace(b"h\\u00e9", b"pwned")
    forged = await live.http.post(
        url, content=tampered, headers={"X-Hub-Signature-256": meta_signature(SECRET, body)}
    )
    wrong = await live.http.post(
        url, content=body + b" ", headers={"X-Hub-Signature-256": meta_signature("other", body)}
    )
    for r in (forged, wrong):
        assert r.status_code == 401
        assert r.json() == {
            "error": {
                "code": "unauthorized",
                "message": "webhook verification failed",
                "details": [],
            }
        }
    history = (await api.get(f"/api/webhooks/{hook}/events", params={"status": "rejected"})).json()
    assert [e["verification_error"] for e in history["items"]] == [
        "signature_mismatch",
        "signature_mismatch",
        "verify_token_mismatch",  # the handshake with the wrong token
    ]
    assert all(e["dedupe_key"] is None and not e["verified"] for e in history["items"])
    assert len(await _executions(api, wf)) == 1


async def test_webhook_ingress_slack_url_verification_stale_future_and_retry(live: Live) -> None:
    api, wf, hook = await _setup(live, "slack", SECRET)
    url = f"/api/webhooks/{hook}"
    now = int(time.time())

    challenge = json.dumps({"type": "url_verification", "challenge": "ch-9"}).encode()
    r = await live.http.post(
        url,
        content=challenge,
        headers={**slack_headers(SECRET, now, challenge), "Content-Type": "application/json"},
    )
    assert (r.status_code, r.json()) == (200, {"challenge": "ch-9"})

    body = json.dumps(
        {"type": "event_callback", "event_id": "Ev1", "event": {"type": "message"}, "message": "hi"}
    ).encode()
    for ts in (now - 600, now + 600):
        r = await live.http.post(url, content=body, headers=slack_headers(SECRET, ts, body))
        assert r.status_code == 401
    refused = (await api.get(f"/api/webhooks/{hook}/events")).json()["items"]
    assert {e["verification_error"].split(":")[0] for e in refused} == {
        "timestamp_out_of_tolerance"
    }
    details = sorted(e["verification_error"] for e in refused)
    assert details[0].endswith(" s in the future") and details[1].endswith(" s old"), details

    ok = await live.http.post(
        url,
        content=body,
        headers={**slack_headers(SECRET, now, body), "Content-Type": "application/json"},
    )
    assert ok.status_code == 200
    retry = await live.http.post(
        url,
        content=body,
        headers={
            **slack_headers(SECRET, now + 1, body),
            "X-Slack-Retry-Num": "1",
            "Content-Type": "application/json",
        },
    )
    assert retry.json()["status"] == "duplicate"
    event = await live.wait_event(api, hook, ok.json()["event_id"])
    assert event["event_type"] == "message"
    execution = await live.execution(api, event["execution_ids"][0])
    assert execution["input"]["event_id"] == "Ev1"
    assert len(await _executions(api, wf)) == 1


async def test_webhook_ingress_stripe_replayed_id_is_duplicate(live: Live) -> None:
    api, wf, hook = await _setup(live, "stripe", STRIPE_SECRET)
    url = f"/webhooks/{hook}/stripe"
    body = json.dumps({"id": "evt_1", "type": "invoice.paid", "data": {"message": "m"}})
    now = int(time.time())
    first = await live.http.post(
        url, content=body, headers={"Stripe-Signature": stripe_header(STRIPE_SECRET, now, body)}
    )
    # Resent later with a fresh signature: same event id, so a duplicate.
    second = await live.http.post(
        url, content=body, headers={"Stripe-Signature": stripe_header(STRIPE_SECRET, now + 5, body)}
    )
    assert [first.json()["status"], second.json()["status"]] == ["received", "duplicate"]
    stale = await live.http.post(
        url,
        content=body,
        headers={"Stripe-Signature": stripe_header(STRIPE_SECRET, now - 3600, body)},
    )
    assert stale.status_code == 401
    event = await live.wait_event(api, hook, first.json()["event_id"])
    assert event["event_type"] == "invoice.paid"
    assert event["dedupe_key"].endswith("-evt_1")
    assert len(await _executions(api, wf)) == 1


async def test_webhook_ingress_refuses_unknown_deactivated_oversize_and_bad_json(
    database_url: str,
) -> None:
    async with live_api(database_url, webhook_max_body_bytes=2048) as live:
        api, _wf, hook = await _setup(live, "none", None, config={"allow_unverified": True})
        url = f"/webhooks/{hook}/none"
        assert (await live.http.post(f"/webhooks/{hook}/meta", json={})).status_code == 404
        assert (await live.http.post("/webhooks/not-a-uuid/none", json={})).status_code == 404
        assert (await live.http.post("/webhooks/nobody/webhook/test", json={})).status_code == 404
        big = await live.http.post(url, content=b"x" * 4096)
        assert big.status_code == 413
        assert big.json()["error"]["code"] == "payload_too_large"
        bad = await live.http.post(
            url, content=b"{nope", headers={"Content-Type": "application/json"}
        )
        assert bad.status_code == 400
        # the documented error shape, with the reason the sender needs to fix it
        assert bad.json()["error"] == {
            "code": "bad_request",
            "message": "the request body could not be read: body is not valid JSON",
            "details": [
                {"field": "body", "message": "body is not valid JSON", "code": "malformed_body"}
            ],
        }
        [row] = (await api.get(f"/api/webhooks/{hook}/events")).json()["items"]
        assert (row["status"], row["verification_error"]) == (
            "rejected",
            "malformed_body: body is not valid JSON",
        )
        text = await live.http.post(
            url, content=b"plain words", headers={"Content-Type": "text/plain"}
        )
        assert text.status_code == 200
        assert (await api.delete(f"/api/webhooks/{hook}")).status_code == 204
        assert (await live.http.post(url, json={})).status_code == 404
        listed = (await api.get("/api/webhooks", params={"status": "inactive"})).json()["items"]
        assert [h["id"] for h in listed] == [hook]


async def test_webhook_ingress_respond_modes(live: Live) -> None:
    api, _wf, last = await _setup(
        live,
        "none",
        None,
        config={"allow_unverified": True},
        respond=last_node(10),
    )
    r = await live.http.post(f"/webhooks/{last}/none", json={"message": "yo"})
    assert (r.status_code, r.text) == (200, "The processed result is: yo processed")
    assert r.headers["content-type"].startswith("text/plain")

    doc = json.loads(json.dumps(THREE_NODES))
    doc["nodes"][2]["config"] = {
        "body": {"answer": "{{result}}"},
        "status_code": 201,
        "headers": {"X-Flow": "yes"},
    }
    wf2 = (await api.post("/api/workflows", json={**doc, "status": "active"})).json()["id"]
    node = await unverified_webhook(api, wf2, "trigger-1", respond={"mode": "response_node"})
    r = await live.http.post(f"/webhooks/{node}/none", json={"message": "m"})
    assert (r.status_code, r.json(), r.headers["x-flow"]) == (201, {"answer": "m processed"}, "yes")

    waiting = {
        "name": "slow",
        "status": "active",
        "nodes": [
            {"id": "t", "type": "trigger", "config": {"triggerType": "webhook"}},
            {"id": "pause", "type": "delay", "config": {"ms": 3_600_000}},
        ],
        "edges": [{"source": "t", "target": "pause"}],
    }
    wf3 = (await api.post("/api/workflows", json=waiting)).json()["id"]
    slow = await unverified_webhook(api, wf3, "t", respond=last_node(0.5))
    r = await live.http.post(f"/webhooks/{slow}/none", json={})
    assert r.status_code == 202
    assert r.json()["status"] == "processed" and r.json()["execution_id"]

"""The seed documents' test procedure (000 §7), end to end over HTTP: import the seed
workflow, POST to /webhooks/test-client/webhook/test, the execution completes with
the expected output, and the webhook event shows `processed` with its execution id."""

from __future__ import annotations

import json

from tests.api_support import SEED, live_api


async def test_webhook_seed_procedure_end_to_end_over_http(database_url: str) -> None:
    async with live_api(database_url, tenants=("test-client",)) as live:
        api = live.as_tenant("test-client")
        seed = json.loads(SEED.read_text())
        imported = await api.post("/api/workflows/import", json=seed)
        assert imported.status_code == 201, imported.text
        wf = imported.json()
        assert wf["active_version"] == 1

        r = await live.http.post("/webhooks/test-client/webhook/test", json={"message": "hello"})
        assert r.status_code == 200, r.text
        ack = r.json()
        assert ack["status"] == "received"

        hooks = (await api.get("/api/webhooks", params={"workflow_id": wf["id"]})).json()
        [hook] = hooks["items"]
        assert hook["origin"] == "definition"
        assert hook["provider"] == "none"
        assert hook["urls"][0].endswith("/webhooks/test-client/webhook/test")
        event = await live.wait_event(api, hook["id"], ack["event_id"])
        assert event["status"] == "processed"
        assert event["verified"] is True
        [execution_id] = event["execution_ids"]

        execution = await live.execution(api, execution_id)
        assert execution["status"] == "succeeded"
        assert execution["output"] == "The processed result is: hello processed"
        assert execution["trigger_type"] == "webhook"
        assert execution["input"] == {"message": "hello"}


async def test_webhook_seed_route_is_closed_once_a_signed_webhook_is_registered(
    database_url: str,
) -> None:
    """Every way in is as strong as the strongest declared one: publishing an unverified
    route says so (answer and event store); registering a GitHub webhook for the node
    closes the unverified ways in (seed route and the row's own URLs)."""
    from flowmill.store.event_feed import EventFeed

    async with live_api(database_url, tenants=("test-client",)) as live:
        api = live.as_tenant("test-client")
        seed = json.loads(SEED.read_text())
        published = await api.post("/api/workflows/import", json=seed)
        assert published.status_code == 201, published.text
        wf = published.json()
        [warning] = wf["warnings"]
        assert warning["code"] == "unverified_webhook"
        assert (warning["node_id"], warning["path"]) == (
            "trigger-1",
            "/webhooks/test-client/webhook/test",
        )
        events = await EventFeed(live.runtime.db).read("test-client", 0)
        [event] = [e for e in events if e.type == "workflow.published"]
        assert event.payload["unverified_webhooks"] == [
            {"node_id": "trigger-1", "route": "webhook/test"}
        ]
        [definition_row] = (await api.get("/api/webhooks")).json()["items"]
        registered = await api.post(
            "/api/webhooks",
            json={
                "workflow_id": wf["id"],
                "node_id": "trigger-1",
                "provider": "github",
                "secret": "s3cret-s3cret",
            },
        )
        assert registered.status_code == 201, registered.text
        body = {"message": "unsigned"}
        seed_route = await live.http.post("/webhooks/test-client/webhook/test", json=body)
        assert seed_route.status_code == 404, seed_route.text
        for url in (
            f"/webhooks/{definition_row['id']}/none",
            f"/api/webhooks/{definition_row['id']}",
        ):
            assert (await live.http.post(url, json=body)).status_code == 404, url
        # Publishing again does not call the route open any more.
        again = await api.post(f"/api/workflows/{wf['id']}/versions/1/publish")
        assert again.status_code == 200 and again.json()["warnings"] == []
        executions = (await api.get("/api/executions")).json()["items"]
        assert executions == []

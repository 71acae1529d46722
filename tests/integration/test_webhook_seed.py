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

"""Event triggers over HTTP: custom events from POST /api/events, execution.failed of
a given workflow, and a workflow's error workflow, each started exactly once."""

from __future__ import annotations

from typing import Any

import httpx

from flowmill.testing import eventually
from tests.api_support import FAILING, live_api


def listener(name: str, **trigger: Any) -> dict[str, Any]:
    return {
        "name": name,
        "status": "active",
        "nodes": [
            {"id": "on", "type": "trigger", "config": trigger},
            {"id": "echo", "type": "transform", "config": {"mapping": {"got": "{{data}}"}}},
        ],
        "edges": [{"source": "on", "target": "echo"}],
    }


async def runs(api: httpx.AsyncClient, wf: str, n: int) -> list[dict[str, Any]]:
    async def finished() -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = (await api.get(f"/api/workflows/{wf}/executions")).json()[
            "items"
        ]
        assert len(items) >= n and all(i["status"] == "succeeded" for i in items), items
        return [(await api.get(f"/api/executions/{i['id']}")).json() for i in items]

    return await eventually(finished, 15, f"{n} finished executions of {wf}")


async def test_event_triggers_custom_failed_and_error_workflow_start_once(
    database_url: str,
) -> None:
    async with live_api(database_url, scheduler=True, scheduler_tick_s=0.05) as live:
        api = live.as_tenant("tenant-a")
        other = live.as_tenant("tenant-b")
        orders = (
            await api.post(
                "/api/workflows",
                json=listener("orders", triggerType="event", event="order.created"),
            )
        ).json()["id"]
        handler = (await api.post("/api/workflows", json=listener("handler"))).json()["id"]
        failing = {**FAILING, "status": "active", "settings": {"error_workflow_id": handler}}
        bad = (await api.post("/api/workflows", json=failing)).json()["id"]
        watcher = (
            await api.post(
                "/api/workflows",
                json=listener(
                    "watcher", triggerType="event", event="execution.failed", workflow_id=bad
                ),
            )
        ).json()["id"]
        # The service's cursor starts at the end of the feed when it first leads: wait
        # for that, or the events below could count as history.
        service = live.runtime.triggers.service
        await eventually(lambda: service._feed_ready, 10, "the trigger service reading the feed")

        posted = await api.post("/api/events", json={"type": "order.created", "data": {"n": 7}})
        assert posted.status_code == 201, posted.text
        assert (await other.post("/api/events", json={"type": "order.created"})).status_code == 201
        refused = await api.post("/api/events", json={"type": "execution.failed", "data": {}})
        assert refused.status_code == 422

        failed = (await api.post(f"/api/workflows/{bad}/execute?wait=10", json={})).json()
        assert failed["status"] == "failed"

        [order_run] = await runs(api, orders, 1)
        assert order_run["input"] == {"n": 7}
        assert order_run["trigger_type"] == "event"
        [error_run] = await runs(api, handler, 1)
        assert error_run["trigger_type"] == "error"
        assert error_run["input"]["execution_id"] == failed["id"]
        assert error_run["input"]["workflow_id"] == bad
        assert error_run["input"]["error"]["message"]
        [watched] = await runs(api, watcher, 1)
        assert watched["input"]["execution_id"] == failed["id"]

        for _ in range(3):  # more rounds start nothing more
            done = await service.round()
            assert done.event_starts == 0, done
        for wf in (orders, handler, watcher):
            listed = (await api.get(f"/api/workflows/{wf}/executions")).json()["items"]
            assert len(listed) == 1
        triggers = (await api.get("/api/triggers", params={"kind": "event"})).json()["items"]
        assert {t["workflow_id"] for t in triggers} == {orders, watcher}

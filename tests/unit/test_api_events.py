"""GET /api/executions/{id}/events: Server-Sent Events from the event store."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from flowmill.testing import eventually
from tests.api_support import THREE_NODES, WAITING, Api


def parse(text: str) -> list[dict[str, Any]]:
    events = []
    for block in text.split("\n\n"):
        fields = dict(
            line.split(": ", 1) for line in block.splitlines() if line and not line.startswith(":")
        )
        if fields:
            events.append({"id": int(fields["id"]), "event": fields["event"],
                           "data": json.loads(fields["data"])})  # fmt: skip
    return events


async def test_events_replay_a_finished_execution_and_end(api: Api) -> None:
    wf = await api.workflow(THREE_NODES)
    done = await api.run(wf, {"message": "x"})
    r = await api.a.get(f"/api/executions/{done['id']}/events")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    events = parse(r.text)
    types = [e["event"] for e in events]
    assert types[0] == "execution.started"
    assert types[-1] == "execution.completed"
    assert types.count("node.completed") == 3
    assert [e["id"] for e in events] == sorted(e["id"] for e in events)
    assert all(e["data"]["execution_id"] == done["id"] for e in events)

    resumed = await api.a.get(
        f"/api/executions/{done['id']}/events", headers={"Last-Event-ID": str(events[2]["id"])}
    )
    assert [e["id"] for e in parse(resumed.text)] == [e["id"] for e in events[3:]]


async def test_events_follow_a_live_execution_until_it_ends(api: Api) -> None:
    wf = await api.workflow(WAITING)
    started = await api.a.post(f"/api/workflows/{wf}/execute", json={})
    execution_id = started.json()["execution_id"]
    hub = api.runtime.engine.hub
    listening = hub.listening
    follow = asyncio.create_task(api.a.get(f"/api/executions/{execution_id}/events"))
    await eventually(lambda: hub.listening > listening, 10, "the stream following the hub")
    assert not follow.done()  # still open: the execution waits
    assert (await api.a.post(f"/api/executions/{execution_id}/cancel")).status_code == 200
    r = await asyncio.wait_for(follow, 10)
    types = [e["event"] for e in parse(r.text)]
    assert types[0] == "execution.started"
    assert types[-1] == "execution.cancelled"


async def test_events_of_another_tenant_are_404(api: Api) -> None:
    wf = await api.workflow(THREE_NODES)
    done = await api.run(wf, {"message": "x"})
    assert (await api.b.get(f"/api/executions/{done['id']}/events")).status_code == 404

"""``GET /api/queues``: queue depth per state, workers, and the caller's own steps."""

from __future__ import annotations

from typing import Any

from flowmill.testing import eventually
from tests.api_support import WAITING, open_api


async def test_queues_show_the_in_process_queue_workers_and_only_the_callers_steps(
    sqlite_url: str,
) -> None:
    async with open_api(sqlite_url) as api:
        wf = await api.workflow(WAITING)
        r = await api.a.post(f"/api/workflows/{wf}/execute", json={"input": {}})
        assert r.status_code == 202

        # the delay parks its step: one waiting step for tenant A once it has run
        async def parked() -> dict[str, Any]:
            body: dict[str, Any] = (await api.a.get("/api/queues")).json()
            return body if body["steps"]["waiting"] == 1 else {}

        a = await eventually(parked, 15, "the delay's step parked")
        b = (await api.b.get("/api/queues")).json()
        anon = await api.anon.get("/api/queues")
    assert a["backend"] == "in_process"
    assert a["steps"] == {"pending": 0, "queued": 0, "running": 0, "waiting": 1}
    assert b["steps"] == {"pending": 0, "queued": 0, "running": 0, "waiting": 0}
    assert [q["name"] for q in a["queues"]] == ["in-process"]
    assert set(a["queues"][0]["counts"]) == {"wait", "delayed", "active"}
    assert len(a["workers"]) == 1 and a["workers"][0]["alive"] is True
    assert a["workers"][0]["kind"]
    assert anon.status_code == 401

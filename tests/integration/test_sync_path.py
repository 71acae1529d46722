"""The synchronous path: a request someone holds open (a ``last_node`` webhook, an
``execute?wait=``) is answered when the work is done, woken by the engine's news, not
by its fallback read of the database; when the process runs the engine's worker, the
request runs the work in place, without the queue.

The fallback is set to 5 s here; every answer must come well before it.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import pytest

from tests.api_support import Live
from tests.engine_support import spy_on_puts
from tests.webhook_support import last_node, unverified_webhook

FALLBACK_S = 5.0
WORKFLOW: dict[str, Any] = {
    "name": "answers",
    "status": "active",
    "nodes": [
        {"id": "in", "type": "trigger", "config": {"triggerType": "webhook"}},
        {
            "id": "reply",
            "type": "transform",
            "config": {"mapping": {"reply": "{{ data.message.toUpperCase() + '!' }}"}},
        },
    ],
    "edges": [{"source": "in", "target": "reply"}],
}


@pytest.mark.api_settings(wait_fallback_s=FALLBACK_S)
async def test_sync_path_answers_are_woken_not_polled(live: Live) -> None:
    # The fallback really is slow here: an answer in well under 5 s was woken.
    assert live.runtime.engine.wait_poll_s == FALLBACK_S
    api = live.as_tenant("tenant-a")
    wf = (await api.post("/api/workflows", json=WORKFLOW)).json()["id"]
    hook = await unverified_webhook(api, wf, "in", respond=last_node(30))
    url = f"/webhooks/{hook}/none"

    took: dict[str, list[float]] = {"webhook": [], "execute": []}
    for n in range(6):
        t0 = time.monotonic()
        r = await live.http.post(url, json={"message": f"hi {n}"})
        took["webhook"].append(time.monotonic() - t0)
        assert (r.status_code, r.json()) == (200, {"reply": f"HI {n}!"})

        t0 = time.monotonic()
        r = await api.post(
            f"/api/workflows/{wf}/execute", params={"wait": 30}, json={"input": {"message": "x"}}
        )
        took["execute"].append(time.monotonic() - t0)
        assert (r.status_code, r.json()["status"]) == (200, "succeeded"), r.text
    # Each wait is two reads of the database and the work itself: milliseconds. One
    # left to the fallback read takes 5 s; the bound leaves room for a loaded machine
    # (and the first request, which starts the JavaScript sandbox).
    for what, samples in took.items():
        assert statistics.median(samples) < 1.0, f"{what} waited for a poll: {samples}"
        assert max(samples) < FALLBACK_S - 1, f"{what} waited for a poll: {samples}"


async def test_sync_path_runs_in_place_without_a_queue_job(
    live: Live, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a worker in this process, neither the execute?wait's first step nor the
    late webhook's event takes the queue: the request runs them, and its answer is the
    work's result (the records are the usual ones)."""
    jobs = spy_on_puts(live.runtime.engine.queue, monkeypatch)
    api = live.as_tenant("tenant-a")
    wf = (await api.post("/api/workflows", json=WORKFLOW)).json()["id"]
    hook = await unverified_webhook(api, wf, "in", respond=last_node(30))
    r = await live.http.post(f"/webhooks/{hook}/none", json={"message": "hook"})
    assert (r.status_code, r.json()) == (200, {"reply": "HOOK!"})
    r = await api.post(
        f"/api/workflows/{wf}/execute", params={"wait": 30}, json={"input": {"message": "x"}}
    )
    assert (r.status_code, r.json()["status"]) == (200, "succeeded"), r.text
    assert [n["status"] for n in r.json()["nodes"]] == ["succeeded", "succeeded"], r.json()
    assert jobs == []  # nothing went through the queue

    # Marked off the answer's path, with the execution that answered.
    [item] = (await api.get(f"/api/webhooks/{hook}/events")).json()["items"]
    event = await live.wait_event(api, hook, item["id"])
    assert event["status"] == "processed", event
    done = await live.execution(api, event["execution_ids"][0])
    assert done["output"] == {"reply": "HOOK!"}

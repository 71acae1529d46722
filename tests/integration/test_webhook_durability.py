"""An acknowledged webhook is never lost (docs/webhooks.md, "Ingress: what happens, in
order"): the 200 is sent only after the event's row is committed; when the queue is
down at that moment, or the process that took the request dies before a worker ran its
job, the trigger service dispatches the event that was left ``received``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any

import httpx

from flowmill.engine.ports import Job, TriggerJob
from flowmill.runtime import Runtime
from flowmill.store.webhook_events import WebhookEventStatus
from flowmill.testing import eventually
from tests.api_support import KEYS, THREE_NODES, Api, Live, live_api, open_api
from tests.webhook_support import dispatched_after_restart, last_node, unverified_webhook

RECOVERY_S = 0.05  # the trigger service picks up events ``received`` this long


async def _webhook(live: Live) -> tuple[httpx.AsyncClient, str, str]:
    """Tenant A's client, a published workflow and an unverified webhook on it."""
    api = live.as_tenant("tenant-a")
    wf = (await api.post("/api/workflows", json={**THREE_NODES, "status": "active"})).json()["id"]
    return api, wf, await unverified_webhook(api, wf, "trigger-1")


async def _status(rt: Runtime, event_id: str) -> WebhookEventStatus | None:
    row = await rt.triggers.events.get(event_id)
    return row.status if row is not None else None


async def _executions(api: httpx.AsyncClient, wf: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = (await api.get(f"/api/workflows/{wf}/executions")).json()["items"]
    return items


async def test_webhook_durability_queue_down_at_the_ack_event_is_dispatched_by_recovery(
    database_url: str,
) -> None:
    async with live_api(database_url, webhook_recovery_s=RECOVERY_S) as live:
        api, wf, hook = await _webhook(live)
        queue = live.runtime.triggers.ingress.queue
        put = queue.put
        refused: list[Job] = []

        async def queue_down(jobs: Sequence[Job]) -> None:
            # Down for the ingress's jobs (sent after the answer, so down for as long as
            # the test runs); the recovered execution's steps still get through.
            if any(isinstance(job, TriggerJob) for job in jobs):
                refused.extend(jobs)
                raise ConnectionError("the queue is down")
            await put(jobs)

        queue.put = queue_down  # type: ignore[method-assign]
        r = await live.http.post(f"/webhooks/{hook}/none", json={"message": "kept"})
        assert r.status_code == 200, r.text
        event_id = r.json()["event_id"]
        assert r.json()["status"] == "received"
        await eventually(lambda: bool(refused), 10, "the ingress trying to send the job")
        # Acknowledged, committed, and no job anywhere: nothing has started it.
        assert await _status(live.runtime, event_id) is WebhookEventStatus.RECEIVED
        assert await _executions(api, wf) == []

        service = live.runtime.triggers.service
        await eventually(service.recover_webhooks, 10, "the trigger service recovering it")
        event = await live.wait_event(api, hook, event_id)
        assert event["status"] == "processed"
        [execution_id] = event["execution_ids"]
        done = await live.execution(api, execution_id)
        assert done["status"] == "succeeded"
        assert done["output"] == "The processed result is: kept processed"


async def test_webhook_durability_ack_does_not_wait_for_a_stalled_queue(
    database_url: str,
) -> None:
    """The acknowledgement needs the commit, not the job: with the queue stalled, events
    are still answered 200 (committed, ``received``), and their job goes once it moves."""
    async with live_api(database_url, worker=False) as live:
        _, _, hook = await _webhook(live)
        queue = live.runtime.triggers.ingress.queue
        put = queue.put
        moving = asyncio.Event()
        sent: list[Job] = []

        async def stalled(jobs: Sequence[Job]) -> None:
            await moving.wait()
            sent.extend(jobs)
            await put(jobs)

        queue.put = stalled  # type: ignore[method-assign]
        try:
            async with asyncio.timeout(10):  # (the in-process transport has none of its own)
                answers = [
                    await live.http.post(f"/webhooks/{hook}/none", json={"message": n})
                    for n in range(3)
                ]
        except BaseException:
            moving.set()  # unstick the waiting flushes, so that the app can close
            raise
        finally:
            queue.put = put  # type: ignore[method-assign]
        assert [r.status_code for r in answers] == [200, 200, 200], [r.text for r in answers]
        ids = {r.json()["event_id"] for r in answers}
        for event_id in ids:
            assert await _status(live.runtime, event_id) is WebhookEventStatus.RECEIVED
        assert not moving.is_set() and sent == []
        moving.set()
        await eventually(lambda: len(sent) == 3, 10, "the three jobs sent once the queue moves")
        assert {job.webhook_event_id for job in sent if isinstance(job, TriggerJob)} == ids


async def test_webhook_durability_process_dies_after_the_ack_event_runs_after_restart(
    database_url: str,
) -> None:
    """The embedded queue lives in memory: the API that took the request stops before a
    worker ran its job, so the job is gone. The row is not."""
    async with live_api(database_url, worker=False) as live:
        _, _, hook = await _webhook(live)
        r = await live.http.post(f"/webhooks/{hook}/none", json={"message": "survives"})
        assert r.status_code == 200, r.text
        event_id = r.json()["event_id"]
        assert await _status(live.runtime, event_id) is WebhookEventStatus.RECEIVED
    done = await dispatched_after_restart(database_url, event_id, RECOVERY_S)
    assert done.output == "The processed result is: survives processed"


async def test_webhook_durability_late_answer_process_dies_while_waiting_runs_after_restart(
    database_url: str,
) -> None:
    """A ``last_node`` request waits; the process goes before it answers (its request
    cancelled mid-wait; the in-memory job of what it dispatched, with no worker here to
    run it, goes too). The event was committed before anything ran: after a restart the
    execution runs, found by the event id, whether the process went before or after the
    request dispatched the event (then recovery starts it, else the sweeper finds its
    step without a job)."""
    async with open_api(database_url, worker=False, secret_keys=KEYS) as api:
        wf = await api.workflow({**THREE_NODES, "status": "active"}, publish=False)
        hook_id = await unverified_webhook(api.a, wf, "trigger-1", respond=last_node(60))
        waiting = asyncio.create_task(
            api.anon.post(f"/webhooks/{hook_id}/none", json={"message": "late"}, timeout=60)
        )

        async def recorded() -> str:
            page = (await api.a.get(f"/api/webhooks/{hook_id}/events")).json()["items"]
            assert page and page[0]["status"] in ("received", "processed"), page
            return str(page[0]["id"])

        event_id = await eventually(recorded, 15, "the late webhook's event recorded")
        assert not waiting.done()  # still waiting for its answer when the process goes
        waiting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await waiting
    done = await dispatched_after_restart(database_url, event_id, RECOVERY_S)
    assert done.output == "The processed result is: late processed"


async def test_webhook_durability_no_ack_when_the_event_was_not_committed(
    database_url: str,
) -> None:
    """The acknowledgement follows the commit: a write that fails is never answered 200
    (the sender keeps the event and retries)."""
    async with live_api(database_url) as live:
        _, _, hook = await _webhook(live)
        events = live.runtime.triggers.events
        insert = events.insert

        async def disk_full(rows: Any) -> Any:
            raise OSError("could not extend file: No space left on device")

        events.insert = disk_full  # type: ignore[method-assign]
        try:
            refused = await live.http.post(f"/webhooks/{hook}/none", json={"message": "lost?"})
        finally:
            events.insert = insert  # type: ignore[method-assign]
        assert refused.status_code >= 500, refused.text
        assert "event_id" not in refused.text

        # And a 200 means the row is there when the sender reads it.
        ok = await live.http.post(f"/webhooks/{hook}/none", json={"message": "kept"})
        assert ok.status_code == 200
        assert await _status(live.runtime, ok.json()["event_id"]) is not None


async def test_webhook_durability_late_answer_run_in_place_outlives_its_client(
    api_each_db: Api,
) -> None:
    """A ``last_node`` request whose process runs the worker dispatches its event
    itself; its client goes (the request cancelled mid-step): the dispatch goes on, the
    execution ends and the event is marked processed with it, no recovery needed."""
    api = api_each_db
    slow = "{{ (() => { const t = Date.now(); while (Date.now() - t < 500) {} return m; })() }}"
    wf = await api.workflow(
        {
            "name": "slow answer",
            "status": "active",
            "nodes": [
                {"id": "in", "type": "trigger", "config": {"triggerType": "webhook"}},
                {"id": "reply", "type": "transform",
                 "config": {"mapping": {"reply": slow.replace("m", "data.message")}}},
            ],
            "edges": [{"source": "in", "target": "reply"}],
        },
        publish=False,
    )  # fmt: skip
    hook_id = await unverified_webhook(api.a, wf, "in", respond=last_node(60))
    waiting = asyncio.create_task(
        api.anon.post(f"/webhooks/{hook_id}/none", json={"message": "gone"}, timeout=60)
    )

    async def running() -> str:
        page = (await api.a.get("/api/executions", params={"workflow_id": wf})).json()["items"]
        assert page and page[0]["status"] == "running", page
        return str(page[0]["id"])

    execution_id = await eventually(running, 15, "the late webhook's execution running")
    assert not waiting.done()
    waiting.cancel()  # in process, the app's request task goes with its client
    with contextlib.suppress(asyncio.CancelledError):
        await waiting

    async def processed() -> dict[str, Any]:
        [event] = (await api.a.get(f"/api/webhooks/{hook_id}/events")).json()["items"]
        assert event["status"] == "processed", event
        return dict(event)

    event = await eventually(processed, 15, "the event marked processed")
    assert event["execution_ids"] == [execution_id]
    done = await api.runtime.engine.wait(execution_id, timeout=15)
    assert done.output == {"reply": "gone"}

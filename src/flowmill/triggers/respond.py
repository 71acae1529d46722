"""Late answers of webhooks: ``last_node`` and ``response_node`` respond modes.

The request waits (without blocking the event loop) for its event to be dispatched and
its execution to end, up to the webhook's timeout. Both are woken by the engine's news
the moment they happen (from other processes too, in distributed mode): the dispatcher
announces the event's id once its execution is committed (found by its dedupe key, so
marking the event ``processed`` is off the answer's path) or once the event is marked
otherwise; the engine announces the execution's id once it ends.
The database is read when the wait begins (it may be done already) and then only every
:attr:`Engine.wait_poll_s <flowmill.engine.engine.Engine.wait_poll_s>`, the slow
fallback for news lost on the way (50 ms only where no news can arrive). Past the
timeout the answer is ``202`` with the event and execution ids: the work goes on, only
the answer stops waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from flowmill import jsonutil
from flowmill.domain.execution import ExecutionRecord
from flowmill.domain.states import ExecutionStatus
from flowmill.engine.engine import Engine
from flowmill.store.webhook_events import WebhookEventStatus, WebhookEventStore
from flowmill.triggers.definitions import RespondMode
from flowmill.triggers.dispatch import WebhookDispatcher
from flowmill.triggers.ingress import IngressResult, ack_body
from flowmill.triggers.keys import webhook_dedupe_key


class Responder:
    """Waits for a webhook's execution and shapes the answer its respond mode asks for.

    Args:
        events: The ``webhook_events`` table.
        engine: This process's engine (news, the execution store).
        dispatcher: Dispatches the events the ingress left to this process
            (``IngressResult.event``); without it they wait for recovery.
        poll_s: The fallback pause between reads (default the engine's).
    """

    def __init__(
        self,
        events: WebhookEventStore,
        engine: Engine,
        poll_s: float | None = None,
        dispatcher: WebhookDispatcher | None = None,
    ) -> None:
        self.events = events
        self.engine = engine
        self.dispatcher = dispatcher
        self.poll_s = engine.wait_poll_s if poll_s is None else poll_s

    async def answer(self, result: IngressResult, max_wait_s: float) -> IngressResult:
        """The answer to a received event of a ``last_node``/``response_node`` webhook."""
        assert result.event_id is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + min(result.timeout_s, max_wait_s)
        event_id = result.event_id
        if result.event is not None and self.dispatcher is not None and len(result.targets) == 1:
            # Dispatched here, its steps run in place: woken by their end, nothing polled.
            # Its own task: a client that goes away does not stop the dispatch.
            left = max(0.0, deadline - loop.time())
            dispatch = self.dispatcher.spawn_here(result.event, result.targets[0], left)
            done, execution_id, ended = await asyncio.shield(dispatch)
            started = [execution_id] if execution_id else []
            return await self._shape(result, done, started, deadline, ended=ended)
        status: WebhookEventStatus = WebhookEventStatus.RECEIVED
        ids: list[str] = []
        with self.engine.news.watch(event_id) as dispatched:
            while True:
                found = await self._outcome(result, event_id)
                if found is not None:
                    status, ids = found
                left = deadline - loop.time()
                if status is not WebhookEventStatus.RECEIVED or left <= 0:
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(dispatched.wait(), timeout=min(self.poll_s, left))
                dispatched.clear()
        if status is WebhookEventStatus.RECEIVED:
            return _later(event_id, status.value)
        return await self._shape(result, status, ids, deadline)

    async def _shape(
        self,
        result: IngressResult,
        status: WebhookEventStatus,
        ids: list[str],
        deadline: float,
        *,
        ended: ExecutionStatus | None = None,
    ) -> IngressResult:
        """The answer once the event is dispatched: the execution's, if it ends in time
        (``ended``: it has, read it once; otherwise wait for it)."""
        event_id = result.event_id
        assert event_id is not None
        if status is not WebhookEventStatus.PROCESSED or not ids:
            return IngressResult(200, ack_body(event_id, status.value), event_id=event_id)
        if ended is not None and ended.terminal:
            execution = await self.engine.store.get_execution(ids[0])
        else:
            execution = await self._wait(ids[0], deadline)
        if execution is None or not execution.status.terminal:
            return _later(event_id, status.value, execution_id=ids[0])
        if execution.status is not ExecutionStatus.SUCCEEDED:
            body = {
                "error": {
                    "code": "execution_failed",
                    "message": f"the workflow's execution {execution.status.value}",
                    "details": [],
                },
                "event_id": event_id,
                "execution_id": execution.id,
            }
            return IngressResult(502, jsonutil.dumpb(body), event_id=event_id)
        if result.respond is RespondMode.RESPONSE_NODE:
            shaped = await self._response_node(execution)
            if shaped is not None:
                return shaped
        return _value(200, execution.output, {}, event_id)

    async def _outcome(
        self, result: IngressResult, event_id: str
    ) -> tuple[WebhookEventStatus, list[str]] | None:
        if len(result.targets) != 1:  # late modes are for single-target events
            return await self.events.status(event_id)
        trigger = result.targets[0]
        key = webhook_dedupe_key(trigger.id, event_id)
        return await self.events.outcome(event_id, trigger.tenant_id, key)

    async def _wait(self, execution_id: str, deadline: float) -> ExecutionRecord | None:
        loop = asyncio.get_running_loop()
        with self.engine.news.watch(execution_id) as done:
            while True:
                ex = await self.engine.store.get_execution(execution_id)
                left = deadline - loop.time()
                if ex is None or ex.status.terminal or left <= 0:
                    return ex
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(done.wait(), timeout=min(self.poll_s, left))
                done.clear()

    async def _response_node(self, execution: ExecutionRecord) -> IngressResult | None:
        wf = await self.engine.compiled(execution.workflow_id, execution.version)
        nodes = [n for n, c in wf.nodes.items() if c.node.type == "response"]
        if not nodes:
            return None
        outputs = await self.engine.store.load_outputs(execution.id, nodes)
        for node_id in nodes:
            if node_id in outputs:
                config: Any = wf.node(node_id).config
                status = int(getattr(config, "status_code", 200))
                headers = dict(getattr(config, "headers", {}) or {})
                return _value(status, outputs[node_id], headers, None)
        return None


def _later(event_id: str, status: str, **extra: Any) -> IngressResult:
    return IngressResult(202, ack_body(event_id, status, **extra), event_id=event_id)


def _value(status: int, value: Any, headers: dict[str, str], event_id: str | None) -> IngressResult:
    if isinstance(value, str):
        content_type = "text/plain; charset=utf-8"
        body = value.encode()
    else:
        content_type = "application/json"
        body = jsonutil.dumpb(value)
    given = {k.lower(): v for k, v in headers.items()}
    if "content-type" in given:
        content_type = given.pop("content-type")
    safe = {k: v for k, v in given.items() if k not in ("content-length", "transfer-encoding")}
    return IngressResult(status, body, content_type, safe, event_id=event_id)

"""Dispatch of recorded webhook events to workflows, in a worker (off the request path).

For each trigger the event was verified for, start an execution of the workflow's
active version with a dedupe key derived from the event row and the trigger, so a job
delivered twice (or an event recovered by the trigger service while its job was only
late) starts nothing twice. Then mark the event ``processed`` with the execution ids,
``no_match`` when no target remains, or ``failed`` with the reason.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import structlog

from flowmill.blobs.store import BlobNotFound, BlobStore
from flowmill.channels.resolver import ChannelMatch, ChannelResolver
from flowmill.domain.errors import Invalid, WorkflowNotFound
from flowmill.domain.states import ExecutionStatus
from flowmill.domain.storable import check_json
from flowmill.engine.engine import Engine
from flowmill.engine.ports import TriggerJob
from flowmill.store.triggers import TriggerRecord, TriggerRepository
from flowmill.store.webhook_events import WebhookEventRow, WebhookEventStatus, WebhookEventStore
from flowmill.tasks import spawn
from flowmill.triggers.definitions import RespondMode, respond_of
from flowmill.triggers.keys import webhook_dedupe_key
from flowmill.triggers.providers import IncomingWebhook, PayloadError, WebhookProviderRegistry

log = structlog.get_logger("flowmill.webhooks")


class WebhookDispatcher:
    """Starts the executions of recorded webhook events.

    Args:
        engine: Starts executions.
        triggers: Trigger rows.
        events: The ``webhook_events`` table.
        providers: Decode payloads as the provider does.
        versions: The active version of a workflow (``WorkflowRepository.active_version``).
        channels: Matches payloads to the tenant's channels (execution metadata).
    """

    def __init__(
        self,
        *,
        engine: Engine,
        triggers: TriggerRepository,
        events: WebhookEventStore,
        providers: WebhookProviderRegistry,
        versions: Callable[[str, str], Awaitable[int | None]],
        channels: ChannelResolver | None = None,
        blobs: BlobStore | None = None,
    ) -> None:
        self.blobs = blobs
        self.versions = versions
        self.channels = channels
        self.engine = engine
        self.triggers = triggers
        self.events = events
        self.providers = providers
        self._tasks: set[asyncio.Task[Any]] = set()  # dispatches in place, marks

    async def handle_job(self, job: TriggerJob) -> list[str]:
        """The engine's handler of webhook-event trigger jobs (one event, or the batch
        the ingress recorded together in ``data.webhook_event_ids``) and of seed-route
        jobs. Returns the ids of the executions started."""
        if job.route is not None:
            return await self.start_routed(job)
        assert job.webhook_event_id is not None
        ids = [job.webhook_event_id]
        if isinstance(job.data, dict) and isinstance(job.data.get("webhook_event_ids"), list):
            ids = [str(i) for i in job.data["webhook_event_ids"]]
        limit = asyncio.Semaphore(8)

        async def _one(event_id: str) -> list[str]:
            async with limit:
                return await self.dispatch(event_id) or []

        results = await asyncio.gather(*(_one(i) for i in ids), return_exceptions=True)
        failed = [r for r in results if isinstance(r, BaseException)]
        if failed:
            # The events stay "received"; the trigger service dispatches them later.
            raise failed[0]
        return [e for r in results if not isinstance(r, BaseException) for e in r]

    async def start_routed(self, job: TriggerJob) -> list[str]:
        """Start every active webhook trigger of the tenant on the job's seed route, as
        a request to ``/webhooks/{tenant}/{triggerType}/{actionType}`` would (the job's
        producer is trusted: it has the queue). With a dedupe key, at most once each."""
        assert job.route is not None
        started: list[str] = []
        for trigger in await self.triggers.routed(job.tenant_id, job.route):
            version = await self.versions(trigger.tenant_id, trigger.workflow_id)
            if version is None:
                continue
            started.append(
                await self.engine.start_execution(
                    tenant_id=trigger.tenant_id,
                    workflow_id=trigger.workflow_id,
                    version=version,
                    data=job.data,
                    trigger_type=job.trigger_type,
                    node_id=trigger.node_id,
                    dedupe_key=f"{job.dedupe_key}:{trigger.id}" if job.dedupe_key else None,
                    metadata=job.metadata,
                )
            )
        if not started:
            log.warning("no active workflow on this route", tenant=job.tenant_id, route=job.route)
        return started

    async def dispatch(self, event_id: str) -> list[str] | None:
        """Start the executions of a received event. Returns their ids, or ``None`` when
        the event was not waiting (done already, or unknown)."""
        event = await self.events.get(event_id)
        if event is None or event.status is not WebhookEventStatus.RECEIVED:
            return None
        ids = event.targets or ([event.trigger_id] if event.trigger_id else [])
        started: list[str] = []
        errors: list[str] = []
        triggers = await self.triggers.by_ids(ids)
        # Only a single-target event of a late respond mode has a request waiting for
        # it (somewhere): the others cost no news (no Redis message per event).
        waited = len(ids) == 1 and any(
            respond_of(t.config)[0] is not RespondMode.IMMEDIATE for t in triggers
        )
        for trigger in triggers:
            try:
                found = await self._start(event, trigger)
                execution_id = found[0] if found is not None else None
            except (Invalid, WorkflowNotFound) as e:
                # Permanent for this event (the workflow or node is gone or invalid, the
                # payload cannot be stored): DefinitionError, NotATrigger, UnstorableJson
                # and TemplateError are Invalid. A bug (a KeyError...) is not caught here.
                errors.append(f"{trigger.id}: {e}"[:500])
                continue
            if execution_id is not None:
                started.append(execution_id)
        if started:
            if waited:
                # The waiting request (any process) finds its execution by dedupe key
                # now: marking the event below is off its path.
                self.engine.announce(event_id)
            status = WebhookEventStatus.PROCESSED
        elif errors:
            status = WebhookEventStatus.FAILED
        else:
            status = WebhookEventStatus.NO_MATCH
        await self.events.finish(event, status, started, "; ".join(errors) or None)
        if waited and not started:
            self.engine.announce(event_id)  # the late answer is that nothing started
        return started

    def spawn_here(
        self, event: WebhookEventRow, trigger: TriggerRecord, wait_s: float
    ) -> asyncio.Task[tuple[WebhookEventStatus, str | None, ExecutionStatus | None]]:
        """:meth:`dispatch_here` in a task of its own, held here: the request waiting
        for it may go (its client gone) without stopping the dispatch."""
        return spawn(
            self.dispatch_here(event, trigger, wait_s),
            name="webhook-dispatch:here",
            keep=self._tasks,
        )

    async def dispatch_here(
        self, event: WebhookEventRow, trigger: TriggerRecord, wait_s: float
    ) -> tuple[WebhookEventStatus, str | None, ExecutionStatus | None]:
        """Dispatch a received event of a late-answer webhook in the process that
        received it, whose worker runs here (the ingress queued no job for it), and
        wait up to ``wait_s`` for its execution to end, run in place
        (:meth:`Engine.start_and_wait <flowmill.engine.engine.Engine.start_and_wait>`).

        The event and trigger are the ones the ingress holds: nothing is read again.
        Marking the event is off the answer's path, as in :meth:`dispatch`: a crash
        before it leaves the event ``received`` and recovery finds the execution by
        its dedupe key.

        Returns:
            The event's status, the execution's id (``None``: none started) and, if it
            ended meanwhile, its final status.
        """
        execution_id = ended = None
        error = None
        try:
            started = await self._start(event, trigger, wait_s=wait_s)
        except (Invalid, WorkflowNotFound) as e:  # permanent, as in dispatch()
            error = f"{trigger.id}: {e}"[:500]
        else:
            if started is not None:
                execution_id, ended = started
        if execution_id is not None:
            status = WebhookEventStatus.PROCESSED
        else:
            status = WebhookEventStatus.FAILED if error else WebhookEventStatus.NO_MATCH
        ids = [execution_id] if execution_id is not None else []
        spawn(
            self.events.finish(event, status, ids, error),
            name="webhook-dispatch:finish",
            keep=self._tasks,
        )
        return status, execution_id, ended

    async def _start(
        self, event: WebhookEventRow, trigger: TriggerRecord, *, wait_s: float | None = None
    ) -> tuple[str, ExecutionStatus | None] | None:
        """Start the execution of ``event`` for ``trigger``; with ``wait_s``, run it in
        place and wait that long for its end. Its id and the status it ended with."""
        if not trigger.enabled or trigger.tenant_id != event.tenant_id:
            return None
        version = await self.versions(trigger.tenant_id, trigger.workflow_id)
        if version is None:
            return None
        if event.body_blob_id is not None:
            payload = await self._blob_payload(event)
        else:
            payload = self._payload(event, trigger)
        match = ChannelMatch()
        if self.channels is not None:
            match = await self.channels.match(trigger.tenant_id, trigger.workflow_id, payload)
        if match.skip is not None:
            log.info("webhook event not started", event_id=event.id, why=match.skip)
            return None
        start: dict[str, Any] = {
            "tenant_id": trigger.tenant_id,
            "workflow_id": trigger.workflow_id,
            "version": version,
            "data": payload,
            "trigger_type": "webhook",
            "node_id": trigger.node_id,
            "dedupe_key": webhook_dedupe_key(trigger.id, event.id),
            "metadata": {"webhook": self._metadata(event, trigger)},
            "execution_metadata": match.metadata,
        }
        ended = None
        if wait_s is None:
            started = await self.engine.start_execution(**start)
        else:
            started, ended = await self.engine.start_and_wait(wait_s, **start)
        if event.body_blob_id is not None and self.blobs is not None:
            await self.blobs.adopt(event.tenant_id, event.body_blob_id, started)
        return started, ended

    async def _blob_payload(self, event: WebhookEventRow) -> Any:
        """A large body's reference: the execution's ``trigger.data`` is decoded only
        when a node touches it (``None`` if the blob is gone, as for a bad body)."""
        if self.blobs is None or event.body_blob_id is None:
            return None
        try:
            ref = await self.blobs.stat(event.tenant_id, event.body_blob_id)
        except BlobNotFound:
            return None
        return ref.to_value()

    def _payload(self, event: WebhookEventRow, trigger: TriggerRecord) -> Any:
        request = IncomingWebhook.build(
            event.method, event.route, headers=[(k, v) for k, v in event.headers], body=event.body
        )
        name = trigger.provider or "none"
        if name not in self.providers:
            return None
        provider = self.providers.get(name)
        try:
            config = provider.parse_config(trigger.config.get("provider") or {})
            payload = provider.parse_payload(request, config)
        except (PayloadError, ValueError):
            return None
        # Text the database cannot store (NUL, lone surrogates): refuse the event for
        # good, with the reason, rather than fail its start over and over.
        check_json(payload)
        return payload

    @staticmethod
    def _metadata(event: WebhookEventRow, trigger: TriggerRecord) -> dict[str, Any]:
        return {
            "event_id": event.id,
            "trigger_id": trigger.id,
            "provider": event.provider,
            "event_type": event.event_type,
            "headers": {k.lower(): v for k, v in event.headers},
            "received_at": event.received_at.isoformat(),
        }

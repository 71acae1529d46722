"""The trigger service: schedules, event triggers and webhook recovery, led by one replica.

Any number of replicas run it (``flowmill scheduler``, or embedded in ``flowmill
serve``). Each round, a replica tries to take or renew the ``scheduler`` lease; the one
holding it:

1. fires due schedules: each firing starts its execution with the dedupe key
   ``firing_key(trigger, fire time)``, then the schedule's watermark moves on (only
   if no one moved it meanwhile). Two replicas that both believe they lead start one
   execution per firing between them;
2. reads the event store past its cursor, per tenant, and starts the workflows whose
   event triggers match (and the error workflow of a failed execution), each start
   keyed by the trigger and the event, then advances the cursor;
3. dispatches webhook events still ``received`` some seconds after they arrived (their
   job was lost: the database is the truth, the queue only transport).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog

from flowmill.clock import Clock, SystemClock
from flowmill.domain.errors import Invalid, WorkflowNotFound
from flowmill.domain.events import EventType
from flowmill.engine.engine import Engine
from flowmill.ids import uuid7
from flowmill.store.event_feed import EventFeed, FeedEvent
from flowmill.store.leases import LeaseStore
from flowmill.store.triggers import TriggerRecord, TriggerRepository
from flowmill.store.webhook_events import WebhookEventStore
from flowmill.tasks import run_every
from flowmill.triggers.definitions import compile_schedule
from flowmill.triggers.dispatch import WebhookDispatcher
from flowmill.triggers.keys import firing_key
from flowmill.triggers.schedule import ScheduleError, due_firings

log = structlog.get_logger("flowmill.scheduler")
LEASE = "scheduler"
CONSUMER = "event-triggers"
# What makes a start impossible for this firing or event (the workflow or its trigger
# node is gone, or its definition no longer compiles): logged and skipped. Anything
# else is a fault of ours or of a service and propagates to the loop, which logs it
# with its traceback and tries the round again.
_START_ERRORS = (Invalid, WorkflowNotFound)


@dataclass
class TriggerServiceOptions:
    """Timing of the trigger service.

    Attributes:
        tick_s: Longest pause between rounds (a round also starts when a schedule is due).
        lease_ttl_s: How long a lease lasts unrenewed; a dead leader is replaced after
            at most this long.
        webhook_grace_s: A webhook event still ``received`` this long after it arrived
            is dispatched by the leader (its job was lost).
        batch: Schedules, events, webhook events handled per round.
    """

    tick_s: float = 1.0
    lease_ttl_s: float = 15.0
    webhook_grace_s: float = 10.0
    batch: int = 500


@dataclass(frozen=True)
class Started:
    """What one round did."""

    leader: bool
    firings: int = 0
    event_starts: int = 0
    recovered: int = 0


class TriggerService:
    """One replica of the trigger service.

    Args:
        engine: Starts executions.
        triggers: Trigger rows.
        leases: Leader election.
        feed: The event store as a feed.
        events: Webhook events (for recovery).
        dispatcher: Dispatches webhook events.
        versions: The active version of a workflow.
        clock: Time (a fake clock simulates hours in a test).
        options: Timing.
    """

    def __init__(
        self,
        *,
        engine: Engine,
        triggers: TriggerRepository,
        leases: LeaseStore,
        feed: EventFeed,
        events: WebhookEventStore,
        dispatcher: WebhookDispatcher,
        versions: Callable[[str, str], Awaitable[int | None]],
        clock: Clock | None = None,
        options: TriggerServiceOptions | None = None,
    ) -> None:
        self.engine = engine
        self.triggers = triggers
        self.leases = leases
        self.feed = feed
        self.events = events
        self.dispatcher = dispatcher
        self.versions = versions
        self.clock = clock or SystemClock()
        self.options = options or TriggerServiceOptions()
        self.holder = f"{socket.gethostname()[:40]}-{os.getpid()}-{uuid7()[-8:]}"
        self._stop = asyncio.Event()
        self._leading = False
        self._feed_ready = False

    @property
    def leading(self) -> bool:
        """Whether the last round held the lease."""
        return self._leading

    # --- the loop ---------------------------------------------------------------------

    async def run(self) -> None:
        """Run rounds until :meth:`stop`; give the lease up on the way out."""
        try:
            # A database outage included: the loop must outlive it, or schedules stop
            # for good while the process looks alive. On the service's clock, so a fake
            # clock runs this very loop over simulated days in a test.
            await run_every(
                "trigger service round",
                self._round_then_pause,
                interval_s=self.options.tick_s,
                stop=self._stop,
                sleep=self.clock.sleep,
            )
        finally:
            if self._leading:
                with contextlib.suppress(Exception):
                    await self.leases.release(LEASE, self.holder)
            self._leading = False

    async def _round_then_pause(self) -> float:
        await self.round()
        return await self._pause()

    async def _pause(self) -> float:
        tick = self.options.tick_s
        if not self._leading:
            return tick
        due = await self.triggers.next_due_at()
        if due is None:
            return tick
        return max(0.01, min(tick, (due - self.clock.now()).total_seconds()))

    def stop(self) -> None:
        """Ask :meth:`run` to return after its round."""
        self._stop.set()

    @contextlib.asynccontextmanager
    async def running(self) -> Any:
        """Run the service in the background inside the block."""
        task = asyncio.create_task(self.run(), name="trigger-service")
        try:
            yield self
        finally:
            self.stop()
            await task

    async def round(self) -> Started:
        """One round: take or renew the lease; if leading, do the leader's work."""
        now = self.clock.now()
        self._leading = await self.leases.acquire(LEASE, self.holder, now, self.options.lease_ttl_s)
        if not self._leading:
            return Started(False)
        if not self._feed_ready:
            # A consumer new to a tenant's feed starts at its end: turning the service
            # on does not act on history (tenants made later are read from the start).
            await self.feed.start_at_end(CONSUMER)
            self._feed_ready = True
        firings = await self.fire_schedules(now)
        starts = await self.consume_events()
        recovered = await self.recover_webhooks()
        return Started(True, firings, starts, recovered)

    # --- schedules --------------------------------------------------------------------

    async def fire_schedules(self, now: datetime) -> int:
        """Start the firings due at ``now``; returns how many were started (or found
        started already by another replica)."""
        count = 0
        for trigger in await self.triggers.due_schedules(now, self.options.batch):
            count += await self._fire(trigger, now)
        return count

    async def _fire(self, trigger: TriggerRecord, now: datetime) -> int:
        assert trigger.next_run_at is not None
        try:
            schedule = compile_schedule(trigger.config)
        except ScheduleError as e:
            log.warning("schedule does not compile; disabled until fixed", trigger=trigger.id)
            await self.triggers.advance_schedule(
                trigger.id, expected_next=trigger.next_run_at, last_run_at=None, next_run_at=None
            )
            log.debug("schedule error", error=str(e))
            return 0
        # The watermark is the second before next_run_at: everything before it was
        # handled, and a schedule enabled afresh starts there (nothing "missed").
        watermark = trigger.next_run_at - timedelta(seconds=1)
        due = due_firings(schedule, watermark, now)
        if due.missed_from is not None:
            log.info(
                "schedule missed fire times",
                trigger=trigger.id,
                missed_from=due.missed_from.isoformat(),
                missed_until=due.missed_until.isoformat() if due.missed_until else None,
                policy=schedule.spec.missed_fire_policy.value,
            )
        version = await self.versions(trigger.tenant_id, trigger.workflow_id)
        fired = 0
        for i, fire_at in enumerate(due.fire_at):
            if version is None:
                break
            data = {
                "fire_at": fire_at.isoformat(),
                "trigger_id": trigger.id,
                "caught_up": due.caught_up and i == 0,
            }
            try:
                await self.engine.start_execution(
                    tenant_id=trigger.tenant_id,
                    workflow_id=trigger.workflow_id,
                    version=version,
                    data=data,
                    trigger_type="schedule",
                    node_id=trigger.node_id,
                    dedupe_key=firing_key(trigger.id, fire_at),
                    metadata={"schedule": data},
                )
            except _START_ERRORS as e:
                log.warning("scheduled start failed", trigger=trigger.id, error=str(e))
                continue
            fired += 1
        await self.triggers.advance_schedule(
            trigger.id,
            expected_next=trigger.next_run_at,
            last_run_at=due.fire_at[-1] if due.fire_at and version is not None else None,
            next_run_at=due.next_fire_at,
        )
        return fired

    # --- events -----------------------------------------------------------------------

    async def consume_events(self) -> int:
        """Start the workflows the new events of every tenant trigger."""
        started = 0
        behind = await self.feed.behind(CONSUMER)
        if not behind:
            return 0
        by_tenant: dict[str, list[TriggerRecord]] = {}
        for t in await self.triggers.events_for([tenant for tenant, _ in behind]):
            by_tenant.setdefault(t.tenant_id, []).append(t)
        for tenant_id, cursor in behind:
            events = await self.feed.read(tenant_id, cursor, self.options.batch)
            for event in events:
                started += await self._on_event(event, by_tenant.get(tenant_id, []))
            if events:
                await self.feed.advance(CONSUMER, tenant_id, events[-1].sequence)
        return started

    async def _on_event(self, event: FeedEvent, triggers: list[TriggerRecord]) -> int:
        started = 0
        about = event.payload.get("workflow_id")
        for t in triggers:
            if t.config.get("event") not in (event.type, "*"):
                continue
            if t.config.get("workflow_id") and t.config["workflow_id"] != about:
                continue
            if about == t.workflow_id:
                continue  # never on events of its own executions: no loops
            data = event.payload.get("data") if event.stream_id == "custom" else event.payload
            started += await self._start(
                t.tenant_id,
                t.workflow_id,
                t.node_id,
                data,
                f"event-{t.id}-{event.id}",
                {"event": _event_meta(event)},
            )
        if event.type == EventType.EXECUTION_FAILED.value:
            started += await self._error_workflow(event)
        return started

    async def _error_workflow(self, event: FeedEvent) -> int:
        execution_id = event.payload.get("execution_id")
        if not isinstance(execution_id, str):
            return 0
        failed = await self.engine.store.get_execution(execution_id)
        if failed is None:
            return 0
        try:
            wf = await self.engine.compiled(failed.workflow_id, failed.version)
        except _START_ERRORS:
            return 0
        target = wf.workflow.settings.error_workflow_id
        if not target or target == failed.workflow_id:
            return 0
        data = {
            "execution_id": execution_id,
            "workflow_id": failed.workflow_id,
            "error": event.payload.get("error"),
        }
        return await self._start(
            event.tenant_id,
            target,
            None,
            data,
            f"error-{failed.workflow_id}-{execution_id}",
            {"event": _event_meta(event)},
            trigger_type="error",
        )

    async def _start(
        self,
        tenant_id: str,
        workflow_id: str,
        node_id: str | None,
        data: Any,
        dedupe_key: str,
        metadata: dict[str, Any],
        trigger_type: str = "event",
    ) -> int:
        version = await self.versions(tenant_id, workflow_id)
        if version is None:
            log.info("event target has no active version", workflow_id=workflow_id)
            return 0
        try:
            await self.engine.start_execution(
                tenant_id=tenant_id,
                workflow_id=workflow_id,
                version=version,
                data=data,
                trigger_type=trigger_type,
                node_id=node_id,
                dedupe_key=dedupe_key,
                metadata=metadata,
            )
        except _START_ERRORS as e:
            log.warning("event start failed", workflow_id=workflow_id, error=str(e))
            return 0
        return 1

    # --- webhook recovery -------------------------------------------------------------

    async def recover_webhooks(self) -> int:
        """Dispatch webhook events whose job never ran."""
        older = self.clock.now() - timedelta(seconds=self.options.webhook_grace_s)
        count = 0
        for event_id in await self.events.stale_received(older, self.options.batch):
            if await self.dispatcher.dispatch(event_id) is not None:
                count += 1
        if count:
            # Lost (Redis restarted, a crash before the enqueue) or late behind a backlog:
            # either way dispatching again is safe, the event's row decides once.
            log.warning(
                "dispatched webhook events still waiting for their job",
                count=count,
                waited_s=self.options.webhook_grace_s,
            )
        return count


def _event_meta(event: FeedEvent) -> dict[str, Any]:
    return {
        "id": event.id,
        "type": event.type,
        "sequence": event.sequence,
        "stream_id": event.stream_id,
        "timestamp": event.timestamp.isoformat(),
    }

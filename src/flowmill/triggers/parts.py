"""The trigger side of one process, assembled over an open database and engine."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flowmill.blobs.store import BlobStore
from flowmill.channels.resolver import ChannelResolver
from flowmill.channels.store import ChannelRepository
from flowmill.clock import Clock
from flowmill.config import Settings
from flowmill.engine.engine import Engine
from flowmill.engine.ports import TriggerHandlers
from flowmill.quotas import QuotaBook
from flowmill.store.database import Database
from flowmill.store.event_feed import EventFeed
from flowmill.store.leases import LeaseStore
from flowmill.store.triggers import TriggerRepository
from flowmill.store.webhook_events import WebhookEventStore
from flowmill.store.workflows import WorkflowRepository
from flowmill.triggers.dispatch import WebhookDispatcher
from flowmill.triggers.ingress import WebhookIngress
from flowmill.triggers.providers import WebhookProviderRegistry
from flowmill.triggers.service import TriggerService, TriggerServiceOptions


@dataclass
class TriggerParts:
    """Webhook ingress and dispatch, the trigger service, and their stores."""

    triggers: TriggerRepository
    events: WebhookEventStore
    feed: EventFeed
    providers: WebhookProviderRegistry
    ingress: WebhookIngress
    dispatcher: WebhookDispatcher
    service: TriggerService


def build_trigger_parts(
    *,
    settings: Settings,
    db: Database,
    engine: Engine,
    handlers: TriggerHandlers,
    workflows: WorkflowRepository,
    clock: Clock,
    vault: Any = None,
    quotas: QuotaBook | None = None,
    blobs: BlobStore | None = None,
) -> TriggerParts:
    """Assemble the trigger side, and register its dispatcher in ``handlers``.

    ``handlers`` is the one the engine was built with: the dispatcher needs the engine,
    so the engine is handed the handler map, not the dispatcher.
    """
    triggers = TriggerRepository(db, clock)
    events = WebhookEventStore(db, clock)
    feed = EventFeed(db, clock)
    providers = WebhookProviderRegistry.from_entry_points()
    ingress = WebhookIngress(
        triggers=triggers,
        events=events,
        queue=engine.queue,
        providers=providers,
        keyring=settings.keyring(),
        vault=vault,
        clock=clock,
        cache_s=settings.webhook_cache_s,
        quotas=quotas,
        blobs=blobs,
        # The request of a late answer dispatches its event itself, with or without a
        # worker here: one queue hop (and, in an API without a worker, one process hop)
        # less on the path someone is waiting on.
        dispatch_late=True,
    )
    dispatcher = WebhookDispatcher(
        engine=engine,
        triggers=triggers,
        events=events,
        providers=providers,
        versions=workflows.active_version,
        channels=ChannelResolver(ChannelRepository(db, clock)),
        blobs=blobs,
    )
    handlers.register_webhook(dispatcher.handle_job)
    service = TriggerService(
        engine=engine,
        triggers=triggers,
        leases=LeaseStore(db),
        feed=feed,
        events=events,
        dispatcher=dispatcher,
        versions=workflows.active_version,
        clock=clock,
        options=TriggerServiceOptions(
            tick_s=settings.scheduler_tick_s,
            lease_ttl_s=settings.scheduler_lease_s,
            webhook_grace_s=settings.webhook_recovery_s,
        ),
    )
    return TriggerParts(triggers, events, feed, providers, ingress, dispatcher, service)

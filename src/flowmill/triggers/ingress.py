"""Webhook ingress: raw request in → verify → record durably → enqueue → acknowledge.

In that order, so an acknowledged event is never lost: the answer is sent only after
the ``webhook_events`` row is committed (and its job handed to the queue; if the
queue is down the row is still there, and the trigger service dispatches it). Starting
workflows happens off the request path, in a worker (:mod:`flowmill.triggers.dispatch`).

Two ways to name the target:

- a trigger row's id (``/webhooks/{id}/{provider}``, ``/api/webhooks/{id}``): one
  trigger, verified with its provider and secret;
- the seed route ``/webhooks/{tenant}/{triggerType}/{actionType}``: every enabled
  webhook node of the tenant's active workflows with that ``triggerType`` and
  ``actionType``. The request must pass the verification of each of them (usually
  one provider and secret for the route; a node that names no provider is explicitly
  unverified). The event fans out to all of them.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog
from pydantic import ValidationError

from flowmill import jsonutil
from flowmill.blobs.store import BlobStore, Owner
from flowmill.clock import Clock, SystemClock
from flowmill.credentials.crypto import CredentialError, Keyring
from flowmill.credentials.use import CredentialUse
from flowmill.domain.errors import NotFound
from flowmill.engine.ports import JobQueue, TriggerJob
from flowmill.ids import uuid7
from flowmill.quotas import QuotaBook
from flowmill.store.triggers import TriggerRecord, TriggerRepository
from flowmill.store.webhook_events import WebhookEventRow, WebhookEventStatus, WebhookEventStore
from flowmill.triggers.batching import GroupCommit
from flowmill.triggers.definitions import RespondMode, respond_of, route_of
from flowmill.triggers.keys import webhook_dedupe_key
from flowmill.triggers.providers import (
    FailureReason,
    IncomingWebhook,
    ProviderConfig,
    WebhookProvider,
    WebhookProviderRegistry,
)
from flowmill.triggers.secrets import open_secrets
from flowmill.triggers.webhooks import (
    Accepted,
    Challenge,
    NotAnEvent,
    Rejected,
    WebhookOutcome,
    inspect_webhook,
)

log = structlog.get_logger("flowmill.webhooks")
REDACTED_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})
_SECRET_FIELDS = ("secret", "token", "value", "password")


class UnknownWebhook(NotFound):
    """No enabled webhook at this URL (answered 404, not recorded)."""


@dataclass(frozen=True)
class Target:
    """A trigger row with what verifying a request for it takes.

    ``problem`` is set when the row cannot verify anything (bad provider config, a
    secret that does not open): requests for it are refused and recorded.
    """

    trigger: TriggerRecord
    provider: WebhookProvider[Any] | None
    config: ProviderConfig | None
    secrets: tuple[str, ...]
    problem: str | None = None

    @property
    def verifier(self) -> tuple[str, str, tuple[str, ...]]:
        """What makes two targets verify alike (provider, config, secrets)."""
        config = self.config.model_dump_json() if self.config is not None else ""
        return (self.trigger.provider or "none", config, self.secrets)


@dataclass
class IngressResult:
    """What to answer, and what to wait for when the webhook answers late.

    Attributes:
        status: HTTP status.
        body: Response body.
        content_type: Its type.
        headers: Extra headers.
        event_id: The recorded event (``None`` for handshakes and 404s).
        event_status: Its status as recorded.
        respond: The webhook's respond mode.
        timeout_s: How long a late answer may wait.
        targets: The triggers the event is for.
        event: The recorded event, when this process dispatches it itself
            (``in_place``): a late answer whose worker runs here took no queue job.
    """

    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    event_id: str | None = None
    event_status: WebhookEventStatus | None = None
    respond: RespondMode = RespondMode.IMMEDIATE
    timeout_s: float = 10.0
    targets: tuple[TriggerRecord, ...] = ()
    event: WebhookEventRow | None = None


def ack_body(event_id: str, status: str, **extra: Any) -> bytes:
    """The acknowledgement: ``{"event_id", "status"}``."""
    return jsonutil.dumpb({"event_id": event_id, "status": status, **extra})


def recorded_headers(request: IncomingWebhook) -> list[list[str]]:
    """The headers as received, credentials redacted."""
    return [
        [name, "[redacted]" if name.lower() in REDACTED_HEADERS else value]
        for name, value in request.headers.items_raw()
    ]


class WebhookIngress:
    """Turns webhook requests into recorded, queued events.

    Args:
        triggers: Trigger rows.
        events: The ``webhook_events`` table.
        queue: Where dispatch jobs go.
        providers: Webhook providers.
        keyring: Opens webhook secrets.
        vault: Resolves the credentials named by definition webhook nodes.
        clock: Time (verification windows, record times).
        cache_s: How long a resolved trigger is reused; a deactivated webhook may
            accept requests this long (they are recorded, and dispatch checks again).
        quotas: Tenants' quotas; deliveries over ``webhook_requests_per_minute`` are
            answered 429 with ``Retry-After`` (the sender retries), and not recorded.
        blobs: Where bodies above its threshold go (verified first, never decoded
            here); the event row then holds the blob's id instead of the bytes.
        runs_here: Whether this process's engine worker runs: then an event of a
            late-answer webhook (one target) is dispatched in place by the request
            waiting for it, and takes no queue job (a crash before its dispatch
            leaves it ``received``, for recovery, as a lost job would).
    """

    def __init__(
        self,
        *,
        triggers: TriggerRepository,
        events: WebhookEventStore,
        queue: JobQueue,
        providers: WebhookProviderRegistry,
        keyring: Keyring | None,
        vault: Any = None,
        clock: Clock | None = None,
        cache_s: float = 1.0,
        quotas: QuotaBook | None = None,
        blobs: BlobStore | None = None,
        runs_here: Callable[[], bool] | None = None,
    ) -> None:
        self.triggers = triggers
        self._runs_here = runs_here
        self._here: set[str] = set()  # events whose request dispatches them itself
        self.events = events
        self.queue = queue
        self.providers = providers
        self.keyring = keyring
        self.vault = vault
        self.clock = clock or SystemClock()
        self.cache_s = cache_s
        self.quotas = quotas
        self.blobs = blobs
        self._cache: dict[str, tuple[float, list[Target]]] = {}
        self._loading: dict[str, asyncio.Future[list[Target]]] = {}
        self._writer: GroupCommit[WebhookEventRow, WebhookEventStatus] = GroupCommit(self._flush)

    # --- resolving targets ------------------------------------------------------------

    async def _cached(self, key: str, load: Any) -> list[Target]:
        """Targets of ``key``, loaded once per ``cache_s`` however many requests ask.

        When an entry expires, the first request starts one refresh and every request
        meanwhile gets the previous value: without this, all requests in flight missed
        at the same instant and queued on the connection pool (a stall every second).
        Only a key never seen waits for its load, and then all its callers share it.
        """
        now = time.monotonic()
        hit = self._cache.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        pending = self._loading.get(key)
        if pending is None:
            pending = asyncio.ensure_future(self._load(key, load))
            self._loading[key] = pending
        if hit is not None:
            return hit[1]  # stale for at most one refresh
        return await asyncio.shield(pending)

    async def _load(self, key: str, load: Any) -> list[Target]:
        try:
            targets: list[Target] = await load()
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[key] = (time.monotonic() + self.cache_s, targets)
            return targets
        finally:
            self._loading.pop(key, None)

    def forget(self) -> None:
        """Drop cached triggers (after a change made in this process)."""
        self._cache.clear()

    async def _target(self, trigger: TriggerRecord) -> Target:
        provider_name = trigger.provider or "none"
        if provider_name not in self.providers:
            return Target(trigger, None, None, (), f"unknown provider {provider_name!r}")
        provider = self.providers.get(provider_name)
        try:
            config = provider.parse_config(trigger.config.get("provider") or {})
        except ValidationError as e:
            return Target(trigger, provider, None, (), f"provider config invalid: {e}"[:200])
        try:
            secrets = await self._secrets(trigger)
        except (CredentialError, LookupError, ValueError) as e:
            return Target(trigger, provider, config, (), f"secret unavailable: {e}"[:200])
        return Target(trigger, provider, config, secrets)

    async def _secrets(self, trigger: TriggerRecord) -> tuple[str, ...]:
        if trigger.secret:
            return open_secrets(self.keyring, trigger.tenant_id, trigger.id, trigger.secret)
        name = trigger.config.get("secret_credential")
        if not name:
            return ()
        if self.vault is None:
            raise LookupError("no credential vault to resolve the secret")
        use = CredentialUse("webhook", trigger_id=trigger.id)
        _kind, data = await self.vault.resolve(trigger.tenant_id, str(name), use)
        for key in _SECRET_FIELDS:
            if isinstance(data.get(key), str) and data[key]:
                return (data[key],)
        raise LookupError(f"credential {name!r} holds no secret")

    async def by_trigger(self, trigger_id: str) -> list[Target]:
        """The enabled webhook trigger ``trigger_id`` (empty when there is none)."""

        async def _load() -> list[Target]:
            trigger = await self.triggers.ingress_webhook(trigger_id)
            return [] if trigger is None else [await self._target(trigger)]

        return await self._cached(f"id:{trigger_id}", _load)

    async def by_route(self, tenant_id: str, trigger_type: str, action_type: str) -> list[Target]:
        """The targets of a seed route (empty when no active workflow listens on it)."""
        route = route_of(trigger_type, action_type)

        async def _load() -> list[Target]:
            return [await self._target(t) for t in await self.triggers.routed(tenant_id, route)]

        return await self._cached(f"route:{tenant_id}\x00{route}", _load)

    # --- receiving --------------------------------------------------------------------

    async def receive_trigger(
        self, trigger_id: str, provider: str | None, request: IncomingWebhook
    ) -> IngressResult:
        """A request to a trigger's own URL.

        Raises:
            UnknownWebhook: No enabled webhook with this id (and this provider).
        """
        targets = await self.by_trigger(trigger_id)
        if not targets or (provider is not None and targets[0].trigger.provider != provider):
            raise UnknownWebhook(trigger_id)
        return await self._receive(targets, targets[0].trigger.id, request)

    async def receive_route(
        self, tenant_id: str, trigger_type: str, action_type: str, request: IncomingWebhook
    ) -> IngressResult:
        """A request to the seed route of a tenant.

        Raises:
            UnknownWebhook: No active workflow of the tenant listens on the route.
        """
        targets = await self.by_route(tenant_id, trigger_type, action_type)
        if not targets:
            raise UnknownWebhook(route_of(trigger_type, action_type))
        scope = "route-" + route_of(trigger_type, action_type)
        return await self._receive(targets, scope, request)

    async def _receive(
        self, targets: Sequence[Target], scope: str, request: IncomingWebhook
    ) -> IngressResult:
        now = self.clock.now()
        first = targets[0].trigger
        if self.quotas is not None:
            wait = await self.quotas.throttled(first.tenant_id, "webhook_requests_per_minute")
            if wait is not None:
                return _over_quota(wait)
        accepted: Accepted | None = None
        big = self.blobs is not None and len(request.body) > self.blobs.threshold
        for target in _distinct(targets):
            if target.provider is None or target.config is None or target.problem:
                log.warning("webhook cannot verify", trigger=target.trigger.id, why=target.problem)
                outcome: WebhookOutcome = Rejected(FailureReason.NO_SECRET, target.problem)
            else:
                outcome = inspect_webhook(
                    target.provider, target.config, request, target.secrets, now, decode=not big
                )
            if isinstance(outcome, Challenge | NotAnEvent):
                r = outcome.response
                return IngressResult(r.status, r.body, r.content_type, dict(r.headers))
            if isinstance(outcome, Rejected):
                reason = outcome.reason.value
                detail = f"{reason}: {outcome.detail}" if outcome.detail else reason
                event_id = await self._record_refusal(targets, request, now, detail)
                r = outcome.response
                return IngressResult(
                    r.status,
                    r.body,
                    r.content_type,
                    dict(r.headers),
                    event_id=event_id,
                    event_status=WebhookEventStatus.REJECTED,
                )
            if accepted is None:
                accepted = outcome
        assert accepted is not None
        dedupe = webhook_dedupe_key(scope, accepted.event_id) if accepted.event_id else None
        row = self._row(targets, request, now, verified=True)
        row.dedupe_key = dedupe
        row.event_type = accepted.event_type
        stored = await self._store_body(row, request) if big else None
        mode, timeout = (
            respond_of(first.config)
            if len(targets) == 1
            else (
                RespondMode.IMMEDIATE,
                0.0,
            )
        )
        late = mode is not RespondMode.IMMEDIATE
        here = late and self._runs_here is not None and self._runs_here()
        if here:
            self._here.add(row.id)
        status = await self._writer.submit(row)
        if stored is not None and status is not WebhookEventStatus.RECEIVED:
            await stored.discard(row.tenant_id, row.id)  # a duplicate: its body is not kept
        return IngressResult(
            200,
            ack_body(row.id, status.value),
            event_id=row.id,
            event_status=status,
            respond=mode if status is WebhookEventStatus.RECEIVED else RespondMode.IMMEDIATE,
            timeout_s=timeout,
            targets=tuple(t.trigger for t in targets),
            event=row if here and status is WebhookEventStatus.RECEIVED else None,
        )

    def _row(
        self, targets: Sequence[Target], request: IncomingWebhook, now: Any, *, verified: bool
    ) -> WebhookEventRow:
        first = targets[0].trigger
        return WebhookEventRow(
            id=uuid7(),
            tenant_id=first.tenant_id,
            trigger_id=first.id if len(targets) == 1 else None,
            provider=first.provider or "none",
            route=request.path,
            method=request.method,
            headers=recorded_headers(request),
            body=request.body,
            verified=verified,
            status=WebhookEventStatus.RECEIVED if verified else WebhookEventStatus.REJECTED,
            received_at=now,
            targets=[t.trigger.id for t in targets],
        )

    async def _store_body(self, row: WebhookEventRow, request: IncomingWebhook) -> BlobStore:
        """Move a large body into the blob store, owned by the event (before the row is
        committed: a crash in between leaves a body the blob purge finds ownerless)."""
        assert self.blobs is not None
        media = request.headers.get("content-type", "") or "application/octet-stream"
        ref = await self.blobs.write_bytes(
            row.tenant_id, Owner(webhook_event_id=row.id), request.body, media_type=media
        )
        row.body = b""
        row.body_blob_id = ref.id
        return self.blobs

    async def _record_refusal(
        self, targets: Sequence[Target], request: IncomingWebhook, now: Any, error: str
    ) -> str:
        # A refused request is recorded without a dedupe key: a forger must not be able
        # to reserve the id of a genuine event.
        row = self._row(targets, request, now, verified=False)
        if self.blobs is not None and len(row.body) > self.blobs.threshold:
            # an unverified body is not worth a blob: keep its start, for diagnosis
            row.body = bytes(row.body[: self.blobs.threshold])
            error = f"{error} (body of {len(request.body)} bytes cut to its start)"[:200]
        row.verification_error = error
        row.targets = None
        row.processed_at = now
        await self._writer.submit(row)
        return row.id

    async def _flush(self, rows: Sequence[WebhookEventRow]) -> list[WebhookEventStatus]:
        try:
            statuses = await self.events.insert(rows)
        finally:
            here, self._here = self._here, self._here.difference(r.id for r in rows)
        received = [
            r.id
            for r, s in zip(rows, statuses, strict=True)
            if s is WebhookEventStatus.RECEIVED and r.id not in here
        ]
        if received:
            # One job per batch: adding a BullMQ job costs more CPU than recording the
            # event, so the batch travels together (workers dispatch its events).
            job = TriggerJob(
                rows[0].tenant_id,
                "",
                "webhook",
                {"webhook_event_ids": received} if len(received) > 1 else None,
                webhook_event_id=received[0],
            )
            try:
                await self.queue.put([job])
            except Exception:
                # Committed already: the trigger service finds received events whose job
                # never arrived, so the acknowledgement still holds.
                log.exception(
                    "could not enqueue webhook events; recovery will", count=len(received)
                )
        return statuses

    async def close(self) -> None:
        """Wait for writes under way; release connections."""
        await self._writer.drain()
        await self.events.close()


def _over_quota(wait_s: float) -> IngressResult:
    seconds = max(1, math.ceil(wait_s))
    body = jsonutil.dumpb(
        {
            "error": {
                "code": "rate_limited",
                "message": f"deliveries over this tenant's quota; retry in {seconds} s",
                "details": [],
            }
        }
    )
    return IngressResult(429, body, headers={"Retry-After": str(seconds)})


def _distinct(targets: Sequence[Target]) -> list[Target]:
    seen: set[tuple[str, str, tuple[str, ...]]] = set()
    out = []
    for t in targets:
        if t.verifier not in seen:
            seen.add(t.verifier)
            out.append(t)
    return out

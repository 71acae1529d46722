"""Webhook ingress: raw request in → verify → record durably → acknowledge → enqueue.

In that order, so an acknowledged event is never lost: the answer is sent only after
the ``webhook_events`` row is committed; its job is handed to the queue as the answer
goes (if the queue is down, or the process goes first, the row is still there, and the
trigger service dispatches it). Starting workflows happens off the request path, in a
worker (:mod:`flowmill.triggers.dispatch`), except for a late-answer webhook's event:
the request waiting for it dispatches it (:mod:`flowmill.triggers.respond`).

Two ways to name the target:

- a trigger row's id (``/webhooks/{id}/{provider}``, ``/api/webhooks/{id}``): one
  trigger, verified with its provider and secret;
- the seed route ``/webhooks/{tenant}/{triggerType}/{actionType}``: every enabled
  webhook node of the tenant's active workflows with that ``triggerType`` and
  ``actionType``. The request must pass the verification of each of them (usually
  one provider and secret for the route; a node that names no provider is explicitly
  unverified). The event fans out to all of them.

A body larger than the blob store's threshold is **streamed**: the front door hands over
its first part and the rest still unread (``rest``), and each chunk, as it arrives,
updates the providers' HMACs (:class:`~flowmill.triggers.providers.base.BodyVerifier`)
and goes on into the blob store, owned by the event id chosen up front. Verification is
decided once the last byte is in, on exactly the bytes stored; a request that fails it
loses its blob at once and is recorded, refused, with its first part. So a 50 MB body
costs its chunk in flight, not 50 MB. Only a provider with a ``check`` of its own (one
that is not an HMAC over the body) still gets the whole body in memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import math
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import structlog
from pydantic import ValidationError

from flowmill import jsonutil
from flowmill.blobs.ref import BlobRef
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
from flowmill.tasks import spawn
from flowmill.triggers.batching import GroupCommit
from flowmill.triggers.definitions import RespondMode, respond_of, route_of
from flowmill.triggers.keys import webhook_dedupe_key
from flowmill.triggers.providers import (
    FailureReason,
    IncomingWebhook,
    ProviderConfig,
    Verification,
    WebhookProvider,
    WebhookProviderRegistry,
)
from flowmill.triggers.providers.base import BodyVerifier
from flowmill.triggers.secrets import open_secrets
from flowmill.triggers.webhooks import (
    Accepted,
    Challenge,
    NotAnEvent,
    Rejected,
    WebhookOutcome,
    classify,
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
        blobs: Where bodies above its threshold go (verified as they stream in, never
            decoded here); the event row then holds the blob's id instead of the bytes.
        dispatch_late: Whether an event of a late-answer webhook (one target) is
            dispatched in place by the request waiting for it (the API's
            :class:`~flowmill.triggers.respond.Responder` does), taking no queue job:
            its steps run here when this process has a worker, and go to the queue
            when it has none. A crash before its dispatch leaves it ``received``, for
            recovery, as a lost job would.
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
        dispatch_late: bool = False,
    ) -> None:
        self.triggers = triggers
        self._dispatch_late = dispatch_late
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
        self._puts: set[asyncio.Task[None]] = set()  # jobs of acknowledged events, on their way

    @property
    def stream_after(self) -> int | None:
        """Past this many bytes a body is streamed into the blob store: callers hand
        over the rest unread (``None``: no blob store, bodies are read whole)."""
        return self.blobs.threshold if self.blobs is not None else None

    # --- resolving targets ------------------------------------------------------------

    async def _cached(self, key: str, load: Any) -> list[Target]:
        """Targets of ``key``, loaded once per ``cache_s`` however many requests ask.

        When an entry expires, the first request starts one refresh and every request
        meanwhile gets the previous value: without this, all requests in flight missed
        at the same instant and queued on the connection pool (a stall every second).
        Only a key never seen waits for its load, and then all its callers share it.
        """
        now = self.clock.monotonic()
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
            self._cache[key] = (self.clock.monotonic() + self.cache_s, targets)
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
        self,
        trigger_id: str,
        provider: str | None,
        request: IncomingWebhook,
        rest: AsyncIterator[bytes] | None = None,
    ) -> IngressResult:
        """A request to a trigger's own URL.

        Args:
            trigger_id: The trigger's id.
            provider: The provider the URL names (``None``: any).
            request: The request; its body is the whole body, or its first part when
                ``rest`` is given.
            rest: The rest of a body past :attr:`stream_after`, not read yet.

        Raises:
            UnknownWebhook: No enabled webhook with this id (and this provider).
        """
        targets = await self.by_trigger(trigger_id)
        if not targets or (provider is not None and targets[0].trigger.provider != provider):
            raise UnknownWebhook(trigger_id)
        return await self._receive(targets, targets[0].trigger.id, request, rest)

    async def receive_route(
        self,
        tenant_id: str,
        trigger_type: str,
        action_type: str,
        request: IncomingWebhook,
        rest: AsyncIterator[bytes] | None = None,
    ) -> IngressResult:
        """A request to the seed route of a tenant (``request`` and ``rest`` as in
        :meth:`receive_trigger`).

        Raises:
            UnknownWebhook: No active workflow of the tenant listens on the route.
        """
        targets = await self.by_route(tenant_id, trigger_type, action_type)
        if not targets:
            raise UnknownWebhook(route_of(trigger_type, action_type))
        scope = "route-" + route_of(trigger_type, action_type)
        return await self._receive(targets, scope, request, rest)

    async def _receive(
        self,
        targets: Sequence[Target],
        scope: str,
        request: IncomingWebhook,
        rest: AsyncIterator[bytes] | None,
    ) -> IngressResult:
        now = self.clock.now()
        first = targets[0].trigger
        if self.quotas is not None:
            # before reading the body: a throttled sender's megabytes are not worth it
            wait = await self.quotas.throttled(first.tenant_id, "webhook_requests_per_minute")
            if wait is not None:
                return _over_quota(wait)
        distinct = _distinct(targets)
        event_id = uuid7()
        # a body past the threshold (or still arriving past it) goes to the blob store
        big = self.blobs is not None and (
            rest is not None or len(request.body) > self.blobs.threshold
        )
        verifiers = self._verifiers(distinct, request, now) if big else None
        stored: Stored | None = None
        if verifiers is not None:
            more = rest if rest is not None else _nothing()
            stored = await self._stream(first.tenant_id, event_id, request, more, verifiers)
            checked = replace(request, body=b"", body_sha256=stored.sha256)
            outcomes = [
                _outcome(t, checked, v.result()) for t, v in zip(distinct, verifiers, strict=True)
            ]
        else:
            if rest is not None:  # no blob store, or a provider that must see it whole
                request = replace(request, body=await _whole(request.body, rest))
            outcomes = [_inspect(t, request, now, decode=not big) for t in distinct]
        refused = next((o for o in outcomes if not isinstance(o, Accepted)), None)
        if refused is not None:
            if stored is not None and stored.ref is not None:
                await self._discard(first.tenant_id, event_id)
            size = stored.size if stored is not None else len(request.body)
            return await self._refuse(targets, request, now, refused, size)
        accepted = outcomes[0]
        assert isinstance(accepted, Accepted)
        dedupe = webhook_dedupe_key(scope, accepted.event_id) if accepted.event_id else None
        row = self._row(targets, request, now, verified=True, event_id=event_id)
        row.dedupe_key = dedupe
        row.event_type = accepted.event_type
        if stored is not None and stored.ref is not None:
            row.body = b""
            row.body_blob_id = stored.ref.id
        elif big:  # held whole for a provider with its own check
            await self._store_body(row, request)
        mode, timeout = (
            respond_of(first.config)
            if len(targets) == 1
            else (
                RespondMode.IMMEDIATE,
                0.0,
            )
        )
        late = mode is not RespondMode.IMMEDIATE
        here = late and self._dispatch_late
        if here:
            self._here.add(row.id)
        status = await self._writer.submit(row)
        if big and status is not WebhookEventStatus.RECEIVED:
            await self._discard(row.tenant_id, row.id)  # a duplicate: its body is not kept
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

    async def _refuse(
        self,
        targets: Sequence[Target],
        request: IncomingWebhook,
        now: Any,
        outcome: WebhookOutcome,
        size: int,
    ) -> IngressResult:
        """The answer to a request not accepted: a handshake's or a 405 (not recorded),
        or a refusal (recorded with its reason)."""
        if isinstance(outcome, Challenge | NotAnEvent):
            r = outcome.response
            return IngressResult(r.status, r.body, r.content_type, dict(r.headers))
        assert isinstance(outcome, Rejected)
        reason = outcome.reason.value
        detail = f"{reason}: {outcome.detail}" if outcome.detail else reason
        refused = await self._record_refusal(targets, request, now, detail, size)
        r = outcome.response
        return IngressResult(
            r.status,
            r.body,
            r.content_type,
            dict(r.headers),
            event_id=refused,
            event_status=WebhookEventStatus.REJECTED,
        )

    def _verifiers(
        self, distinct: Sequence[Target], request: IncomingWebhook, now: Any
    ) -> list[BodyVerifier] | None:
        """One verifier per distinct target, set up from the headers (``None``: one of
        the providers must see the whole body)."""
        head = replace(request, body=b"")  # signing() never reads it: make sure
        verifiers = []
        for target in distinct:
            if target.provider is None or target.config is None or target.problem:
                log.warning("webhook cannot verify", trigger=target.trigger.id, why=target.problem)
                verifiers.append(BodyVerifier(None, _cannot_verify(target)))
                continue
            verifier = target.provider.body_verifier(head, target.secrets, target.config, now)
            if verifier is None:
                return None
            verifiers.append(verifier)
        return verifiers

    async def _stream(
        self,
        tenant_id: str,
        event_id: str,
        request: IncomingWebhook,
        rest: AsyncIterator[bytes],
        verifiers: Sequence[BodyVerifier],
    ) -> Stored:
        """Feed the body (``request.body``, then ``rest``) to the verifiers and into a
        blob owned by ``event_id``; a request already refused by its headers is read
        through (so the sender gets its answer) and stored nowhere.

        Raises:
            Exception: Whatever reading the body or the backend raised (a disconnect,
                the body limit); the blob is deleted first.
        """
        assert self.blobs is not None
        digest = hashlib.sha256()
        size = 0

        async def fed() -> AsyncIterator[bytes]:
            nonlocal size
            async for chunk in _chained(request.body, rest):
                for verifier in verifiers:
                    verifier.update(chunk)
                digest.update(chunk)
                size += len(chunk)
                yield chunk

        if any(v.refused for v in verifiers):
            async for _ in fed():
                pass
            return Stored(None, size, digest.hexdigest())
        media = request.headers.get("content-type", "") or "application/octet-stream"
        try:
            ref = await self.blobs.write(
                tenant_id, Owner(webhook_event_id=event_id), fed(), media_type=media
            )
        except Exception:
            with contextlib.suppress(Exception):
                await self._discard(tenant_id, event_id)
            raise
        return Stored(ref, size, digest.hexdigest())

    async def _discard(self, tenant_id: str, event_id: str) -> None:
        """Delete at once the body blob of an event that is not recorded as received."""
        assert self.blobs is not None
        await self.blobs.discard(tenant_id, event_id)

    def _row(
        self,
        targets: Sequence[Target],
        request: IncomingWebhook,
        now: Any,
        *,
        verified: bool,
        event_id: str | None = None,
    ) -> WebhookEventRow:
        first = targets[0].trigger
        return WebhookEventRow(
            id=event_id or uuid7(),
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
        """Move a large body that arrived whole into the blob store, owned by the event
        (before the row is committed: a crash in between leaves a body the blob purge
        finds ownerless)."""
        assert self.blobs is not None
        media = request.headers.get("content-type", "") or "application/octet-stream"
        ref = await self.blobs.write_bytes(
            row.tenant_id, Owner(webhook_event_id=row.id), request.body, media_type=media
        )
        row.body = b""
        row.body_blob_id = ref.id
        return self.blobs

    async def _record_refusal(
        self, targets: Sequence[Target], request: IncomingWebhook, now: Any, error: str, size: int
    ) -> str:
        # A refused request is recorded without a dedupe key: a forger must not be able
        # to reserve the id of a genuine event.
        row = self._row(targets, request, now, verified=False)
        if self.blobs is not None and size > self.blobs.threshold:
            # an unverified body is not worth a blob: keep its start, for diagnosis
            # (a streamed body's request holds only its start)
            row.body = bytes(row.body[: self.blobs.threshold])
            error = f"{error} (body of {size} bytes cut to its start)"[:200]
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
            # The acknowledgement needs the commit, not the job: the job is sent after
            # the answers, so a slow queue (a busy Redis at the tail) delays no sender
            # and holds no flush slot. A job that never arrives (the process gone, the
            # queue down) is the trigger service's to recover, as it always was.
            spawn(self._enqueue(job, len(received)), name="webhook-enqueue", keep=self._puts)
        return statuses

    async def _enqueue(self, job: TriggerJob, count: int) -> None:
        try:
            await self.queue.put([job])
        except Exception:
            # Committed already: the trigger service finds received events whose job
            # never arrived, so the acknowledgement still holds.
            log.exception("could not enqueue webhook events; recovery will", count=count)

    async def close(self) -> None:
        """Wait for writes under way; release connections."""
        await self._writer.drain()
        while self._puts:  # the jobs of what was acknowledged, sent before the queue closes
            await asyncio.gather(*list(self._puts), return_exceptions=True)
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


@dataclass(frozen=True)
class Stored:
    """A body that streamed in: its blob (``None``: refused by its headers, stored
    nowhere), its size and its hex SHA-256."""

    ref: BlobRef | None
    size: int
    sha256: str


def _cannot_verify(target: Target) -> Verification:
    return Verification.failed(FailureReason.NO_SECRET, target.problem)


def _outcome(
    target: Target, request: IncomingWebhook, verification: Verification
) -> WebhookOutcome:
    if target.provider is None or target.config is None:
        return Rejected(FailureReason.NO_SECRET, target.problem)
    return classify(target.provider, target.config, request, verification, decode=False)


def _inspect(target: Target, request: IncomingWebhook, now: Any, *, decode: bool) -> WebhookOutcome:
    if target.provider is None or target.config is None or target.problem:
        log.warning("webhook cannot verify", trigger=target.trigger.id, why=target.problem)
        return Rejected(FailureReason.NO_SECRET, target.problem)
    return inspect_webhook(
        target.provider, target.config, request, target.secrets, now, decode=decode
    )


async def _nothing() -> AsyncIterator[bytes]:
    return
    yield  # an async generator that yields nothing


async def _chained(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    if first:
        yield first
    async for chunk in rest:
        if chunk:
            yield chunk


async def _whole(first: bytes, rest: AsyncIterator[bytes]) -> bytes:
    """The body read whole, in one growing buffer (not chunks joined at the end, which
    would hold it twice)."""
    buf = bytearray(first)
    async for chunk in rest:
        buf += chunk
    # A bytearray reads as bytes to every provider (hmac, hashlib, orjson, slices);
    # bytes(buf) would copy the whole body once more.
    return buf  # type: ignore[return-value]


def _distinct(targets: Sequence[Target]) -> list[Target]:
    seen: set[tuple[str, str, tuple[str, ...]]] = set()
    out = []
    for t in targets:
        if t.verifier not in seen:
            seen.add(t.verifier)
            out.append(t)
    return out

"""Webhook ingress over HTTP: the URLs senders call (no API key: each request is
verified by its webhook's provider instead).

- ``POST /webhooks/{webhook_id}/{provider}`` (``GET`` for handshakes)
- ``POST /webhooks/{client_id}/{trigger_type}/{action_type}`` (the seed route)
- ``POST /api/webhooks/{webhook_id}`` (in ``webhooks.py``, beside the webhook's ``GET``)

Raw body → verify → record → enqueue → acknowledge; see ``triggers/ingress.py``.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, Response

from flowmill.api.deps import ApiContext, Ctx
from flowmill.api.errors import ApiError
from flowmill.api.schemas import ErrorResponse
from flowmill.api.trigger_schemas import WebhookAck
from flowmill.store.tenants import TENANT_ID_PATTERN
from flowmill.triggers.definitions import RespondMode
from flowmill.triggers.ingress import IngressResult, UnknownWebhook
from flowmill.triggers.providers import IncomingWebhook
from flowmill.triggers.providers.request import Headers, QueryParams
from flowmill.triggers.respond import Responder

router = APIRouter(tags=["webhook ingress"])

_ANY_BODY: dict[str, Any] = {
    "requestBody": {
        "required": False,
        "description": "The sender's payload, verified on its raw bytes.",
        "content": {
            "application/json": {"schema": {"description": "Any JSON value."}},
            "application/x-www-form-urlencoded": {"schema": {"type": "object"}},
            "text/plain": {"schema": {"type": "string"}},
        },
    }
}
INGRESS_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "Recorded (`received`, or `duplicate` of an event seen before); "
        "a handshake's answer; or the workflow's answer for late respond modes.",
        "content": {
            "application/json": {"schema": WebhookAck.model_json_schema()},
            "text/plain": {"schema": {"type": "string"}},
        },
    },
    202: {"model": WebhookAck, "description": "Recorded; the workflow had not answered in time."},
    400: {"model": ErrorResponse, "description": "Verified, but the body does not decode."},
    401: {"model": ErrorResponse, "description": "Verification failed (recorded with why)."},
    404: {"model": ErrorResponse, "description": "No active webhook at this URL."},
    405: {
        "model": ErrorResponse,
        "description": "A GET that is no subscription handshake (GET never starts anything).",
    },
    413: {"model": ErrorResponse, "description": "The body is larger than the limit."},
    429: {
        "model": ErrorResponse,
        "description": "Over the tenant's webhook quota: not recorded; retry after "
        "`Retry-After` seconds.",
    },
    502: {"model": ErrorResponse, "description": "The workflow's execution failed (late modes)."},
}
_TENANT = re.compile(TENANT_ID_PATTERN)
_PART = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")

WebhookIdPath = Annotated[str, Path(max_length=64, description="Webhook (trigger) id.")]
PartPath = Annotated[str, Path(max_length=100)]


def _nowhere() -> ApiError:
    return ApiError(404, "not_found", "no active webhook at this URL")


def is_uuid(text: str) -> bool:
    """Whether ``text`` is a UUID (ids that are not cannot name a webhook)."""
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


#: Without a blob store, bodies larger than this are read into one growing buffer, not
#: joined from chunks (which holds the body twice at the end).
_BUFFER_AFTER = 1024 * 1024


async def split_body(
    chunks: AsyncIterator[bytes], stream_after: int | None
) -> tuple[bytes, AsyncIterator[bytes] | None]:
    """A body's first part and, when it goes on past ``stream_after`` bytes, the rest
    still unread (the same iterator), for the ingress to stream into the blob store.

    With ``stream_after`` ``None`` (no blob store) the whole body, and no rest.
    """
    parts: list[bytes] = []
    size = 0
    buf: bytearray | None = None
    async for chunk in chunks:
        if buf is not None:
            buf += chunk
            continue
        parts.append(chunk)
        size += len(chunk)
        if stream_after is not None and size > stream_after:
            return b"".join(parts), chunks
        if size > _BUFFER_AFTER:
            buf = bytearray(b"".join(parts))
            parts.clear()
    if buf is not None:
        # A bytearray reads as bytes to every provider (hmac, hashlib, orjson, slices);
        # bytes(buf) would copy the whole body once more.
        return buf, None  # type: ignore[return-value]
    return b"".join(parts), None


async def incoming(
    request: Request, stream_after: int | None
) -> tuple[IncomingWebhook, AsyncIterator[bytes] | None]:
    """The request as a provider sees it (method, path, raw headers, raw body, query),
    and the rest of a body past ``stream_after`` bytes, unread (see :func:`split_body`).
    """
    body, rest = await split_body(request.stream(), stream_after)
    headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.scope["headers"]]
    webhook = IncomingWebhook(
        method=request.method,
        path=request.url.path,
        headers=Headers(headers),
        body=body,
        query=QueryParams(request.url.query),
    )
    return webhook, rest


async def _drain(rest: AsyncIterator[bytes] | None) -> None:
    """Read through what the ingress left unread (a 404, a 429 decided before the body):
    the sender gets its answer, not a connection reset in the middle of its upload."""
    if rest is not None:
        async for _ in rest:
            pass


def to_response(result: IngressResult) -> Response:
    """The HTTP answer of an ingress result."""
    return Response(
        content=result.body,
        status_code=result.status,
        media_type=result.content_type,
        headers=result.headers,
    )


Call = Callable[[IncomingWebhook, AsyncIterator[bytes] | None], Awaitable[IngressResult]]
"""One ingress call: the request (its body whole, or its first part) and the rest of a
body past the ingress's ``stream_after``, unread."""


def resolve(ctx: ApiContext, parts: tuple[str, ...]) -> Call:
    """The ingress call for a URL's path parts after ``/webhooks/``.

    Two parts name a webhook and its provider; three are the seed route (tenant,
    trigger type, action type).

    Raises:
        ApiError: 404, the URL cannot name an active webhook.
    """
    ingress = ctx.runtime.triggers.ingress
    if len(parts) == 2:
        webhook_id, provider = parts
        if not is_uuid(webhook_id):
            raise _nowhere()
        canonical = str(uuid.UUID(webhook_id))
        return lambda w, rest: ingress.receive_trigger(canonical, provider, w, rest)
    client_id, trigger_type, action_type = parts
    if not (
        _TENANT.fullmatch(client_id) and _PART.match(trigger_type) and _PART.match(action_type)
    ):
        raise _nowhere()
    return lambda w, rest: ingress.receive_route(client_id, trigger_type, action_type, w, rest)


async def answer(
    ctx: ApiContext,
    webhook: IncomingWebhook,
    call: Call,
    rest: AsyncIterator[bytes] | None = None,
) -> IngressResult:
    """Run one ingress call (waiting for late respond modes).

    Raises:
        ApiError: 404, no active webhook at this URL.
    """
    try:
        result = await call(webhook, rest)
    except UnknownWebhook:
        raise _nowhere() from None
    finally:
        await _drain(rest)
    if result.respond is not RespondMode.IMMEDIATE and result.event_id is not None:
        rt = ctx.runtime
        responder = Responder(rt.triggers.events, rt.engine, dispatcher=rt.triggers.dispatcher)
        result = await responder.answer(result, ctx.settings.webhook_max_wait_s)
    return result


async def handle(ctx: Ctx, request: Request, call: Call) -> Response:
    """Answer one ingress request that came through the router."""
    webhook, rest = await incoming(request, ctx.runtime.triggers.ingress.stream_after)
    return to_response(await answer(ctx, webhook, call, rest))


async def by_trigger(ctx: Ctx, request: Request, webhook_id: str, provider: str | None) -> Response:
    """Ingress for a webhook named by its id."""
    if provider is None:
        if not is_uuid(webhook_id):
            raise _nowhere()
        ingress = ctx.runtime.triggers.ingress
        canonical = str(uuid.UUID(webhook_id))
        return await handle(
            ctx, request, lambda w, rest: ingress.receive_trigger(canonical, None, w, rest)
        )
    return await handle(ctx, request, resolve(ctx, (webhook_id, provider)))


@router.get(
    "/webhooks/{webhook_id}/{provider}",
    responses=INGRESS_RESPONSES,
    summary="Answer a webhook handshake (by webhook id)",
)
@router.post(
    "/webhooks/{webhook_id}/{provider}",
    responses=INGRESS_RESPONSES,
    openapi_extra=_ANY_BODY,
    summary="Receive a webhook (by webhook id)",
)
async def receive_by_id(
    ctx: Ctx, request: Request, webhook_id: WebhookIdPath, provider: PartPath
) -> Response:
    """A sender's request to a registered webhook; ``provider`` must be its provider.

    ``GET`` answers handshakes (Meta's ``hub.challenge``).
    """
    return await by_trigger(ctx, request, webhook_id, provider)


@router.get(
    "/webhooks/{client_id}/{trigger_type}/{action_type}",
    responses=INGRESS_RESPONSES,
    summary="Answer a webhook handshake (seed route)",
)
@router.post(
    "/webhooks/{client_id}/{trigger_type}/{action_type}",
    responses=INGRESS_RESPONSES,
    openapi_extra=_ANY_BODY,
    summary="Receive a webhook (seed route)",
)
async def receive_by_route(
    ctx: Ctx,
    request: Request,
    client_id: Annotated[str, Path(max_length=64, description="The tenant id.")],
    trigger_type: PartPath,
    action_type: PartPath,
) -> Response:
    """The seed documents' route: starts every active workflow of tenant ``client_id``
    whose trigger node has this ``triggerType`` and ``actionType`` (e.g.
    ``/webhooks/acme/instagram/message``). Verified with the provider the trigger
    node names; a node that names none is explicitly unverified."""
    return await handle(ctx, request, resolve(ctx, (client_id, trigger_type, action_type)))

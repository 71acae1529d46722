"""Webhook ingress before the router: a path match, then straight to the handler.

Senders post at high rates, and FastAPI's routing and dependency machinery cost more
per request than verifying, recording and enqueueing the webhook itself (profiled at
~40 % against ~15 %). This plain ASGI layer answers ``GET``/``POST /webhooks/{a}/{b}``
and ``/webhooks/{a}/{b}/{c}`` itself with the same code the documented routes in
``api/ingress.py`` use (:func:`resolve`, :func:`answer`, :func:`to_response`);
everything else passes on. It sits inside the body-limit middleware, so the webhook
size limit still applies.
"""

from __future__ import annotations

import re

from fastapi import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from flowmill.api.errors import ApiError, error_json
from flowmill.api.ingress import answer, resolve, to_response
from flowmill.triggers.providers import IncomingWebhook
from flowmill.triggers.providers.request import Headers, QueryParams

_INGRESS = re.compile(r"^/webhooks/([^/]+)/([^/]+)(?:/([^/]+))?/?$")


class WebhookFrontDoor:
    """Serves webhook ingress URLs without the router; passes everything else on."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = None
        if scope["type"] == "http" and scope["method"] in ("GET", "POST"):
            match = _INGRESS.match(scope["path"])
        ctx = getattr(getattr(scope.get("app"), "state", None), "flowmill", None)
        if match is None or ctx is None:
            await self.app(scope, receive, send)
            return
        parts = tuple(p for p in match.groups() if p is not None)
        try:
            call = resolve(ctx, parts)
            webhook = IncomingWebhook(
                method=scope["method"],
                path=scope["path"],
                headers=Headers(
                    [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
                ),
                body=await _body(receive),  # not build(): it would copy a bytearray
                query=QueryParams(scope.get("query_string", b"").decode("latin-1")),
            )
            response = to_response(await answer(ctx, webhook, call))
        except ApiError as e:
            response = error_json(e.status, e.code, e.message, e.details, e.headers)
        except HTTPException as e:  # the body-limit middleware's 413, raised from receive
            response = error_json(e.status_code, "payload_too_large", str(e.detail))
        await response(scope, receive, send)


#: Past this many bytes a body grows in one buffer instead of being joined from chunks at
#: the end (which holds it twice): a 50 MB webhook body costs 50 MB, not 100.
_BUFFER_AFTER = 1024 * 1024


async def _body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    size = 0
    buf: bytearray | None = None
    while True:
        message: Message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        if buf is not None:
            buf += chunk
        else:
            chunks.append(chunk)
            size += len(chunk)
            if size > _BUFFER_AFTER:
                buf = bytearray(b"".join(chunks))
                chunks.clear()
        if not message.get("more_body", False):
            break
    if buf is not None:
        # A bytearray reads as bytes to every provider (hmac, hashlib, orjson, slices);
        # bytes(buf) would copy the whole body once more.
        return buf  # type: ignore[return-value]
    return b"".join(chunks)

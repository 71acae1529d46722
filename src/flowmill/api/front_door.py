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
from collections.abc import AsyncIterator

from fastapi import HTTPException
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from flowmill.api.errors import ApiError, error_json
from flowmill.api.ingress import answer, resolve, split_body, to_response
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
            stream_after = ctx.runtime.triggers.ingress.stream_after
            # a body past the blob threshold is handed over unread past its first part
            body, rest = await split_body(_chunks(receive), stream_after)
            webhook = IncomingWebhook(
                method=scope["method"],
                path=scope["path"],
                headers=Headers(
                    [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
                ),
                body=body,  # not build(): it would copy a bytearray
                query=QueryParams(scope.get("query_string", b"").decode("latin-1")),
            )
            response = to_response(await answer(ctx, webhook, call, rest))
        except ApiError as e:
            response = error_json(e.status, e.code, e.message, e.details, e.headers)
        except HTTPException as e:  # the body-limit middleware's 413, raised from receive
            response = error_json(e.status_code, "payload_too_large", str(e.detail))
        except ClientDisconnect:
            return  # the sender is gone: nothing recorded, no one to answer
        await response(scope, receive, send)


async def _chunks(receive: Receive) -> AsyncIterator[bytes]:
    """The request body's chunks as they arrive.

    Raises:
        ClientDisconnect: The sender went away before the end (a cut body is never
            verified nor recorded as if it were whole).
    """
    while True:
        message: Message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect
        yield message.get("body", b"")
        if not message.get("more_body", False):
            return

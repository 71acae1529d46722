"""Request body size limit, as plain ASGI middleware.

A declared ``Content-Length`` over the limit is refused before the body is read; a
chunked body is counted as it arrives and refused as soon as it passes the limit, so
no request makes the server buffer more than the limit.
"""

from __future__ import annotations

import re

from fastapi import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from flowmill.api.errors import error_json


class _TooLarge(HTTPException):
    """Raised from ``receive``; an HTTPException so that FastAPI's body parsing passes it
    on (to the 413 handler) instead of turning it into a generic 400."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, f"the request body is larger than {max_bytes} bytes")


class _NotUtf8(ValueError):
    """Raised from ``receive`` when an API body is UTF-16 or UTF-32 JSON.

    ``json.loads`` on bytes guesses those encodings from a byte-order mark or NUL bytes
    in the first four bytes and accepts them; the API takes UTF-8 only (docs/api.md), so
    the same four bytes are looked at here, once, on the first chunk. Not an
    HTTPException: FastAPI's body parsing turns it into its 400, which the error handlers
    answer as ``invalid_json``.
    """

    def __init__(self) -> None:
        super().__init__("the request body is not valid JSON in UTF-8")


_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


def _utf8_json_start(chunk: bytes) -> bool:
    head = chunk[:4]
    return not head.startswith(_UTF16_BOMS) and b"\x00" not in head


_WEBHOOK_PATH = re.compile(r"^/webhooks/|^/api/webhooks/[^/]+/?$")


def is_webhook_ingress(scope: Scope) -> bool:
    """Whether the request goes to a webhook URL (which has its own, larger limit)."""
    return bool(_WEBHOOK_PATH.match(scope.get("path", ""))) and scope.get("method") == "POST"


class BodyLimitMiddleware:
    """Answer 413 to requests whose body is larger than ``max_bytes`` (``webhook_max_bytes``
    for webhook ingress URLs, whose senders post whole documents)."""

    def __init__(self, app: ASGIApp, max_bytes: int, webhook_max_bytes: int | None = None) -> None:
        self.app = app
        self.api_max_bytes = max_bytes
        self.webhook_max_bytes = webhook_max_bytes or max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        webhook = is_webhook_ingress(scope)
        limit = self.webhook_max_bytes if webhook else self.api_max_bytes
        # Webhook bodies are the sender's bytes, verified and decoded by their provider.
        await self._limited(scope, receive, send, limit, utf8=not webhook)

    async def _limited(
        self, scope: Scope, receive: Receive, send: Send, limit: int, *, utf8: bool
    ) -> None:
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared < 0:
                    await self._refuse(scope, receive, send, 400, "bad Content-Length header")
                    return
                if declared > limit:
                    await self._refuse(scope, receive, send, 413, self._message(limit))
                    return
        seen = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                body = message.get("body", b"")
                if utf8 and seen == 0 and body and not _utf8_json_start(body):
                    raise _NotUtf8
                seen += len(body)
                if seen > limit:
                    raise _TooLarge(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _TooLarge:
            if started:
                raise
            await self._refuse(scope, receive, send, 413, self._message(limit))
        except _NotUtf8 as e:
            if started:
                raise
            response = error_json(400, "invalid_json", str(e))
            await response(scope, receive, send)

    @staticmethod
    def _message(limit: int) -> str:
        return f"the request body is larger than {limit} bytes"

    @staticmethod
    async def _refuse(scope: Scope, receive: Receive, send: Send, status: int, msg: str) -> None:
        code = "payload_too_large" if status == 413 else "bad_request"
        response = error_json(status, code, msg, headers={"Connection": "close"})
        await response(scope, receive, send)

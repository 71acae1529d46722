"""Each API request: its id in every log line, echoed back; its time in the metrics.

``X-Request-ID`` from the caller is kept when it looks like an id (letters, digits,
``-_.:``, at most 128 characters), else one is made; either way it is bound into
structlog's context for everything the request logs, and sent back in the response.
The request task starts from a clean context, so nothing of a previous request on the
same connection leaks into its lines.
"""

from __future__ import annotations

import re
import time
from typing import Any

import structlog

from flowmill.ids import uuid7
from flowmill.observability.metrics import Metrics

HEADER = "x-request-id"
log = structlog.get_logger("flowmill.api")
_ACCEPTABLE = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


def request_id(raw: str | None) -> str:
    """The caller's id if acceptable, else a new one."""
    if raw and _ACCEPTABLE.match(raw):
        return raw
    return uuid7()


class RequestContext:
    """ASGI middleware: request id binding and echo, request metrics."""

    def __init__(self, app: Any, metrics: Metrics | None = None) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw = None
        for name, value in scope.get("headers", ()):
            if name == b"x-request-id":
                raw = value.decode("latin-1")
                break
        rid = request_id(raw)
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=rid)
        status = 500
        started = time.perf_counter()

        async def _send(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), (b"x-request-id", rid.encode())]
            await send(message)

        try:
            await self.app(scope, receive, _send)
        finally:
            took = time.perf_counter() - started
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            if self.metrics is not None:
                self.metrics.http_requests_of(scope["method"], template, str(status)).observe(took)
            # the access line: request id and (once authenticated) tenant are bound
            log.debug(
                "request", method=scope["method"], route=template, status=status,
                duration_ms=round(took * 1000, 2),
            )  # fmt: skip

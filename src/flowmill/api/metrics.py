"""``GET /metrics``: this process's Prometheus metrics (text exposition format).

Unauthenticated unless ``FLOWMILL_METRICS_TOKEN`` is set (then ``Authorization:
Bearer <token>``), as Prometheus scrapers expect; it holds counts, never tenant data
(tenant ids only with ``FLOWMILL_METRICS_TENANT_LABEL``).
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import APIRouter, Header
from fastapi.responses import Response

from flowmill.api.deps import Ctx
from flowmill.api.errors import ApiError
from flowmill.api.schemas import ErrorResponse
from flowmill.observability.metrics import CONTENT_TYPE

router = APIRouter(tags=["health"])


def check_token(expected: str, authorization: str | None) -> None:
    """Refuse a scrape without the configured token.

    Raises:
        ApiError: 401.
    """
    given = (authorization or "").removeprefix("Bearer ").strip()
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise ApiError(401, "unauthorized", "send Authorization: Bearer <FLOWMILL_METRICS_TOKEN>")


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {
            "content": {"text/plain": {"schema": {"type": "string"}}},
            "description": "Prometheus text exposition format.",
        },
        401: {
            "model": ErrorResponse,
            "description": "FLOWMILL_METRICS_TOKEN is set and was not sent.",
        },
        404: {"model": ErrorResponse, "description": "Metrics are off."},
    },
    summary="Prometheus metrics",
)
async def metrics(
    ctx: Ctx, authorization: Annotated[str | None, Header(max_length=500)] = None
) -> Response:
    """Executions, steps, queues, webhooks, sandbox, store commits, projector lag,
    event-loop lag and API requests of this process."""
    if ctx.settings.metrics_token:
        check_token(ctx.settings.metrics_token, authorization)
    instruments = ctx.runtime.metrics
    if instruments is None:
        raise ApiError(404, "not_found", "metrics are off (FLOWMILL_METRICS_ENABLED=false)")
    return Response(instruments.render(), media_type=CONTENT_TYPE)

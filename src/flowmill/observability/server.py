"""``/health``, ``/ready`` and ``/metrics`` on a port of their own, for processes that
serve no API (``flowmill worker``, ``flowmill scheduler``: ``FLOWMILL_METRICS_PORT``)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Generator
from typing import Any

import sqlalchemy as sa
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from flowmill.observability.metrics import CONTENT_TYPE
from flowmill.runtime import Runtime

_TIMEOUT_S = 2.0


def ops_app(rt: Runtime, kind: str) -> Starlette:
    """The three routes over ``rt``."""

    async def health(_: Request) -> Response:
        return JSONResponse({"status": "ok", "kind": kind})

    async def ready(_: Request) -> Response:
        from flowmill.api.health import redis_ping

        checks: dict[str, dict[str, Any]] = {}
        try:
            await asyncio.wait_for(
                rt.db.read(lambda c: c.execute(sa.text("SELECT 1")).scalar()), _TIMEOUT_S
            )
            checks["database"] = {"ok": True}
        except Exception as e:  # any failure means not ready; say which
            checks["database"] = {"ok": False, "detail": f"{type(e).__name__}: {e}"[:300]}
        if rt.settings.redis_url:
            try:
                await redis_ping(rt.settings.redis_url)
                checks["redis"] = {"ok": True}
            except (OSError, TimeoutError) as e:
                checks["redis"] = {"ok": False, "detail": f"{type(e).__name__}: {e}"[:300]}
        ok = all(c["ok"] for c in checks.values())
        body = {"status": "ready" if ok else "not_ready", "checks": checks}
        return JSONResponse(body, status_code=200 if ok else 503)

    async def metrics(request: Request) -> Response:
        token = rt.settings.metrics_token
        if token:
            from flowmill.api.errors import ApiError
            from flowmill.api.metrics import check_token

            try:
                check_token(token, request.headers.get("authorization"))
            except ApiError as e:
                return JSONResponse({"error": {"code": e.code, "message": e.message}}, 401)
        if rt.metrics is None:
            return JSONResponse({"error": {"code": "not_found", "message": "metrics are off"}}, 404)
        return Response(rt.metrics.render(), media_type=CONTENT_TYPE)

    return Starlette(
        routes=[Route("/health", health), Route("/ready", ready), Route("/metrics", metrics)]
    )


class _Server(uvicorn.Server):
    """uvicorn inside a process that handles its own signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


@contextlib.asynccontextmanager
async def serving_ops(rt: Runtime, kind: str, host: str, port: int) -> AsyncIterator[int]:
    """Serve :func:`ops_app` on ``host:port`` inside the block; yields the port."""
    config = uvicorn.Config(
        ops_app(rt, kind), host=host, port=port, lifespan="off", log_level="warning",
        access_log=False, server_header=False,
    )  # fmt: skip
    server = _Server(config)
    task = asyncio.create_task(server.serve(), name="ops-server")
    try:
        while not server.started:
            if task.done():
                task.result()  # the port is taken: say so
                raise RuntimeError(f"the metrics server did not start on {host}:{port}")
            await asyncio.sleep(0.01)
        yield port
    finally:
        server.should_exit = True
        await task

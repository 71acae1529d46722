"""Puts Socket.IO on the API app when it is enabled and installed."""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING

import structlog
from fastapi import FastAPI

if TYPE_CHECKING:
    from flowmill.api.deps import ApiContext
    from flowmill.realtime.socket_server import SocketGateway

log = structlog.get_logger("flowmill.realtime")


def install_socket(app: FastAPI, ctx: ApiContext) -> SocketGateway | None:
    """Serve Socket.IO at ``/api/socket`` on ``app``; ``None`` when it is turned off
    (``FLOWMILL_SOCKET_ENABLED=false``) or python-socketio is missing (the
    ``flowmill[realtime]`` extra)."""
    if not ctx.settings.socket_enabled:
        return None
    if importlib.util.find_spec("socketio") is None:
        # the embedded default goes without (SSE needs nothing): not worth a warning
        log.info("Socket.IO is off: install flowmill[realtime] for /api/socket")
        return None
    from flowmill.realtime.socket_server import Owners, SocketGateway, SocketMount

    async def _execution(tenant_id: str, execution_id: str) -> bool:
        return await ctx.executions.get(tenant_id, execution_id) is not None

    gateway = SocketGateway(
        db=ctx.runtime.db,
        news=ctx.runtime.feed_news,
        auth=ctx.auth,
        owners=Owners(execution=_execution, workflow=ctx.workflows.exists),
        cors_origins=ctx.settings.cors_origins,
    )
    app.add_middleware(SocketMount, gateway=gateway)
    return gateway

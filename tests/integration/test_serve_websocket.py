"""How ``flowmill serve`` answers a WebSocket handshake (uvicorn, as it runs it)."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest
import uvicorn

from flowmill.api.server import uvicorn_config
from flowmill.config import Settings
from flowmill.testing import eventually
from tests.integration.http_servers import free_port


async def _greet(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """An ASGI app that accepts a WebSocket, sends one message and waits for the close."""
    assert scope["type"] == "websocket"
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.send", "text": "hello " * 50})
    await receive()  # websocket.disconnect


@pytest.mark.parametrize(("enabled", "compressed"), [(False, False), (True, True)])
async def test_serve_websocket_compression_only_when_the_setting_asks(
    enabled: bool, compressed: bool
) -> None:
    # Browsers and the Node client always offer per-message deflate; the server takes
    # it only when FLOWMILL_SOCKET_COMPRESSION says so (each frame is compressed once
    # per recipient).
    port = free_port()
    settings = Settings(socket_compression=enabled, log_level="warning")
    server = uvicorn.Server(uvicorn_config(_greet, settings, "127.0.0.1", port))
    serving = asyncio.create_task(server.serve())
    try:
        await eventually(lambda: server.started, 10, "uvicorn serving")
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(f"ws://127.0.0.1:{port}/", compress=15) as ws,
        ):
            assert await ws.receive_str() == "hello " * 50
            assert bool(ws.compress) is compressed
    finally:
        server.should_exit = True
        await serving

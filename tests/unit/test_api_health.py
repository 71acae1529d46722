"""/health and /ready, including the Redis check against a local RESP speaker."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest

from flowmill.api.health import redis_ping
from tests.api_support import open_api


@pytest.fixture
async def fake_redis() -> AsyncIterator[tuple[int, list[bytes]]]:
    """A TCP server answering AUTH with +OK and PING with +PONG; records commands."""
    seen: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while line := await reader.readline():
            seen.append(line)
            if line.upper().startswith(b"PING"):
                writer.write(b"+PONG\r\n")
            elif line.upper().startswith(b"AUTH"):
                writer.write(b"+OK\r\n")
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield port, seen


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_health_and_ready_without_redis(sqlite_url: str) -> None:
    async with open_api(sqlite_url, worker=False) as api:
        assert (await api.anon.get("/health")).json() == {"status": "ok"}
        r = await api.anon.get("/ready")
        assert r.status_code == 200
        assert r.json()["status"] == "ready"
        assert set(r.json()["checks"]) == {"database", "migrations"}


async def test_ready_is_503_when_redis_is_down(sqlite_url: str) -> None:
    url = f"redis://127.0.0.1:{closed_port()}/0"
    async with open_api(sqlite_url, worker=False) as api:
        api.ctx.settings = api.ctx.settings.model_copy(update={"redis_url": url})
        r = await api.anon.get("/ready")
        assert r.status_code == 503
        assert r.json()["status"] == "not_ready"
        assert r.json()["checks"]["redis"]["ok"] is False


async def test_redis_ping_authenticates_as_the_url_says(
    fake_redis: tuple[int, list[bytes]],
) -> None:
    port, seen = fake_redis
    await redis_ping(f"redis://user:s%3Acret@127.0.0.1:{port}/0")
    assert b"s:cret\r\n" in seen  # the password, URL-decoded, in the AUTH command
    assert any(x.upper().startswith(b"PING") for x in seen)

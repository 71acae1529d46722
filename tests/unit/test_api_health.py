"""/health and /ready, including the Redis check against a local RESP speaker."""

from __future__ import annotations

import pytest

from flowmill.api.health import redis_ping
from flowmill.testing import free_port, resp_stub
from tests.api_support import Api

pytestmark = pytest.mark.api_settings(worker=False)


async def test_api_health_and_ready_without_redis(api: Api) -> None:
    assert (await api.anon.get("/health")).json() == {"status": "ok"}
    r = await api.anon.get("/ready")
    assert r.status_code == 200
    assert r.json()["status"] == "ready"
    assert set(r.json()["checks"]) == {"database", "migrations"}


async def test_api_health_ready_is_503_when_redis_is_down(api: Api) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    api.ctx.settings = api.ctx.settings.model_copy(update={"redis_url": url})
    r = await api.anon.get("/ready")
    assert r.status_code == 503
    assert r.json()["status"] == "not_ready"
    assert r.json()["checks"]["redis"]["ok"] is False


async def test_api_health_redis_ping_authenticates_as_the_url_says() -> None:
    with resp_stub() as redis:
        await redis_ping(f"redis://user:s%3Acret@127.0.0.1:{redis.port}/0")
    assert b"s:cret\r\n" in redis.seen  # the password, URL-decoded, in the AUTH command
    assert any(x.upper().startswith(b"PING") for x in redis.seen)

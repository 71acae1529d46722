"""Fixtures for integration tests against real servers.

A server that cannot be reached skips its tests locally, with the reason, and fails
them in CI (``CI=true``): there a missing service is a broken build, not a skip.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator

import pytest
import redis

from flowmill.testing import TcpListener, eventually_sync, tcp_listener
from tests.conftest import unavailable

__all__ = ["unavailable"]


@pytest.fixture(scope="session")
def redis_url() -> str:
    """URL of the test Redis (``FLOWMILL_TEST_REDIS_URL``), checked to answer."""
    url = os.environ.get("FLOWMILL_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    try:
        with redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2) as client:
            client.ping()
    except (redis.RedisError, OSError) as e:
        unavailable(f"Redis is not reachable at {url} ({e})")
    return url


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A Redis key prefix of the test's own; its keys are deleted afterwards (the
    server may be shared, so nothing else is touched)."""
    prefix = f"fmtest-{uuid.uuid4().hex[:12]}"
    yield prefix
    with redis.Redis.from_url(redis_url) as client:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        for start in range(0, len(keys), 500):
            client.unlink(*keys[start : start + 500])


@pytest.fixture
def listener() -> Iterator[TcpListener]:
    """A TCP port open on every host address, counting connections: a sandboxed connect
    to it that fails was stopped by the sandbox (the host itself gets through)."""
    with tcp_listener() as found:
        with socket.create_connection(("127.0.0.1", found.port), timeout=2):
            pass
        eventually_sync(lambda: found.accepted, 5, "the listener accepting the host's connect")
        found.accepted.clear()
        yield found

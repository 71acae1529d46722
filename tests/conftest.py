"""Fixtures shared by all test levels: databases on demand.

PostgreSQL comes from ``FLOWMILL_TEST_POSTGRES_URL`` (default: the local server). Each
test gets a fresh database cloned from a migrated template. When the server cannot be
reached the test is skipped, except in CI (``CI=true``), where it fails.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import NoReturn
from urllib.parse import urlparse

import pytest

POSTGRES_URL = os.environ.get(
    "FLOWMILL_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
ROOT = Path(__file__).resolve().parents[1]


def reachable(url: str) -> bool:
    parts = urlparse(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 0), 1):
            return True
    except OSError:
        return False


def unavailable(reason: str) -> NoReturn:
    """Skip the test (locally) or fail it (CI) because something it needs is missing.

    The one place a test may skip: CI installs and starts everything, so there a
    missing piece is a broken build, never a skip.
    """
    if IN_CI:
        pytest.fail(f"{reason}; CI needs it (./dev test installs and starts it)", pytrace=False)
    pytest.skip(reason)


def require_service(name: str, url: str) -> None:
    """Skip (locally) or fail (CI) when a service is down."""
    if not reachable(url):
        unavailable(f"{name} is not reachable at {url}; start it or set the test URL")


def _with_db(url: str, name: str) -> str:
    parts = urlparse(url)
    return parts._replace(path=f"/{name}").geturl()


async def _admin(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(POSTGRES_URL)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def postgres_template() -> Iterator[str]:
    """A migrated database used as the template of each test's database."""
    require_service("PostgreSQL", POSTGRES_URL)
    from flowmill.store import migrate
    from flowmill.store.database import connect

    name = f"flowmill_tpl_{uuid.uuid4().hex[:8]}"

    async def _make() -> None:
        await _admin(f'CREATE DATABASE "{name}"')
        db = connect(_with_db(POSTGRES_URL, name))
        try:
            await migrate.upgrade(db)
        finally:
            await db.close()

    asyncio.run(_make())
    yield name
    asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
async def postgres_url(postgres_template: str) -> AsyncIterator[str]:
    """URL of a fresh, migrated PostgreSQL database for one test."""
    name = f"flowmill_t_{uuid.uuid4().hex[:10]}"
    await _admin(f'CREATE DATABASE "{name}" TEMPLATE "{postgres_template}"')
    yield _with_db(POSTGRES_URL, name)
    await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def empty_postgres_url() -> AsyncIterator[str]:
    """URL of a fresh, empty PostgreSQL database (for migration tests)."""
    require_service("PostgreSQL", POSTGRES_URL)
    name = f"flowmill_e_{uuid.uuid4().hex[:10]}"
    await _admin(f'CREATE DATABASE "{name}"')
    yield _with_db(POSTGRES_URL, name)
    await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """URL of a SQLite file in the test's temporary directory."""
    return f"sqlite:///{tmp_path / 'flowmill.db'}"


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest) -> str:
    """Each test using it runs on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return str(request.getfixturevalue("sqlite_url"))
    return str(request.getfixturevalue("postgres_url"))

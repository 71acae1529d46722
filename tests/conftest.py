"""Fixtures shared by all test levels: databases on demand, and the API over them.

Databases: ``sqlite_url`` is a copy of a SQLite file migrated once per session,
``postgres_url`` a fresh PostgreSQL database cloned from a migrated template,
``database_url`` each of the two in turn; ``empty_sqlite_url`` and
``empty_postgres_url`` are not migrated (for the migration tests). PostgreSQL comes from
``FLOWMILL_TEST_POSTGRES_URL`` (default: the local server); when it cannot be reached
the test is skipped, except in CI (``CI=true``), where it fails.

The API (``tests/api_support.py``): ``api`` is the app in-process on ``sqlite_url``,
``api_each_db`` the same on ``database_url``, ``live`` the app served over loopback
HTTP on ``database_url``. All three run the engine's worker and make tenants
``tenant-a`` and ``tenant-b``; ``@pytest.mark.api_settings(worker=False, **settings)``
on a test or module changes that (any ``Settings`` field).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import shutil
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import urlparse

import pytest

if TYPE_CHECKING:
    from tests.api_support import Api, Live

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


def _run(coro: Any) -> None:
    """Run ``coro`` to its end from a sync fixture, in a thread of its own when an event
    loop is already running here (a fixture asked for with ``getfixturevalue`` inside
    an async fixture)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(coro)
        return
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, coro).result()


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

    _run(_make())
    yield name
    _run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


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


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated once per session; tests get copies (``sqlite_url``)."""
    from flowmill.store import migrate
    from flowmill.store.database import connect

    path = tmp_path_factory.mktemp("sqlite-template") / "flowmill.db"

    async def _make() -> None:
        db = connect(f"sqlite:///{path}")
        try:
            await migrate.upgrade(db)
        finally:
            await db.close()

    _run(_make())
    leftovers = [p.name for p in path.parent.iterdir() if p != path]
    assert not leftovers, f"the template is more than one file: {leftovers}"
    return path


@pytest.fixture
def sqlite_url(tmp_path: Path, sqlite_template: Path) -> str:
    """URL of a migrated SQLite file of the test's own (a copy of the template: a
    migration costs ~0.1 s, a copy ~1 ms)."""
    target = tmp_path / "flowmill.db"
    shutil.copyfile(sqlite_template, target)
    return f"sqlite:///{target}"


@pytest.fixture
def empty_sqlite_url(tmp_path: Path) -> str:
    """URL of a SQLite file that does not exist yet (for migration tests)."""
    return f"sqlite:///{tmp_path / 'empty.db'}"


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest) -> str:
    """Each test using it runs on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return str(request.getfixturevalue("sqlite_url"))
    return str(request.getfixturevalue("postgres_url"))


# --- the API --------------------------------------------------------------------------


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "api_settings(worker=True, **settings): how the api, api_each_db and live "
        "fixtures open the API (settings are Settings fields)",
    )


def _api_settings(request: pytest.FixtureRequest) -> dict[str, Any]:
    marker = request.node.get_closest_marker("api_settings")
    return dict(marker.kwargs) if marker is not None else {}


@pytest.fixture
async def api(request: pytest.FixtureRequest, sqlite_url: str) -> AsyncIterator[Api]:
    """The API in-process on a migrated SQLite file, tenants A and B (``api.a``/``api.b``)."""
    from tests.api_support import open_api

    async with open_api(sqlite_url, **_api_settings(request)) as opened:
        yield opened


@pytest.fixture
async def api_each_db(request: pytest.FixtureRequest, database_url: str) -> AsyncIterator[Api]:
    """The API in-process, on SQLite and on PostgreSQL."""
    from tests.api_support import open_api

    async with open_api(database_url, **_api_settings(request)) as opened:
        yield opened


@pytest.fixture
async def live(request: pytest.FixtureRequest, database_url: str) -> AsyncIterator[Live]:
    """The API served over loopback HTTP, on SQLite and on PostgreSQL."""
    from tests.api_support import live_api

    async with live_api(database_url, **_api_settings(request)) as served:
        yield served

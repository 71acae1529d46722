"""Migrations: upgrade from an empty database, then autogenerate finds no difference."""

from __future__ import annotations

import asyncio

import pytest

from flowmill.store import migrate
from flowmill.store.database import connect


@pytest.fixture(params=["sqlite", "postgres"])
def empty_url(request: pytest.FixtureRequest) -> str:
    name = "empty_sqlite_url" if request.param == "sqlite" else "empty_postgres_url"
    return str(request.getfixturevalue(name))


async def test_migrations_upgrade_from_empty_then_no_diff(empty_url: str) -> None:
    db = connect(empty_url)
    try:
        assert not await migrate.is_current(db)
        before, after = await migrate.upgrade(db)
        assert (before, after) == (None, migrate.head_revision())
        assert await migrate.is_current(db)
        assert await migrate.pending_diff(db) == []
        again = await migrate.upgrade(db)
        assert again == (after, after)
    finally:
        await db.close()


def test_migrations_head_constant_is_alembics_head() -> None:
    from flowmill.store.migrations import HEAD

    assert migrate.head_revision() == HEAD


async def test_migrations_downgrade_to_empty_and_back(empty_sqlite_url: str) -> None:
    db = connect(empty_sqlite_url)
    try:
        await migrate.upgrade(db)
        await db.write(
            lambda c: __import__("alembic.command", fromlist=["x"]).downgrade(
                migrate.alembic_config(c), "base"
            )
        )
        assert not await migrate.is_current(db)
        await migrate.upgrade(db)
        assert await migrate.pending_diff(db) == []
    finally:
        await db.close()


async def test_migrations_processes_starting_together_migrate_once(
    empty_postgres_url: str,
) -> None:
    """An API and its workers started at once on a new database: one migrates, the
    others wait for it and find nothing to do (no "relation already exists")."""
    dbs = [connect(empty_postgres_url) for _ in range(3)]
    try:
        results = await asyncio.gather(*(migrate.upgrade(db) for db in dbs))
        head = migrate.head_revision()
        assert sorted(results, key=str) == sorted(
            [(None, head), (head, head), (head, head)], key=str
        )
        assert await migrate.pending_diff(dbs[0]) == []
    finally:
        for db in dbs:
            await db.close()

"""Applying and checking migrations."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from flowmill.store.database import Database

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic config pointing at Flowmill's migrations."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str | None:
    """The newest revision shipped with this version of Flowmill."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(conn: Connection) -> str | None:
    """The revision the database is at (``None`` when empty)."""
    return MigrationContext.configure(conn).get_current_revision()


async def upgrade(db: Database, revision: str = "head") -> tuple[str | None, str | None]:
    """Migrate ``db`` to ``revision``. Returns (revision before, revision after)."""

    def _run(conn: Connection) -> tuple[str | None, str | None]:
        before = current_revision(conn)
        command.upgrade(alembic_config(conn), revision)
        return before, current_revision(conn)

    return await db.write(_run)


async def is_current(db: Database) -> bool:
    """Whether ``db`` is at the head revision (used by readiness checks)."""
    head = head_revision()
    return await db.read(lambda conn: current_revision(conn) == head)


async def pending_diff(db: Database) -> list[Any]:
    """Differences between the tables in code and the migrated database (should be none)."""
    from alembic.autogenerate import compare_metadata

    from flowmill.store.tables import metadata

    def _diff(conn: Connection) -> list[Any]:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(ctx, metadata))

    return await db.read(_diff)

"""Applying and checking migrations."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from flowmill.store.database import Database
from flowmill.store.migrations import HEAD

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"
# Serializes migrations of processes starting together on one PostgreSQL database (an
# API and its workers): the second waits for the first, then finds nothing to do.
_MIGRATION_LOCK_KEY = 0x466C6F776D696C6C  # "Flowmill"


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic config pointing at Flowmill's migrations."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str | None:
    """The newest revision shipped with this version of Flowmill (asks Alembic)."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(conn: Connection) -> str | None:
    """The revision the database is at (``None`` when empty), read without Alembic."""
    if not sa.inspect(conn).has_table("alembic_version"):
        return None
    rows = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars().all()
    return rows[0] if len(rows) == 1 else None


async def upgrade(db: Database, revision: str = "head") -> tuple[str | None, str | None]:
    """Migrate ``db`` to ``revision``. Returns (revision before, revision after)."""

    def _run(conn: Connection) -> tuple[str | None, str | None]:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _MIGRATION_LOCK_KEY})
        before = current_revision(conn)
        if revision == "head" and before == HEAD:
            return before, before  # nothing to do: don't pay for importing Alembic
        from alembic import command

        command.upgrade(alembic_config(conn), revision)
        return before, current_revision(conn)

    return await db.write(_run)


async def is_current(db: Database) -> bool:
    """Whether ``db`` is at the head revision (used by readiness checks)."""
    return await db.read(lambda conn: current_revision(conn) == HEAD)


async def pending_diff(db: Database) -> list[Any]:
    """Differences between the tables in code and the migrated database (should be none)."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from flowmill.store.tables import metadata

    def _diff(conn: Connection) -> list[Any]:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(ctx, metadata))

    return await db.read(_diff)

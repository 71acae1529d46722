"""Leases: leader election on the database, for any number of replicas.

One row per role. A replica leads while it holds an unexpired lease and renews it
well before it expires; another takes over once it has expired. Each step is one
statement whose ``WHERE`` decides (PostgreSQL re-checks it under the row lock, SQLite
has one writer), so two replicas never both win the same round. Work done under a
lease must still be idempotent on its own (it is: executions carry dedupe keys): a
paused leader may act once more after its lease ran out.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection

from flowmill.store.database import Database
from flowmill.store.tables import scheduler_leases

sl = scheduler_leases


class LeaseStore:
    """Acquires, renews and releases named leases."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def acquire(self, name: str, holder: str, now: datetime, ttl_s: float) -> bool:
        """Take or renew the lease ``name`` for ``holder`` until ``now + ttl_s``.

        Returns:
            Whether ``holder`` holds it now.
        """
        expires = now + timedelta(seconds=ttl_s)
        insert = pg_insert if self.db.is_postgres else sqlite_insert

        def _tx(conn: Connection) -> bool:
            taken = conn.execute(
                sl.update()
                .where(sl.c.name == name, sa.or_(sl.c.holder == holder, sl.c.expires_at < now))
                .values(
                    holder=holder,
                    expires_at=expires,
                    acquired_at=sa.case((sl.c.holder == holder, sl.c.acquired_at), else_=now),
                )
            )
            if taken.rowcount == 1:
                return True
            created = conn.execute(
                insert(sl)
                .values(name=name, holder=holder, acquired_at=now, expires_at=expires)
                .on_conflict_do_nothing(index_elements=["name"])
            )
            return bool(created.rowcount == 1)

        return await self.db.write(_tx)

    async def release(self, name: str, holder: str) -> None:
        """Give the lease up at once (on a clean stop), if ``holder`` has it."""
        await self.db.write(
            lambda c: c.execute(sl.delete().where(sl.c.name == name, sl.c.holder == holder))
        )

    async def holder(self, name: str, now: datetime) -> str | None:
        """Who holds an unexpired lease ``name``."""
        q = sa.select(sl.c.holder).where(sl.c.name == name, sl.c.expires_at >= now)
        result: str | None = await self.db.read(lambda c: c.execute(q).scalar())
        return result

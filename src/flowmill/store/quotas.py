"""Stored quota overrides of tenants (``tenant_quotas``); see :mod:`flowmill.quotas`."""

from __future__ import annotations

from collections.abc import Mapping

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from flowmill.clock import Clock, SystemClock
from flowmill.domain.errors import TenantNotFound
from flowmill.quotas import QUOTA_FIELDS
from flowmill.store.database import Database
from flowmill.store.tables import tenant_quotas, tenants

tq = tenant_quotas


class QuotaStore:
    """Reads and writes tenants' quota overrides."""

    def __init__(self, db: Database, clock: Clock | None = None) -> None:
        self.db = db
        self.clock = clock or SystemClock()

    async def all_overrides(self) -> dict[str, dict[str, int]]:
        """``{tenant_id: {field: value}}`` of every tenant with overrides."""
        rows = await self.db.read(lambda c: c.execute(sa.select(tq.c.tenant_id, tq.c.quotas)).all())
        return {r.tenant_id: dict(r.quotas or {}) for r in rows}

    async def overrides(self, tenant_id: str) -> dict[str, int]:
        """One tenant's overrides (empty when it has none)."""
        q = sa.select(tq.c.quotas).where(tq.c.tenant_id == tenant_id)
        value = await self.db.read(lambda c: c.execute(q).scalar())
        return dict(value or {})

    async def update(self, tenant_id: str, changes: Mapping[str, int | None]) -> dict[str, int]:
        """Set (a number) or clear (``None``) overrides; returns the tenant's overrides.

        Raises:
            TenantNotFound: No such tenant.
            ValueError: An unknown field or a negative value.
        """
        for key, value in changes.items():
            if key not in QUOTA_FIELDS:
                raise ValueError(f"unknown quota {key!r}; quotas: {', '.join(QUOTA_FIELDS)}")
            if value is not None and (isinstance(value, bool) or int(value) < 0):
                raise ValueError(f"quota {key!r} must be a whole number >= 0 (0: unlimited)")
        now = self.clock.now()

        def _tx(conn: Connection) -> dict[str, int]:
            exists = conn.execute(sa.select(tenants.c.id).where(tenants.c.id == tenant_id))
            if exists.scalar() is None:
                raise TenantNotFound(tenant_id)
            row = conn.execute(sa.select(tq.c.quotas).where(tq.c.tenant_id == tenant_id))
            current = dict(row.scalar() or {})
            for key, value in changes.items():
                if value is None:
                    current.pop(key, None)
                else:
                    current[key] = int(value)
            conn.execute(tq.delete().where(tq.c.tenant_id == tenant_id))
            if current:
                conn.execute(
                    tq.insert().values(tenant_id=tenant_id, quotas=current, updated_at=now)
                )
            return current

        return await self.db.write(_tx)

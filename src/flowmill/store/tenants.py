"""Tenants: creating them with readable ids, listing, reading one."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from flowmill.store.database import Database
from flowmill.store.tables import tenants
from flowmill.store.workflows import WorkflowRepository

_NOT_SLUG = re.compile(r"[^a-z0-9]+")
TENANT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"


@dataclass(frozen=True)
class TenantRecord:
    """A tenant as stored."""

    id: str
    name: str
    created_at: datetime


def new_tenant_id(name: str) -> str:
    """A readable, unguessable-enough id: the name as a slug plus a random suffix
    (``Acme Corp`` → ``acme-corp-3f9a1c2b``), so two tenants may share a name."""
    slug = _NOT_SLUG.sub("-", name.lower()).strip("-")[:40].strip("-") or "tenant"
    return f"{slug}-{secrets.token_hex(4)}"


def _record(row: Any) -> TenantRecord:
    return TenantRecord(id=row.id, name=row.name, created_at=row.created_at)


class TenantStore:
    """Tenants of this installation."""

    def __init__(self, db: Database, workflows: WorkflowRepository) -> None:
        self.db = db
        self._workflows = workflows

    async def create(self, name: str, tenant_id: str | None = None) -> TenantRecord:
        """Create a tenant (id derived from ``name`` unless given).

        Raises:
            ValueError: ``tenant_id`` is taken or malformed.
        """
        wanted = tenant_id or new_tenant_id(name)
        if not re.match(TENANT_ID_PATTERN, wanted):
            raise ValueError(f"tenant id {wanted!r} must be 1-64 letters, digits, '.', '_' or '-'")
        if not await self._workflows.ensure_tenant(wanted, name):
            raise ValueError(f"tenant {wanted!r} exists already")
        record = await self.get(wanted)
        assert record is not None
        return record

    async def ensure(self, tenant_id: str, name: str | None = None) -> None:
        """Create the tenant if it does not exist (JWT tenants, the default tenant)."""
        await self._workflows.ensure_tenant(tenant_id, name)

    async def get(self, tenant_id: str) -> TenantRecord | None:
        """One tenant, or ``None``."""
        q = sa.select(tenants).where(tenants.c.id == tenant_id)
        row = await self.db.read(lambda c: c.execute(q).first())
        return _record(row) if row is not None else None

    async def all(self) -> list[TenantRecord]:
        """Every tenant, oldest first."""
        q = sa.select(tenants).order_by(tenants.c.created_at, tenants.c.id)
        rows = await self.db.read(lambda c: c.execute(q).all())
        return [_record(r) for r in rows]

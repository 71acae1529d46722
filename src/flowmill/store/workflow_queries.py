"""Read models of workflows and their versions for the API. Tenant-scoped, every one."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection

from flowmill.store.database import Database
from flowmill.store.tables import workflow_versions, workflows
from flowmill.store.workflows import WorkflowRecord, workflow_from_row

wt = workflows
vt = workflow_versions


@dataclass(frozen=True)
class WorkflowFilter:
    """What ``GET /api/workflows`` narrows by.

    Attributes:
        search: Case-insensitive substring of the name or description.
        before_id: Keyset cursor: only ids strictly lower (older) than this.
    """

    status: str | None = None
    tag: str | None = None
    search: str | None = None
    before_id: str | None = None


@dataclass(frozen=True)
class VersionRecord:
    """One stored version of a workflow."""

    workflow_id: str
    version: int
    definition_hash: str
    created_at: datetime
    published_at: datetime | None
    note: str
    active: bool
    latest: bool
    definition: dict[str, Any] | None = None


def _like_pattern(text: str) -> str:
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


class WorkflowQueries:
    """Tenant-scoped reads of workflows and versions."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def page(
        self, tenant_id: str, f: WorkflowFilter, limit: int
    ) -> tuple[list[WorkflowRecord], bool]:
        """One page of live (not deleted) workflows, newest first, and whether more follow."""
        q = sa.select(wt).where(wt.c.tenant_id == tenant_id, wt.c.deleted_at.is_(None))
        if f.status is not None:
            q = q.where(wt.c.status == f.status)
        if f.tag is not None:
            if self.db.is_postgres:
                q = q.where(
                    sa.cast(wt.c.tags, postgresql.JSONB).contains(
                        sa.cast([f.tag], postgresql.JSONB)
                    )
                )
            else:
                each = sa.func.json_each(wt.c.tags).table_valued("value")
                q = q.where(sa.exists(sa.select(1).select_from(each).where(each.c.value == f.tag)))
        if f.search:
            pattern = _like_pattern(f.search)
            q = q.where(
                sa.or_(
                    sa.func.lower(wt.c.name).like(pattern, escape="\\"),
                    sa.func.lower(wt.c.description).like(pattern, escape="\\"),
                )
            )
        if f.before_id is not None:
            q = q.where(wt.c.id < f.before_id)
        q = q.order_by(wt.c.id.desc()).limit(limit + 1)
        rows = await self.db.read(lambda c: c.execute(q).all())
        return [workflow_from_row(r) for r in rows[:limit]], len(rows) > limit

    async def exists(self, tenant_id: str, workflow_id: str) -> bool:
        """Whether the tenant has (or had: deleted ones count) this workflow."""
        q = sa.select(wt.c.id).where(wt.c.id == workflow_id, wt.c.tenant_id == tenant_id)
        return await self.db.read(lambda c: c.execute(q).first()) is not None

    async def versions(
        self, tenant_id: str, workflow_id: str, before: int | None, limit: int
    ) -> tuple[list[VersionRecord], bool] | None:
        """A page of a workflow's versions, newest first; ``None`` if no such workflow."""

        def _read(conn: Connection) -> tuple[list[VersionRecord], bool] | None:
            wf = _live_workflow(conn, tenant_id, workflow_id)
            if wf is None:
                return None
            q = sa.select(*_VERSION_COLUMNS).where(
                vt.c.workflow_id == workflow_id, vt.c.tenant_id == tenant_id
            )
            if before is not None:
                q = q.where(vt.c.version < before)
            rows = conn.execute(q.order_by(vt.c.version.desc()).limit(limit + 1)).all()
            items = [_version(r, wf) for r in rows[:limit]]
            return items, len(rows) > limit

        return await self.db.read(_read)

    async def version(self, tenant_id: str, workflow_id: str, version: int) -> VersionRecord | None:
        """One version with its definition; ``None`` if the workflow or version is absent."""

        def _read(conn: Connection) -> VersionRecord | None:
            wf = _live_workflow(conn, tenant_id, workflow_id)
            if wf is None:
                return None
            row = conn.execute(
                sa.select(*_VERSION_COLUMNS, vt.c.definition).where(
                    vt.c.workflow_id == workflow_id,
                    vt.c.tenant_id == tenant_id,
                    vt.c.version == version,
                )
            ).first()
            return _version(row, wf) if row is not None else None

        return await self.db.read(_read)


_VERSION_COLUMNS = [
    vt.c.workflow_id,
    vt.c.version,
    vt.c.definition_hash,
    vt.c.created_at,
    vt.c.published_at,
    vt.c.note,
]


def _live_workflow(conn: Connection, tenant_id: str, workflow_id: str) -> Any:
    return conn.execute(
        sa.select(wt.c.active_version, wt.c.latest_version).where(
            wt.c.id == workflow_id, wt.c.tenant_id == tenant_id, wt.c.deleted_at.is_(None)
        )
    ).first()


def _version(row: Any, wf: Any) -> VersionRecord:
    m = row._mapping
    definition = m.get("definition")
    return VersionRecord(
        workflow_id=str(m["workflow_id"]),
        version=m["version"],
        definition_hash=m["definition_hash"],
        created_at=m["created_at"],
        published_at=m["published_at"],
        note=m["note"],
        active=wf.active_version == m["version"],
        latest=wf.latest_version == m["version"],
        definition=dict(definition) if definition is not None else None,
    )

"""Repository of tenants, workflows and their immutable versions."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from flowmill import jsonutil
from flowmill.clock import Clock, SystemClock
from flowmill.domain.errors import FlowmillError, WorkflowNotFound
from flowmill.domain.events import DomainEvent, EventType
from flowmill.domain.states import WorkflowStatus
from flowmill.ids import uuid7
from flowmill.store.database import Database
from flowmill.store.executions import append_events
from flowmill.store.tables import tenants, workflow_versions, workflows
from flowmill.store.triggers import sync_definition_triggers

wt = workflows
vt = workflow_versions


class StaleVersion(FlowmillError):
    """A change was made from a version that is no longer the workflow's latest.

    Attributes:
        base_version: The version the change started from.
        latest_version: The workflow's latest version now.
        updated_at: When the latest version was saved.
    """

    def __init__(self, base_version: int, latest_version: int, updated_at: datetime) -> None:
        super().__init__(f"version {base_version} is not the latest ({latest_version})")
        self.base_version = base_version
        self.latest_version = latest_version
        self.updated_at = updated_at


@dataclass
class WorkflowRecord:
    """A workflow as stored: identity, status and version pointers."""

    id: str
    tenant_id: str
    name: str
    description: str
    status: WorkflowStatus
    tags: list[str]
    latest_version: int
    active_version: int | None
    created_at: datetime
    updated_at: datetime
    definition: dict[str, Any] = field(default_factory=dict)
    unverified_webhooks: list[dict[str, str]] = field(default_factory=list)
    """Set by a publish: seed routes it opened that anyone may call unverified."""


def definition_hash(definition: dict[str, Any]) -> str:
    """Content hash of a definition, ignoring owner and status fields."""
    body = {k: v for k, v in definition.items() if k not in ("tenant_id", "status", "id")}
    return hashlib.sha256(jsonutil.dumpb(_sorted(body))).hexdigest()


def _sorted(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _sorted(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_sorted(v) for v in value]
    return value


def _record(row: Any, definition: dict[str, Any] | None = None) -> WorkflowRecord:
    m = row._mapping
    return WorkflowRecord(
        id=str(m["id"]),
        tenant_id=m["tenant_id"],
        name=m["name"],
        description=m["description"],
        status=WorkflowStatus(m["status"]),
        tags=list(m["tags"] or []),
        latest_version=m["latest_version"],
        active_version=m["active_version"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        definition=definition or {},
    )


workflow_from_row = _record


def _event(
    tenant_id: str, stream: str, type_: EventType, now: datetime, **payload: Any
) -> DomainEvent:
    return DomainEvent(uuid7(), tenant_id, stream, type_.value, payload, now)


def _published(
    tenant_id: str, workflow_id: str, version: int, now: datetime, unverified: list[dict[str, str]]
) -> DomainEvent:
    """``workflow.published``; it names the unverified webhook routes the version opens,
    so the audit log shows who opened an unauthenticated way in, and when."""
    extra = {"unverified_webhooks": unverified} if unverified else {}
    return _event(
        tenant_id,
        workflow_id,
        EventType.WORKFLOW_PUBLISHED,
        now,
        workflow_id=workflow_id,
        version=version,
        **extra,
    )


def _append_one(
    conn: Connection, tenant_id: str, stream: str, type_: EventType, now: datetime, **payload: Any
) -> None:
    append_events(conn, tenant_id, [_event(tenant_id, stream, type_, now, **payload)])


class WorkflowRepository:
    """Tenants, workflows and versions. Every method is scoped to a tenant."""

    def __init__(self, db: Database, clock: Clock | None = None) -> None:
        self.db = db
        self.clock = clock or SystemClock()

    async def ensure_tenant(self, tenant_id: str, name: str | None = None) -> bool:
        """Create the tenant if it does not exist. Returns whether it was created."""
        now = self.clock.now()

        def _tx(conn: Connection) -> bool:
            exists = conn.execute(sa.select(tenants.c.id).where(tenants.c.id == tenant_id)).scalar()
            if exists is not None:
                return False
            conn.execute(
                tenants.insert().values(
                    id=tenant_id, name=name or tenant_id, created_at=now, event_seq=0
                )
            )
            _append_one(conn, tenant_id, tenant_id, EventType.TENANT_CREATED, now, name=name)
            return True

        return await self.db.write(_tx)

    async def create(
        self,
        tenant_id: str,
        definition: dict[str, Any],
        *,
        publish: bool = False,
        created_by: str | None = None,
    ) -> WorkflowRecord:
        """Store a new workflow with ``definition`` as version 1.

        ``created_by`` (who asked: ``api_key:<id>``, ``jwt:<sub>``) goes on its
        ``workflow.created`` event.
        """
        now = self.clock.now()
        wf_id = uuid7()

        def _tx(conn: Connection) -> WorkflowRecord:
            status = WorkflowStatus.ACTIVE if publish else WorkflowStatus.DRAFT
            conn.execute(
                wt.insert().values(
                    id=wf_id,
                    tenant_id=tenant_id,
                    name=definition["name"],
                    description=definition.get("description", ""),
                    status=status.value,
                    tags=definition.get("tags", []),
                    latest_version=1,
                    active_version=1 if publish else None,
                    created_at=now,
                    updated_at=now,
                )
            )
            conn.execute(
                vt.insert().values(
                    workflow_id=wf_id,
                    version=1,
                    tenant_id=tenant_id,
                    definition=definition,
                    definition_hash=definition_hash(definition),
                    created_at=now,
                    published_at=now if publish else None,
                )
            )
            events = [
                _event(
                    tenant_id,
                    wf_id,
                    EventType.WORKFLOW_CREATED,
                    now,
                    workflow_id=wf_id,
                    name=definition["name"],
                    created_by=created_by,
                ),
                _event(
                    tenant_id, wf_id, EventType.VERSION_CREATED, now, workflow_id=wf_id, version=1
                ),
            ]
            unverified: list[dict[str, str]] = []
            if publish:
                unverified = sync_definition_triggers(conn, tenant_id, wf_id, definition, now)
                events.append(_published(tenant_id, wf_id, 1, now, unverified))
            append_events(conn, tenant_id, events)
            out = self._get(conn, tenant_id, wf_id, with_definition=True)
            assert out is not None
            out.unverified_webhooks = unverified
            return out

        return await self.db.write(_tx)

    async def add_version(
        self,
        tenant_id: str,
        workflow_id: str,
        definition: dict[str, Any],
        *,
        publish: bool = False,
        note: str = "",
        base_version: int | None = None,
    ) -> tuple[WorkflowRecord, bool]:
        """Add ``definition`` as a new version unless it equals the latest one.

        Args:
            base_version: The version the change was made from; when given and no
                longer the latest (someone saved since), nothing is written. Checked
                under the workflow row's lock, so two saves from the same base cannot
                both pass.

        Returns:
            The workflow and whether a version was created.

        Raises:
            WorkflowNotFound: No such workflow for this tenant.
            StaleVersion: ``base_version`` is not the latest version.
        """
        now = self.clock.now()
        digest = definition_hash(definition)
        postgres = self.db.is_postgres

        def _tx(conn: Connection) -> tuple[WorkflowRecord, bool]:
            q = sa.select(wt).where(
                wt.c.id == workflow_id, wt.c.tenant_id == tenant_id, wt.c.deleted_at.is_(None)
            )
            row = conn.execute(q.with_for_update() if postgres else q).first()
            if row is None:
                raise WorkflowNotFound(workflow_id)
            latest = row.latest_version
            if base_version is not None and base_version != latest:
                raise StaleVersion(base_version, latest, row.updated_at)
            latest_hash = conn.execute(
                sa.select(vt.c.definition_hash).where(
                    vt.c.workflow_id == workflow_id, vt.c.version == latest
                )
            ).scalar_one()
            created = latest_hash != digest
            version = latest + 1 if created else latest
            events = []
            if created:
                conn.execute(
                    vt.insert().values(
                        workflow_id=workflow_id,
                        version=version,
                        tenant_id=tenant_id,
                        definition=definition,
                        definition_hash=digest,
                        created_at=now,
                        note=note,
                    )
                )
                conn.execute(
                    wt.update()
                    .where(wt.c.id == workflow_id)
                    .values(
                        latest_version=version,
                        name=definition["name"],
                        description=definition.get("description", ""),
                        tags=definition.get("tags", []),
                        updated_at=now,
                    )
                )
                events.append(
                    _event(
                        tenant_id,
                        workflow_id,
                        EventType.VERSION_CREATED,
                        now,
                        workflow_id=workflow_id,
                        version=version,
                    )
                )
            unverified: list[dict[str, str]] = []
            if publish and row.active_version != version:
                unverified = self._publish(conn, tenant_id, workflow_id, version, now, events)
            append_events(conn, tenant_id, events)
            out = self._get(conn, tenant_id, workflow_id, with_definition=True)
            assert out is not None
            out.unverified_webhooks = unverified
            return out, created

        return await self.db.write(_tx)

    @staticmethod
    def _publish(
        conn: Connection,
        tenant_id: str,
        workflow_id: str,
        version: int,
        now: datetime,
        events: list[DomainEvent],
    ) -> list[dict[str, str]]:
        conn.execute(
            vt.update()
            .where(
                vt.c.workflow_id == workflow_id,
                vt.c.version == version,
                vt.c.published_at.is_(None),
            )
            .values(published_at=now)
        )
        conn.execute(
            wt.update()
            .where(wt.c.id == workflow_id)
            .values(active_version=version, status=WorkflowStatus.ACTIVE.value, updated_at=now)
        )
        # The published version's trigger nodes become trigger rows in this very
        # transaction: a crash cannot leave schedules or routes out of step with it.
        definition = conn.execute(
            sa.select(vt.c.definition).where(
                vt.c.workflow_id == workflow_id, vt.c.version == version
            )
        ).scalar_one()
        unverified = sync_definition_triggers(conn, tenant_id, workflow_id, definition, now)
        events.append(_published(tenant_id, workflow_id, version, now, unverified))
        return unverified

    async def publish(
        self, tenant_id: str, workflow_id: str, version: int | None = None
    ) -> WorkflowRecord:
        """Make ``version`` (default: the latest) the active one.

        Raises:
            WorkflowNotFound: No such workflow or version for this tenant.
        """
        now = self.clock.now()

        def _tx(conn: Connection) -> WorkflowRecord:
            rec = self._get(conn, tenant_id, workflow_id)
            if rec is None:
                raise WorkflowNotFound(workflow_id)
            v = version or rec.latest_version
            exists = conn.execute(
                sa.select(vt.c.version).where(vt.c.workflow_id == workflow_id, vt.c.version == v)
            ).scalar()
            if exists is None:
                raise WorkflowNotFound(f"{workflow_id} version {v}")
            events: list[DomainEvent] = []
            unverified = self._publish(conn, tenant_id, workflow_id, v, now, events)
            append_events(conn, tenant_id, events)
            out = self._get(conn, tenant_id, workflow_id, with_definition=True)
            assert out is not None
            out.unverified_webhooks = unverified
            return out

        return await self.db.write(_tx)

    async def unpublish(self, tenant_id: str, workflow_id: str) -> WorkflowRecord:
        """Deactivate a workflow: no version is active, its triggers stop (their rows go
        in the same transaction). Publishing again brings them back.

        Raises:
            WorkflowNotFound: No such workflow for this tenant.
        """
        now = self.clock.now()

        def _tx(conn: Connection) -> WorkflowRecord:
            rec = self._get(conn, tenant_id, workflow_id)
            if rec is None:
                raise WorkflowNotFound(workflow_id)
            if rec.active_version is not None:
                conn.execute(
                    wt.update()
                    .where(wt.c.id == workflow_id)
                    .values(
                        active_version=None,
                        status=WorkflowStatus.INACTIVE.value,
                        updated_at=now,
                    )
                )
                sync_definition_triggers(conn, tenant_id, workflow_id, None, now)
                _append_one(
                    conn,
                    tenant_id,
                    workflow_id,
                    EventType.WORKFLOW_UPDATED,
                    now,
                    workflow_id=workflow_id,
                    status=WorkflowStatus.INACTIVE.value,
                )
            return self._get(conn, tenant_id, workflow_id, with_definition=True)  # type: ignore[return-value]

        return await self.db.write(_tx)

    async def delete(self, tenant_id: str, workflow_id: str) -> bool:
        """Delete a workflow: it disappears from lists and lookups and its triggers stop,
        but the row stays (archived) so its executions keep their history.

        Returns:
            Whether a live workflow of this tenant was deleted.
        """
        now = self.clock.now()

        def _tx(conn: Connection) -> bool:
            done = conn.execute(
                wt.update()
                .where(
                    wt.c.id == workflow_id,
                    wt.c.tenant_id == tenant_id,
                    wt.c.deleted_at.is_(None),
                )
                .values(deleted_at=now, updated_at=now, status=WorkflowStatus.ARCHIVED.value)
            )
            if done.rowcount != 1:
                return False
            sync_definition_triggers(conn, tenant_id, workflow_id, None, now)
            deleted = EventType.WORKFLOW_DELETED
            _append_one(conn, tenant_id, workflow_id, deleted, now, workflow_id=workflow_id)
            return True

        return await self.db.write(_tx)

    async def get(
        self, tenant_id: str, workflow_id: str, *, with_definition: bool = False
    ) -> WorkflowRecord | None:
        """One workflow of a tenant (``None`` if absent or another tenant's)."""
        return await self.db.read(
            lambda c: self._get(c, tenant_id, workflow_id, with_definition=with_definition)
        )

    async def find_by_name(self, tenant_id: str, name: str) -> WorkflowRecord | None:
        """The tenant's newest workflow called ``name``."""
        q = (
            sa.select(wt)
            .where(wt.c.tenant_id == tenant_id, wt.c.name == name, wt.c.deleted_at.is_(None))
            .order_by(wt.c.id.desc())
            .limit(1)
        )
        row = await self.db.read(lambda c: c.execute(q).first())
        return _record(row) if row is not None else None

    @staticmethod
    def _get(
        conn: Connection, tenant_id: str, workflow_id: str, *, with_definition: bool = False
    ) -> WorkflowRecord | None:
        row = conn.execute(
            sa.select(wt).where(
                wt.c.id == workflow_id, wt.c.tenant_id == tenant_id, wt.c.deleted_at.is_(None)
            )
        ).first()
        if row is None:
            return None
        definition = None
        if with_definition:
            definition = conn.execute(
                sa.select(vt.c.definition).where(
                    vt.c.workflow_id == workflow_id, vt.c.version == row.latest_version
                )
            ).scalar_one()
        return _record(row, definition)

    async def active_version(self, tenant_id: str, workflow_id: str) -> int | None:
        """The published version triggers start, or ``None``."""
        q = sa.select(wt.c.active_version).where(
            wt.c.id == workflow_id,
            wt.c.tenant_id == tenant_id,
            wt.c.deleted_at.is_(None),
            wt.c.status == WorkflowStatus.ACTIVE.value,
        )
        result: int | None = await self.db.read(lambda c: c.execute(q).scalar())
        return result

    async def resolve_version(
        self, tenant_id: str, workflow_id: str, version: int | None
    ) -> int | None:
        """``version`` if the tenant's workflow has it, else (``None`` given) its active
        version; ``None`` when the workflow is not the tenant's or has no such version."""
        try:
            uuid.UUID(workflow_id)
        except ValueError:
            return None  # not an id at all (a template that rendered to something else)
        record = await self.get(tenant_id, workflow_id)
        if record is None:
            return None
        if version is None:
            return record.active_version
        return version if 1 <= version <= record.latest_version else None

    async def get_definition(self, workflow_id: str, version: int) -> dict[str, Any]:
        """A stored version's definition (engine-internal; versions are immutable)."""
        q = sa.select(vt.c.definition).where(
            vt.c.workflow_id == workflow_id, vt.c.version == version
        )
        definition = await self.db.read(lambda c: c.execute(q).scalar())
        if definition is None:
            raise WorkflowNotFound(f"workflow {workflow_id} has no version {version}")
        return dict(definition)

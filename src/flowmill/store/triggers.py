"""Repository of trigger rows: webhooks, schedules and event triggers.

Rows come from two places (``origin``): ``api`` for webhooks registered with
``POST /api/webhooks``, and ``definition`` for the trigger nodes of a workflow's
published version, written by :func:`sync_definition_triggers` in the same
transaction as the publish (or unpublish, or delete), so no crash can leave them out
of step with the workflow.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
import structlog
from sqlalchemy.engine import Connection

from flowmill.clock import Clock, SystemClock
from flowmill.domain.errors import WorkflowNotFound
from flowmill.ids import uuid7
from flowmill.store.database import Database
from flowmill.store.tables import triggers, workflows
from flowmill.triggers.definitions import TriggerKind, TriggerSpec, compile_schedule, triggers_of
from flowmill.triggers.schedule import ScheduleError, next_fire_after

tt = triggers
log = structlog.get_logger("flowmill.triggers")
ORIGIN_API = "api"
ORIGIN_DEFINITION = "definition"
UNVERIFIED = "none"


def _registered() -> sa.Exists:
    """Whether a webhook was registered (``POST /api/webhooks``) for the row's node."""
    api = tt.alias("registered")
    return sa.exists().where(
        api.c.workflow_id == tt.c.workflow_id,
        api.c.node_id == tt.c.node_id,
        api.c.origin == ORIGIN_API,
    )


def _reachable() -> sa.ColumnElement[bool]:
    """Rows ingress may serve: every way in is as strong as the strongest declared one.

    A trigger node without a provider is an unverified route, but once a webhook is
    registered for that node (with its provider and secret), the node is reached only
    through that webhook's verified URLs: its unverified definition row is not served.
    """
    return sa.or_(
        tt.c.origin == ORIGIN_API,
        sa.func.coalesce(tt.c.provider, UNVERIFIED) != UNVERIFIED,
        ~_registered(),
    )


@dataclass
class TriggerRecord:
    """A ``triggers`` row (the secret stays sealed)."""

    id: str
    tenant_id: str
    workflow_id: str
    node_id: str
    kind: TriggerKind
    name: str
    provider: str | None
    config: dict[str, Any]
    secret: bytes | None
    enabled: bool
    origin: str
    route: str | None
    created_at: datetime
    updated_at: datetime
    last_run_at: datetime | None
    next_run_at: datetime | None


def trigger_from_row(row: Any) -> TriggerRecord:
    """A record from a ``triggers`` row."""
    m = row._mapping
    return TriggerRecord(
        id=str(m["id"]),
        tenant_id=m["tenant_id"],
        workflow_id=str(m["workflow_id"]),
        node_id=m["node_id"],
        kind=TriggerKind(m["kind"]),
        name=m["name"],
        provider=m["provider"],
        config=dict(m["config"] or {}),
        secret=m["secret"],
        enabled=bool(m["enabled"]),
        origin=m["origin"],
        route=m["route"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        last_run_at=m["last_run_at"],
        next_run_at=m["next_run_at"],
    )


def first_fire(config: Mapping[str, Any], now: datetime) -> datetime | None:
    """``next_run_at`` of a schedule enabled at ``now`` (``None``: it never fires)."""
    try:
        return next_fire_after(compile_schedule(config), now)
    except ScheduleError:
        log.warning("schedule config does not compile; it will not fire", config=dict(config))
        return None


def sync_definition_triggers(
    conn: Connection,
    tenant_id: str,
    workflow_id: str,
    definition: Mapping[str, Any] | None,
    now: datetime,
) -> list[dict[str, str]]:
    """Make the workflow's ``definition`` rows match ``definition`` (``None``: remove).

    A row whose node and kind are unchanged keeps its id, its ``enabled`` flag and, when
    its schedule is unchanged, its watermark, so publishing an unrelated change does not
    reset a schedule.

    Returns:
        The unverified webhook routes the definition opens (``{"node_id", "route"}``):
        trigger nodes that name no provider and have no registered webhook, which anyone
        who knows the URL can call. Publishing says so.
    """
    wanted: list[TriggerSpec] = triggers_of(definition) if definition is not None else []
    zone = "UTC"
    if definition is not None:
        zone = str((definition.get("settings") or {}).get("timezone") or "UTC")
    existing = {
        (r.node_id, r.kind): r
        for r in (
            trigger_from_row(row)
            for row in conn.execute(
                sa.select(tt).where(
                    tt.c.workflow_id == workflow_id, tt.c.origin == ORIGIN_DEFINITION
                )
            )
        )
    }
    keep: set[str] = set()
    for spec in wanted:
        config = dict(spec.config)
        if spec.kind is TriggerKind.SCHEDULE:
            config.setdefault("timezone", zone)
        old = existing.get((spec.node_id, spec.kind))
        if old is None:
            conn.execute(
                tt.insert().values(
                    id=uuid7(),
                    tenant_id=tenant_id,
                    workflow_id=workflow_id,
                    node_id=spec.node_id,
                    kind=spec.kind.value,
                    name=spec.name,
                    provider=spec.provider,
                    config=config,
                    enabled=True,
                    origin=ORIGIN_DEFINITION,
                    route=spec.route,
                    created_at=now,
                    updated_at=now,
                    next_run_at=first_fire(config, now)
                    if spec.kind is TriggerKind.SCHEDULE
                    else None,
                )
            )
            continue
        keep.add(old.id)
        values: dict[str, Any] = {
            "name": spec.name,
            "provider": spec.provider,
            "config": config,
            "route": spec.route,
            "updated_at": now,
        }
        if spec.kind is TriggerKind.SCHEDULE and old.config != config:
            # A new schedule starts afresh: the old one's fire times are not "missed".
            values["next_run_at"] = first_fire(config, now) if old.enabled else None
        conn.execute(tt.update().where(tt.c.id == old.id).values(**values))
    gone = [r.id for r in existing.values() if r.id not in keep]
    if gone:
        conn.execute(tt.delete().where(tt.c.id.in_(gone)))
    return unverified_routes(conn, workflow_id)


def unverified_routes(conn: Connection, workflow_id: str) -> list[dict[str, str]]:
    """The workflow's seed routes that ingress serves without verification."""
    rows = conn.execute(
        sa.select(tt.c.node_id, tt.c.route)
        .where(
            tt.c.workflow_id == workflow_id,
            tt.c.origin == ORIGIN_DEFINITION,
            tt.c.kind == TriggerKind.WEBHOOK.value,
            sa.func.coalesce(tt.c.provider, UNVERIFIED) == UNVERIFIED,
            ~_registered(),
        )
        .order_by(tt.c.node_id)
    ).all()
    return [{"node_id": r.node_id, "route": r.route} for r in rows]


@dataclass(frozen=True)
class TriggerFilter:
    """Filters of trigger listings."""

    kind: TriggerKind | None = None
    workflow_id: str | None = None
    provider: str | None = None
    enabled: bool | None = None
    origin: str | None = None
    before_id: str | None = None


class TriggerRepository:
    """Trigger rows. API methods are tenant-scoped; scheduler methods are not."""

    def __init__(self, db: Database, clock: Clock | None = None) -> None:
        self.db = db
        self.clock = clock or SystemClock()

    # --- API --------------------------------------------------------------------------

    async def create_webhook(
        self,
        *,
        tenant_id: str,
        workflow_id: str,
        node_id: str,
        name: str,
        provider: str,
        config: dict[str, Any],
        seal: Any,
        trigger_id: str | None = None,
    ) -> TriggerRecord:
        """Register a webhook; ``seal(trigger_id)`` returns the sealed secret (or None).

        Raises:
            WorkflowNotFound: No such live workflow for this tenant.
        """
        now = self.clock.now()
        tid = trigger_id or uuid7()
        secret = seal(tid)

        def _tx(conn: Connection) -> TriggerRecord:
            exists = conn.execute(
                sa.select(workflows.c.id).where(
                    workflows.c.id == workflow_id,
                    workflows.c.tenant_id == tenant_id,
                    workflows.c.deleted_at.is_(None),
                )
            ).scalar()
            if exists is None:
                raise WorkflowNotFound(workflow_id)
            conn.execute(
                tt.insert().values(
                    id=tid,
                    tenant_id=tenant_id,
                    workflow_id=workflow_id,
                    node_id=node_id,
                    kind=TriggerKind.WEBHOOK.value,
                    name=name,
                    provider=provider,
                    config=config,
                    secret=secret,
                    enabled=True,
                    origin=ORIGIN_API,
                    created_at=now,
                    updated_at=now,
                )
            )
            row = conn.execute(sa.select(tt).where(tt.c.id == tid)).one()
            return trigger_from_row(row)

        return await self.db.write(_tx)

    async def get(self, tenant_id: str, trigger_id: str) -> TriggerRecord | None:
        """One trigger of a tenant."""
        q = sa.select(tt).where(tt.c.id == trigger_id, tt.c.tenant_id == tenant_id)
        row = await self.db.read(lambda c: c.execute(q).first())
        return trigger_from_row(row) if row is not None else None

    async def page(
        self, tenant_id: str, f: TriggerFilter, limit: int
    ) -> tuple[list[TriggerRecord], bool]:
        """A keyset page of the tenant's triggers, newest first; and whether more follow."""
        q = sa.select(tt).where(tt.c.tenant_id == tenant_id)
        if f.kind is not None:
            q = q.where(tt.c.kind == f.kind.value)
        if f.workflow_id is not None:
            q = q.where(tt.c.workflow_id == f.workflow_id)
        if f.provider is not None:
            q = q.where(tt.c.provider == f.provider)
        if f.enabled is not None:
            q = q.where(tt.c.enabled.is_(f.enabled))
        if f.origin is not None:
            q = q.where(tt.c.origin == f.origin)
        if f.before_id is not None:
            q = q.where(tt.c.id < f.before_id)
        q = q.order_by(tt.c.id.desc()).limit(limit + 1)
        rows = await self.db.read(lambda c: c.execute(q).all())
        items = [trigger_from_row(r) for r in rows[:limit]]
        return items, len(rows) > limit

    async def set_enabled(
        self, tenant_id: str, trigger_id: str, enabled: bool
    ) -> TriggerRecord | None:
        """Enable or disable a trigger. A schedule enabled again starts afresh from now:
        the disabled period is not "missed"."""
        now = self.clock.now()

        def _tx(conn: Connection) -> TriggerRecord | None:
            row = conn.execute(
                sa.select(tt).where(tt.c.id == trigger_id, tt.c.tenant_id == tenant_id)
            ).first()
            if row is None:
                return None
            rec = trigger_from_row(row)
            values: dict[str, Any] = {"enabled": enabled, "updated_at": now}
            if rec.kind is TriggerKind.SCHEDULE and enabled != rec.enabled:
                values["next_run_at"] = first_fire(rec.config, now) if enabled else None
            conn.execute(tt.update().where(tt.c.id == trigger_id).values(**values))
            return trigger_from_row(conn.execute(sa.select(tt).where(tt.c.id == trigger_id)).one())

        return await self.db.write(_tx)

    # --- ingress and dispatch (engine-internal, not tenant-scoped by a caller) --------

    async def by_id(self, trigger_id: str) -> TriggerRecord | None:
        """One trigger by id (the webhook URL names it)."""
        q = sa.select(tt).where(tt.c.id == trigger_id)
        row = await self.db.read(lambda c: c.execute(q).first())
        return trigger_from_row(row) if row is not None else None

    async def ingress_webhook(self, trigger_id: str) -> TriggerRecord | None:
        """The enabled webhook ``trigger_id`` if ingress may serve it (see ``_reachable``)."""
        q = sa.select(tt).where(
            tt.c.id == trigger_id,
            tt.c.kind == TriggerKind.WEBHOOK.value,
            tt.c.enabled.is_(True),
            _reachable(),
        )
        row = await self.db.read(lambda c: c.execute(q).first())
        return trigger_from_row(row) if row is not None else None

    async def by_ids(self, ids: Sequence[str]) -> list[TriggerRecord]:
        """Triggers by id, in the order given (missing ones left out)."""
        if not ids:
            return []
        q = sa.select(tt).where(tt.c.id.in_(list(ids)))
        rows = await self.db.read(lambda c: c.execute(q).all())
        found = {str(r._mapping["id"]): trigger_from_row(r) for r in rows}
        return [found[i] for i in ids if i in found]

    async def routed(self, tenant_id: str, route: str) -> list[TriggerRecord]:
        """The tenant's enabled webhook rows of active workflows on a seed route (an
        unverified row whose node has a registered webhook is left out)."""
        q = (
            sa.select(tt)
            .join(workflows, workflows.c.id == tt.c.workflow_id)
            .where(
                tt.c.tenant_id == tenant_id,
                tt.c.route == route,
                tt.c.enabled.is_(True),
                _reachable(),
                workflows.c.status == "active",
                workflows.c.deleted_at.is_(None),
            )
            .order_by(tt.c.id)
        )
        rows = await self.db.read(lambda c: c.execute(q).all())
        return [trigger_from_row(r) for r in rows]

    async def events_for(self, tenant_ids: Sequence[str] | None = None) -> list[TriggerRecord]:
        """Enabled event triggers (of the given tenants)."""
        q = sa.select(tt).where(tt.c.kind == TriggerKind.EVENT.value, tt.c.enabled.is_(True))
        if tenant_ids is not None:
            q = q.where(tt.c.tenant_id.in_(list(tenant_ids)))
        rows = await self.db.read(lambda c: c.execute(q).all())
        return [trigger_from_row(r) for r in rows]

    # --- scheduler --------------------------------------------------------------------

    async def due_schedules(self, now: datetime, limit: int = 100) -> list[TriggerRecord]:
        """Enabled schedules whose ``next_run_at`` has come, oldest first."""
        q = (
            sa.select(tt)
            .where(
                tt.c.kind == TriggerKind.SCHEDULE.value,
                tt.c.enabled.is_(True),
                tt.c.next_run_at.is_not(None),
                tt.c.next_run_at <= now,
            )
            .order_by(tt.c.next_run_at)
            .limit(limit)
        )
        rows = await self.db.read(lambda c: c.execute(q).all())
        return [trigger_from_row(r) for r in rows]

    async def next_due_at(self) -> datetime | None:
        """The earliest ``next_run_at`` of an enabled schedule."""
        q = sa.select(sa.func.min(tt.c.next_run_at)).where(
            tt.c.kind == TriggerKind.SCHEDULE.value, tt.c.enabled.is_(True)
        )
        result: datetime | None = await self.db.read(lambda c: c.execute(q).scalar())
        if result is not None and result.tzinfo is None:  # SQLite's MIN() is plain text
            from datetime import UTC

            result = result.replace(tzinfo=UTC)
        return result

    async def advance_schedule(
        self,
        trigger_id: str,
        *,
        expected_next: datetime | None,
        last_run_at: datetime | None,
        next_run_at: datetime | None,
    ) -> bool:
        """Move a schedule's watermark, only if nobody moved it since it was read.

        Returns:
            Whether this call moved it (``False``: another scheduler did, or the row
            changed, e.g. it was disabled).
        """
        now = self.clock.now()

        def _tx(conn: Connection) -> bool:
            q = tt.update().where(tt.c.id == trigger_id, tt.c.enabled.is_(True))
            q = q.where(
                tt.c.next_run_at.is_(None)
                if expected_next is None
                else tt.c.next_run_at == expected_next
            )
            values: dict[str, Any] = {"next_run_at": next_run_at, "updated_at": now}
            if last_run_at is not None:
                values["last_run_at"] = last_run_at
            return bool(conn.execute(q.values(**values)).rowcount == 1)

        return await self.db.write(_tx)

"""The pruner: deletes finished records older than their tenant's policy, in batches.

What goes, per tenant (every statement filters on ``tenant_id``):

- **executions** that ended (succeeded, cancelled; failed by their own age) before the
  cutoff, with their node runs and logs in the same transaction. Never an execution
  still pending, queued, running or waiting, and never the ended child of a parent that
  is still live (the parent reads its child's outcome when it resumes);
- **webhook event bodies** of dispatched (or refused) events older than the body cutoff:
  the body is emptied, the row stays (status, headers, execution ids);
- **webhook events**, whole rows, older than the event cutoff, except those still
  ``received`` (their dispatch is pending work, whatever their age);
- **blobs** (large payloads) with their owners: an execution's with the execution; a
  large webhook body with its body or event, unless an execution started from it has
  adopted it (then it goes with that execution). Rows are marked ``doomed`` in the
  transaction that deletes their owner; their bytes and rows go after it, per tenant
  (a crash in between leaves doomed rows the next run finishes);
- **store events** older than the cutoff *and* at or below the cursor of every feed
  consumer of the tenant (event triggers, each projection): an event a consumer has not
  read yet is work still to do. A consumer known in the deployment without a cursor for
  the tenant reads it from the start, so nothing of that tenant's goes. Read models
  keep what they projected; rebuilt by replay, they start at the oldest event kept.

Each batch is one short transaction of at most ``batch`` rows (plus their node runs and
logs), chosen again inside it, oldest first, keyset-paged so a run never reads a row
twice; ``pause_s`` between batches lets other writers in (SQLite has one). Batches use
the existing indexes: executions by ``(tenant_id, status, id)`` (ids are UUIDv7, so an
id bound is a creation-time bound), node runs and logs by execution, events by
``(tenant_id, sequence_number)``, webhook events by primary key.

A dry run counts what a run would delete, writing nothing. After a run that deleted
rows, SQLite files made with incremental auto-vacuum give the freed pages back, a few
thousand per transaction.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

import sqlalchemy as sa
import structlog
from sqlalchemy.engine import Connection

from flowmill.blobs.store import BlobStore
from flowmill.clock import Clock, SystemClock
from flowmill.domain.states import ExecutionStatus
from flowmill.fairness import tenant_scope
from flowmill.ids import uuid7_floor
from flowmill.retention.policy import RetentionPolicies, RetentionPolicy
from flowmill.store.database import Database
from flowmill.store.tables import (
    event_consumers,
    event_store,
    execution_logs,
    node_executions,
    tenants,
    webhook_events,
    workflow_executions,
)
from flowmill.store.webhook_events import WebhookEventStatus

log = structlog.get_logger("flowmill.retention")
ex = workflow_executions
wh = webhook_events
es = event_store
_LIVE = [s.value for s in ExecutionStatus if not s.terminal]
_ENDED_OK = [ExecutionStatus.SUCCEEDED.value, ExecutionStatus.CANCELLED.value]
_FAILED = [ExecutionStatus.FAILED.value]
_RECEIVED = WebhookEventStatus.RECEIVED.value


@dataclass
class PruneCounts:
    """Rows deleted (or, in a dry run, that would be)."""

    executions: int = 0
    node_runs: int = 0
    logs: int = 0
    webhook_events: int = 0
    webhook_bodies: int = 0
    store_events: int = 0
    blobs: int = 0

    def add(self, other: PruneCounts) -> None:
        """Add ``other``'s counts to these."""
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    @property
    def total(self) -> int:
        """Every row counted."""
        return sum(getattr(self, f.name) for f in fields(self))


@dataclass
class PruneReport:
    """What one run did, per tenant."""

    dry_run: bool
    tenants: dict[str, PruneCounts] = field(default_factory=dict)
    free_pages_left: int | None = None

    @property
    def total(self) -> PruneCounts:
        """The counts of every tenant together."""
        out = PruneCounts()
        for counts in self.tenants.values():
            out.add(counts)
        return out


VACUUM_PAGES = 2000
"""Pages (8 MB) given back to the file system per transaction, SQLite."""

Progress = Callable[[str, str, PruneCounts], None]
"""Told after each batch: tenant, what was pruned (a :class:`PruneCounts` field), the
tenant's counts so far."""


def _ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


class Pruner:
    """Applies retention policies to one database.

    Args:
        db: The database.
        policies: Each tenant's policy.
        batch: Rows per transaction.
        pause_s: Pause between batches.
        vacuum_pages: Pages given back to the file system per transaction (SQLite).
        clock: Time (``now`` of the cutoffs).
        blobs: The blob store: blobs go with their executions and webhook events.
    """

    def __init__(
        self,
        db: Database,
        policies: RetentionPolicies,
        *,
        batch: int = 200,
        pause_s: float = 0.01,
        vacuum_pages: int = VACUUM_PAGES,
        clock: Clock | None = None,
        blobs: BlobStore | None = None,
    ) -> None:
        self.db = db
        self.blobs = blobs
        self.policies = policies
        self.batch = batch
        self.pause_s = pause_s
        self.vacuum_pages = vacuum_pages
        self.clock = clock or SystemClock()

    async def prune(
        self,
        *,
        tenant_id: str | None = None,
        dry_run: bool = False,
        progress: Progress | None = None,
        stop: asyncio.Event | None = None,
    ) -> PruneReport:
        """Prune every tenant (or one), each by its policy.

        Args:
            tenant_id: Only this tenant.
            dry_run: Count, delete nothing.
            progress: Told after each batch.
            stop: Set to end the run after the batch under way.
        """
        now = self.clock.now()
        report = PruneReport(dry_run)
        if tenant_id is not None:
            ids = [tenant_id]
        else:
            q = sa.select(tenants.c.id).order_by(tenants.c.id)
            ids = list(await self.db.read(lambda c: c.execute(q).scalars().all()))
        for tenant in ids:
            if stop is not None and stop.is_set():
                break
            counts = report.tenants.setdefault(tenant, PruneCounts())
            with tenant_scope(tenant):
                run = _TenantRun(self, tenant, self.policies.of(tenant), now, dry_run)
                await run.all(counts, progress, stop)
                if self.blobs is not None and not dry_run:
                    # the bytes of the blobs doomed with their owners, after the commits
                    counts.blobs += await self.blobs.purge(tenant, self.batch)
        if not dry_run and report.total.total:
            report.free_pages_left = await self.reclaim(stop)
        return report

    async def reclaim(self, stop: asyncio.Event | None = None) -> int | None:
        """Give free pages back to the file system, a batch per transaction (SQLite
        with incremental auto-vacuum; ``None`` elsewhere). Returns the free pages left."""
        left = await self.db.reclaim_space(self.vacuum_pages)
        while left and not (stop is not None and stop.is_set()):
            await asyncio.sleep(self.pause_s)
            left = await self.db.reclaim_space(self.vacuum_pages)
        return left


class _TenantRun:
    """One tenant's share of a run."""

    def __init__(
        self, pruner: Pruner, tenant: str, policy: RetentionPolicy, now: datetime, dry: bool
    ) -> None:
        self.p = pruner
        self.db = pruner.db
        self.tenant = tenant
        self.policy = policy
        self.now = now
        self.dry = dry

    async def all(
        self, counts: PruneCounts, progress: Progress | None, stop: asyncio.Event | None
    ) -> None:
        kinds: list[tuple[str, Callable[[str | None], Any]]] = []
        for kind, statuses in (("executions", _ENDED_OK), ("failed_executions", _FAILED)):
            cutoff = self.policy.cutoff(kind, self.now)
            if cutoff is not None:
                kinds.append(("executions", self._executions(statuses, cutoff)))
        if (cutoff := self.policy.cutoff("webhook_bodies", self.now)) is not None:
            kinds.append(("webhook_bodies", self._bodies(cutoff)))
        if (cutoff := self.policy.cutoff("webhook_events", self.now)) is not None:
            kinds.append(("webhook_events", self._webhook_events(cutoff)))
        if (cutoff := self.policy.cutoff("store_events", self.now)) is not None:
            upto = await self._consumed_upto()
            kinds.append(("store_events", self._store_events(cutoff, upto)))
        for kind, step in kinds:
            after: str | None = None
            while not (stop is not None and stop.is_set()):
                done, after = await step(after)
                counts.add(done)
                if progress is not None and (done.total or after is None):
                    progress(self.tenant, kind, counts)
                if after is None:
                    break
                await asyncio.sleep(self.p.pause_s)

    # Each step takes the keyset position (None: from the start) and returns the counts
    # of one batch and the next position (None: nothing left). A dry run counts all at
    # once: there is no deleting to keep short.

    def _executions(self, statuses: Sequence[str], cutoff: datetime) -> Any:
        parent = ex.alias("parent")
        live_parent = (
            sa.select(parent.c.id)
            .where(parent.c.id == ex.c.parent_execution_id, parent.c.status.in_(_LIVE))
            .exists()
        )
        old = sa.and_(
            ex.c.tenant_id == self.tenant,
            ex.c.status.in_(statuses),
            ex.c.id < uuid7_floor(_ms(cutoff)),
            sa.func.coalesce(ex.c.completed_at, ex.c.created_at) < cutoff,
            ~live_parent,
        )

        async def step(after: str | None) -> tuple[PruneCounts, str | None]:
            if self.dry:
                return await self.db.read(lambda c: _count_executions(c, old)), None

            def _tx(conn: Connection) -> tuple[PruneCounts, str | None]:
                q = sa.select(ex.c.id).where(old).order_by(ex.c.id).limit(self.p.batch)
                if after is not None:
                    q = q.where(ex.c.id > after)
                ids = [str(i) for i in conn.execute(q).scalars().all()]
                if not ids:
                    return PruneCounts(), None
                ne, el = node_executions, execution_logs
                BlobStore.doom(conn, self.tenant, execution_ids=ids)
                runs = conn.execute(ne.delete().where(ne.c.execution_id.in_(ids))).rowcount
                logs = conn.execute(el.delete().where(el.c.execution_id.in_(ids))).rowcount
                gone = conn.execute(
                    ex.delete().where(ex.c.id.in_(ids), ex.c.tenant_id == self.tenant)
                ).rowcount
                more = ids[-1] if len(ids) == self.p.batch else None
                return PruneCounts(executions=gone, node_runs=runs, logs=logs), more

            return await self.db.write(_tx)

        return step

    def _bodies(self, cutoff: datetime) -> Any:
        old = sa.and_(
            wh.c.tenant_id == self.tenant,
            wh.c.id < uuid7_floor(_ms(cutoff)),
            wh.c.received_at < cutoff,
            wh.c.status != _RECEIVED,
            sa.or_(sa.func.length(wh.c.body) > 0, wh.c.body_blob_id.is_not(None)),
        )

        async def step(after: str | None) -> tuple[PruneCounts, str | None]:
            if self.dry:
                q = sa.select(sa.func.count()).where(old)
                n = await self.db.read(lambda c: c.execute(q).scalar_one())
                return PruneCounts(webhook_bodies=n), None

            def _tx(conn: Connection) -> tuple[PruneCounts, str | None]:
                ids = _page(conn, wh.c.id, old, after, self.p.batch)
                if not ids:
                    return PruneCounts(), None
                BlobStore.doom(conn, self.tenant, webhook_event_ids=ids, unadopted=True)
                q = wh.update().where(wh.c.id.in_(ids)).values(body=b"", body_blob_id=None)
                n = conn.execute(q).rowcount
                return PruneCounts(webhook_bodies=n), _more(ids, self.p.batch)

            return await self.db.write(_tx)

        return step

    def _webhook_events(self, cutoff: datetime) -> Any:
        old = sa.and_(
            wh.c.tenant_id == self.tenant,
            wh.c.id < uuid7_floor(_ms(cutoff)),
            wh.c.received_at < cutoff,
            wh.c.status != _RECEIVED,
        )

        async def step(after: str | None) -> tuple[PruneCounts, str | None]:
            if self.dry:
                q = sa.select(sa.func.count()).where(old)
                n = await self.db.read(lambda c: c.execute(q).scalar_one())
                return PruneCounts(webhook_events=n), None

            def _tx(conn: Connection) -> tuple[PruneCounts, str | None]:
                ids = _page(conn, wh.c.id, old, after, self.p.batch)
                if not ids:
                    return PruneCounts(), None
                BlobStore.doom(conn, self.tenant, webhook_event_ids=ids, unadopted=True)
                n = conn.execute(wh.delete().where(wh.c.id.in_(ids))).rowcount
                return PruneCounts(webhook_events=n), _more(ids, self.p.batch)

            return await self.db.write(_tx)

        return step

    async def _consumed_upto(self) -> int | None:
        """The highest sequence every feed consumer of the tenant has read (``None``:
        no consumer in this deployment)."""
        ec = event_consumers

        def _read(conn: Connection) -> int | None:
            names = conn.execute(sa.select(ec.c.consumer).distinct()).scalars().all()
            if not names:
                return None
            mine = dict(
                conn.execute(
                    sa.select(ec.c.consumer, ec.c.last_sequence).where(
                        ec.c.tenant_id == self.tenant
                    )
                ).all()
            )
            return min(int(mine.get(n, 0)) for n in names)

        return await self.db.read(_read)

    def _store_events(self, cutoff: datetime, upto: int | None) -> Any:
        # Events are appended in time order: paged by sequence, the first event newer
        # than the cutoff ends the tenant's prune (no scan of the recent ones).
        mine = es.c.tenant_id == self.tenant
        if upto is not None:
            mine = sa.and_(mine, es.c.sequence_number <= upto)

        async def step(after: str | None) -> tuple[PruneCounts, str | None]:
            if self.dry:
                q = sa.select(sa.func.count()).where(mine, es.c.timestamp < cutoff)
                n = await self.db.read(lambda c: c.execute(q).scalar_one())
                return PruneCounts(store_events=n), None

            def _tx(conn: Connection) -> tuple[PruneCounts, str | None]:
                q = (
                    sa.select(es.c.sequence_number, es.c.timestamp)
                    .where(mine)
                    .order_by(es.c.sequence_number)
                    .limit(self.p.batch)
                )
                if after is not None:
                    q = q.where(es.c.sequence_number > int(after))
                rows = conn.execute(q).all()
                old = [int(seq) for seq, at in rows if at < cutoff]
                if not old:
                    return PruneCounts(), None
                n = conn.execute(es.delete().where(mine, es.c.sequence_number.in_(old))).rowcount
                whole = len(old) == len(rows) == self.p.batch
                return PruneCounts(store_events=n), str(old[-1]) if whole else None

            return await self.db.write(_tx)

        return step


def _count_executions(conn: Connection, old: Any) -> PruneCounts:
    ids = sa.select(ex.c.id).where(old)
    n = conn.execute(sa.select(sa.func.count()).where(old)).scalar_one()
    ne, el = node_executions, execution_logs
    runs = conn.execute(sa.select(sa.func.count()).where(ne.c.execution_id.in_(ids))).scalar_one()
    logs = conn.execute(sa.select(sa.func.count()).where(el.c.execution_id.in_(ids))).scalar_one()
    return PruneCounts(executions=n, node_runs=runs, logs=logs)


def _page(conn: Connection, key: Any, where: Any, after: str | None, batch: int) -> list[str]:
    q = sa.select(key).where(where).order_by(key).limit(batch)
    if after is not None:
        q = q.where(key > after)
    return [str(i) for i in conn.execute(q).scalars().all()]


def _more(ids: list[str], batch: int) -> str | None:
    return ids[-1] if len(ids) == batch else None

"""Operational read models: what is queued and running right now, per tenant.

The database is the source of truth for work in flight (the queue is transport, DESIGN
§4), so a tenant's depth is counted from its live node runs, not from the queue, whose
jobs are shared by every tenant.
"""

from __future__ import annotations

import sqlalchemy as sa

from flowmill.domain.states import LIVE_NODE_STATUSES
from flowmill.store.database import Database
from flowmill.store.tables import node_executions

ne = node_executions


async def live_steps(db: Database, tenant_id: str) -> dict[str, int]:
    """The tenant's live node runs per status (``pending``, ``queued``, ``running``,
    ``waiting``), zeros included. Reads only live rows (the partial live index)."""
    statuses = sorted(s.value for s in LIVE_NODE_STATUSES)
    q = (
        sa.select(ne.c.status, sa.func.count())
        .where(ne.c.tenant_id == tenant_id, ne.c.status.in_(statuses))
        .group_by(ne.c.status)
    )
    rows = await db.read(lambda c: c.execute(q).all())
    counts = dict.fromkeys(statuses, 0)
    counts.update({str(status): int(n) for status, n in rows})
    return counts

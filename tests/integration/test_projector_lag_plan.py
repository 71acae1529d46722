"""The projector's lag query keeps looking events up by index, whatever the event
store's size when PostgreSQL planned it.

A prepared statement keeps its generic plan until statistics change; with autovacuum
off they never do, so a plan made while the event store was empty is the plan for
good. Made on an empty store, the join form hash-joined the whole event store (a soak
read 260,000 events a call, 100-150 ms, about once a second).
"""

from __future__ import annotations

from flowmill.projections.projector import lag_query
from flowmill.store.database import connect
from flowmill.store.queries import explain_generic


async def test_projector_lag_plan_made_on_an_empty_store_does_not_scan_it(
    postgres_url: str,
) -> None:
    db = connect(postgres_url)
    try:
        for tenant in (None, "t"):
            query = lag_query("projection:workflow_summary", tenant)
            plan = "\n".join(await db.read(lambda c, q=query: explain_generic(c, q)))
            assert "Seq Scan on event_store" not in plan, plan
            assert "uq_event_store_tenant_id_sequence_number" in plan, plan
    finally:
        await db.close()

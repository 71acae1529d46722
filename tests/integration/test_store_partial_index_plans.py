"""The sweeper's periodic queries walk their partial indexes on PostgreSQL, even as
generic plans (what a statement run often is planned as, for any parameters)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from flowmill.store.database import connect
from flowmill.store.execution_store import (
    live_count_query,
    live_runs_query,
    overdue_query,
    queued_query,
)
from flowmill.store.queries import explain_generic
from flowmill.store.webhook_events import stale_received_query

# 30,000 ended rows and a few live ones: a scan reads them all, the index the few.
_EXECUTIONS = """
INSERT INTO workflow_executions
    (id, tenant_id, workflow_id, version, status, trigger_type, trigger, created_at,
     deadline_at)
SELECT md5(g::text)::uuid, 't', '01900000-0000-7000-8000-000000000000', 1,
       CASE WHEN g % 1000 = 0 THEN 'running' ELSE 'succeeded' END,
       'manual', '{}'::jsonb, now(), now() - interval '1 hour'
FROM generate_series(1, 30000) AS g
"""
_RUNS = """
INSERT INTO node_executions
    (id, tenant_id, execution_id, node_id, attempt, status, input, created_at, owner)
SELECT md5('r' || g::text)::uuid, 't', md5(g::text)::uuid, 'n', 1,
       CASE WHEN g % 1000 = 0 THEN 'running' ELSE 'succeeded' END, '{}'::jsonb,
       now() - interval '1 hour', 'gone-worker'
FROM generate_series(1, 30000) AS g
"""
_WEBHOOK_EVENTS = """
INSERT INTO webhook_events
    (id, tenant_id, provider, route, method, headers, body, verified, status,
     execution_ids, received_at)
SELECT md5(g::text)::uuid, 't', 'generic', '/x', 'POST', '{}'::jsonb, ''::bytea, true,
       CASE WHEN g % 1000 = 0 THEN 'received' ELSE 'dispatched' END, '[]'::jsonb,
       now() - interval '1 hour'
FROM generate_series(1, 30000) AS g
"""


# In time order, as uuid7 ids are, a fifth of them live and the newest (a backlog):
# for ORDER BY id LIMIT, PostgreSQL expects to meet live rows early in the primary key
# and walks it, reading every ended one before the first live one.
_EXECUTIONS_IN_ORDER = """
INSERT INTO workflow_executions
    (id, tenant_id, workflow_id, version, status, trigger_type, trigger, created_at)
SELECT lpad(to_hex(g), 32, '0')::uuid, 't', '01900000-0000-7000-8000-000000000000', 1,
       CASE WHEN g > 24000 THEN 'queued' ELSE 'succeeded' END,
       'manual', '{}'::jsonb, now()
FROM generate_series(1, 30000) AS g
"""
_RUNS_IN_ORDER = """
INSERT INTO node_executions
    (id, tenant_id, execution_id, node_id, attempt, status, input, created_at, owner)
SELECT lpad(to_hex(g), 32, '0')::uuid, 't', lpad(to_hex(g), 32, '0')::uuid, 'n', 1,
       CASE WHEN g > 24000 THEN 'queued' ELSE 'succeeded' END, '{}'::jsonb,
       now() - interval '1 hour', 'w' || (g % 4)::text
FROM generate_series(1, 30000) AS g
"""


async def _generic_plan(url: str, seeds: list[str], table: str, query: sa.Select[Any]) -> str:
    [plan] = await _generic_plans(url, seeds, table, [query])
    return plan


async def _generic_plans(
    url: str, seeds: list[str], table: str, queries: list[sa.Select[Any]]
) -> list[str]:
    db = connect(url)
    try:

        def _seed(conn: sa.Connection) -> None:
            for seed in seeds:
                conn.exec_driver_sql(seed)
            conn.exec_driver_sql(f"ANALYZE {table}")

        await db.write(_seed)

        return [
            "\n".join(await db.read(lambda c, q=query: explain_generic(c, q))) for query in queries
        ]
    finally:
        await db.close()


async def test_store_partial_index_plans_overdue_executions_walk_the_live_index(
    postgres_url: str,
) -> None:
    now = datetime.now(UTC)
    plan = await _generic_plan(
        postgres_url, [_EXECUTIONS], "workflow_executions", overdue_query(now, 100)
    )
    assert "ix_executions_live" in plan and "Seq Scan" not in plan, plan


async def test_store_partial_index_plans_stale_webhook_events_walk_the_received_index(
    postgres_url: str,
) -> None:
    older = datetime.now(UTC) - timedelta(seconds=30)
    plan = await _generic_plan(
        postgres_url, [_WEBHOOK_EVENTS], "webhook_events", stale_received_query(older, 100)
    )
    assert "ix_webhook_events_received" in plan and "Seq Scan" not in plan, plan


async def test_store_partial_index_plans_live_runs_of_dead_workers_walk_the_live_index(
    postgres_url: str,
) -> None:
    query = live_runs_query(alive_owners=["w1"], unowned_older_than=datetime.now(UTC))
    plan = await _generic_plan(postgres_url, [_EXECUTIONS, _RUNS], "node_executions", query)
    assert "ix_node_executions_live" in plan and "Seq Scan" not in plan, plan


async def test_store_partial_index_plans_oldest_live_runs_do_not_walk_the_primary_key(
    postgres_url: str,
) -> None:
    query = live_runs_query(alive_owners=["w1"], unowned_older_than=datetime.now(UTC))
    plan = await _generic_plan(
        postgres_url, [_EXECUTIONS_IN_ORDER, _RUNS_IN_ORDER], "node_executions", query
    )
    assert "ix_node_executions_live" in plan, plan  # either index of live runs
    assert "pk_node_executions" not in plan and "Seq Scan" not in plan, plan


async def test_store_partial_index_plans_oldest_queued_executions_walk_the_queued_index(
    postgres_url: str,
) -> None:
    queries = [queued_query(), queued_query(tenant_id="t")]
    plans = await _generic_plans(
        postgres_url, [_EXECUTIONS_IN_ORDER], "workflow_executions", queries
    )
    for plan in plans:
        assert "ix_executions_queued" in plan, plan
        assert "pk_workflow_executions" not in plan and "Seq Scan" not in plan, plan


async def test_store_partial_index_plans_limited_start_counts_the_live_index(
    postgres_url: str,
) -> None:
    query = live_count_query("01900000-0000-7000-8000-000000000000")
    plan = await _generic_plan(postgres_url, [_EXECUTIONS], "workflow_executions", query)
    assert "ix_executions_live" in plan and "Seq Scan" not in plan, plan

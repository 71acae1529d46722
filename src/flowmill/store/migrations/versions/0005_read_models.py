"""read models: workflow_summary, node_performance, webhook_analytics, workflow_activity

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06 08:00:00
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import flowmill.store.types

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TIME = flowmill.store.types.UTCDateTime(timezone=True)


def _json() -> sa.types.TypeEngine[object]:
    return flowmill.store.types.JsonText().with_variant(
        postgresql.JSONB(astext_type=sa.Text()), "postgresql"
    )


def _counters(*names: str) -> list[sa.Column[Any]]:
    return [sa.Column(n, sa.BigInteger(), nullable=False) for n in names]


def _durations() -> list[sa.Column[Any]]:
    return [
        *_counters("duration_count", "duration_sum_ms"),
        sa.Column("avg_duration_ms", sa.Float(), nullable=True),
        sa.Column("p95_duration_ms", sa.Float(), nullable=True),
        sa.Column("durations", _json(), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "workflow_summary",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("workflow_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=300), nullable=True),
        sa.Column("created_by", sa.String(length=200), nullable=True),
        sa.Column("created_at", _TIME, nullable=True),
        sa.Column("deleted_at", _TIME, nullable=True),
        *_counters("executions", "queued", "succeeded", "failed", "cancelled"),
        sa.Column("last_executed_at", _TIME, nullable=True),
        *_durations(),
        sa.PrimaryKeyConstraint("tenant_id", "workflow_id", name=op.f("pk_workflow_summary")),
    )
    op.create_table(
        "node_performance",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("workflow_id", sa.String(length=64), nullable=False),
        sa.Column("node_id", sa.String(length=200), nullable=False),
        *_counters("runs", "failures", "retries"),
        sa.Column("last_run_at", _TIME, nullable=True),
        *_durations(),
        sa.PrimaryKeyConstraint(
            "tenant_id", "workflow_id", "node_id", name=op.f("pk_node_performance")
        ),
    )
    op.create_table(
        "webhook_analytics",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("webhook_id", sa.String(length=300), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=True),
        *_counters("total", "succeeded", "rejected", "duplicates", "no_match", "failed"),
        sa.Column("last_called_at", _TIME, nullable=True),
        sa.PrimaryKeyConstraint("tenant_id", "webhook_id", name=op.f("pk_webhook_analytics")),
    )
    op.create_table(
        "workflow_activity",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("workflow_id", sa.String(length=64), nullable=False),
        sa.Column("hour", sa.BigInteger(), autoincrement=False, nullable=False),
        *_counters("started", "succeeded", "failed", "cancelled"),
        *_durations(),
        sa.PrimaryKeyConstraint(
            "tenant_id", "workflow_id", "hour", name=op.f("pk_workflow_activity")
        ),
    )


def downgrade() -> None:
    for table in ("workflow_activity", "webhook_analytics", "node_performance", "workflow_summary"):
        op.drop_table(table)

"""triggers service: scheduler leases, event consumer cursors, webhook routing columns

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 04:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import flowmill.store.types

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_RECEIVED = sa.text("status = 'received'")


def _json() -> sa.types.TypeEngine[object]:
    return flowmill.store.types.JsonText().with_variant(
        postgresql.JSONB(astext_type=sa.Text()), "postgresql"
    )


def upgrade() -> None:
    op.create_table(
        "scheduler_leases",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("holder", sa.String(length=128), nullable=False),
        sa.Column("acquired_at", flowmill.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", flowmill.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_scheduler_leases")),
    )
    op.create_table(
        "event_consumers",
        sa.Column("consumer", sa.String(length=64), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("last_sequence", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", flowmill.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("consumer", "tenant_id", name=op.f("pk_event_consumers")),
    )
    with op.batch_alter_table("triggers", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("origin", sa.String(length=16), server_default="api", nullable=False)
        )
        batch_op.add_column(sa.Column("route", sa.String(length=300), nullable=True))
        batch_op.create_index("ix_triggers_route", ["tenant_id", "route"], unique=False)
    with op.batch_alter_table("webhook_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("event_type", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("targets", _json(), nullable=True))
        batch_op.create_index(
            "ix_webhook_events_received",
            ["received_at"],
            unique=False,
            sqlite_where=_RECEIVED,
            postgresql_where=_RECEIVED,
        )


def downgrade() -> None:
    with op.batch_alter_table("webhook_events", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_webhook_events_received", sqlite_where=_RECEIVED, postgresql_where=_RECEIVED
        )
        batch_op.drop_column("targets")
        batch_op.drop_column("event_type")
    with op.batch_alter_table("triggers", schema=None) as batch_op:
        batch_op.drop_index("ix_triggers_route")
        batch_op.drop_column("route")
        batch_op.drop_column("origin")
    op.drop_table("event_consumers")
    op.drop_table("scheduler_leases")

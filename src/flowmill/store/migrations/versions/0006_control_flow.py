"""control flow: child executions (parent node, iteration) and signals for wait nodes

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import flowmill.store.types

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("workflow_executions") as batch:
        batch.add_column(sa.Column("parent_node_id", sa.String(length=200), nullable=True))
        batch.add_column(sa.Column("iteration", sa.Integer(), nullable=True))
    op.create_index(
        "ix_executions_parent",
        "workflow_executions",
        ["parent_execution_id", "parent_node_id", "iteration"],
        unique=False,
    )
    op.create_table(
        "execution_signals",
        sa.Column("id", flowmill.store.types.Id(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("execution_id", flowmill.store.types.Id(length=36), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column(
            "payload",
            flowmill.store.types.JsonText().with_variant(
                postgresql.JSONB(astext_type=sa.Text()), "postgresql"
            ),
            nullable=True,
        ),
        sa.Column("received_at", flowmill.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("consumed_by", sa.String(length=200), nullable=True),
        sa.Column("consumed_at", flowmill.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["execution_id"],
            ["workflow_executions.id"],
            name=op.f("fk_execution_signals_execution_id_workflow_executions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_execution_signals")),
    )
    op.create_index(
        "ix_execution_signals_execution",
        "execution_signals",
        ["execution_id", "name", "received_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_execution_signals_execution", table_name="execution_signals")
    op.drop_table("execution_signals")
    op.drop_index("ix_executions_parent", table_name="workflow_executions")
    with op.batch_alter_table("workflow_executions") as batch:
        batch.drop_column("iteration")
        batch.drop_column("parent_node_id")

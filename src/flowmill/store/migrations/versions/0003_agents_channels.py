"""agents, connectors and channels: agent settings, conversation turns tied to their
step, channels, execution metadata, OAuth2 refresh leases

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 08:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import flowmill.store.types

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.types.TypeEngine[object]:
    return flowmill.store.types.JsonText().with_variant(
        postgresql.JSONB(astext_type=sa.Text()), "postgresql"
    )


def _time() -> flowmill.store.types.UTCDateTime:
    return flowmill.store.types.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "channels",
        sa.Column("id", flowmill.store.types.Id(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("account_id", sa.String(length=200), nullable=False),
        sa.Column("credential", sa.String(length=200), nullable=True),
        sa.Column("agent_id", flowmill.store.types.Id(length=36), nullable=True),
        sa.Column("workflow_id", flowmill.store.types.Id(length=36), nullable=True),
        sa.Column("enabled", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("created_at", _time(), nullable=False),
        sa.Column("updated_at", _time(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_channels_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_channels")),
        sa.UniqueConstraint(
            "tenant_id", "kind", "account_id", name=op.f("uq_channels_tenant_id_kind_account_id")
        ),
    )
    with op.batch_alter_table("agent_configs", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("provider", sa.String(length=32), server_default="openai", nullable=False)
        )
        batch_op.add_column(
            sa.Column("history_window", sa.Integer(), server_default="20", nullable=False)
        )
        batch_op.add_column(sa.Column("credential", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("base_url", sa.String(length=500), nullable=True))
        batch_op.add_column(sa.Column("settings", _json(), server_default="{}", nullable=False))
        batch_op.create_unique_constraint(
            batch_op.f("uq_agent_configs_tenant_id_name"), ["tenant_id", "name"]
        )
    with op.batch_alter_table("conversation_history", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("client_id", sa.String(length=255), server_default="", nullable=False)
        )
        batch_op.add_column(
            sa.Column("execution_id", flowmill.store.types.Id(length=36), nullable=True)
        )
        batch_op.add_column(sa.Column("node_id", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("attempt", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("seq", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("metadata", _json(), nullable=True))
        batch_op.drop_index("ix_conversation_history_conv")
        batch_op.create_index(
            "ix_conversation_history_conv", ["tenant_id", "conversation_id", "id"], unique=False
        )
        batch_op.create_unique_constraint(
            batch_op.f("uq_conversation_history_execution_id_node_id_seq"),
            ["execution_id", "node_id", "seq"],
        )
    with op.batch_alter_table("credentials", schema=None) as batch_op:
        batch_op.add_column(sa.Column("details", _json(), server_default="{}", nullable=False))
        batch_op.add_column(sa.Column("hint", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("refresh_lease_until", _time(), nullable=True))
    with op.batch_alter_table("workflow_executions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("metadata", _json(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("workflow_executions", schema=None) as batch_op:
        batch_op.drop_column("metadata")
    with op.batch_alter_table("credentials", schema=None) as batch_op:
        for column in ("refresh_lease_until", "hint", "details"):
            batch_op.drop_column(column)
    with op.batch_alter_table("conversation_history", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("uq_conversation_history_execution_id_node_id_seq"), type_="unique"
        )
        batch_op.drop_index("ix_conversation_history_conv")
        batch_op.create_index(
            "ix_conversation_history_conv",
            ["tenant_id", "conversation_id", "timestamp"],
            unique=False,
        )
        for column in ("metadata", "seq", "attempt", "node_id", "execution_id", "client_id"):
            batch_op.drop_column(column)
    with op.batch_alter_table("agent_configs", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_agent_configs_tenant_id_name"), type_="unique")
        for column in ("settings", "base_url", "credential", "history_window", "provider"):
            batch_op.drop_column(column)
    op.drop_table("channels")

"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-22 03:04:06.880647
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import flowmill.store.types

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "conversation_history",
        sa.Column("id", flowmill.store.types.Id(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("conversation_id", sa.String(length=255), nullable=False),
        sa.Column("role", sa.String(length=50), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("timestamp", flowmill.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conversation_history")),
    )
    with op.batch_alter_table("conversation_history", schema=None) as batch_op:
        batch_op.create_index(
            "ix_conversation_history_conv",
            ["tenant_id", "conversation_id", "timestamp"],
            unique=False,
        )

    op.create_table(
        "event_store",
        sa.Column("id", flowmill.store.types.Id(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("stream_id", sa.String(length=64), nullable=False),
        sa.Column("event_type", sa.String(length=64), nullable=False),
        sa.Column(
            "payload",
            flowmill.store.types.JsonText().with_variant(
                postgresql.JSONB(astext_type=sa.Text()), "postgresql"
            ),
            nullable=False,
        ),
        sa.Column("timestamp", flowmill.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("sequence_number", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_event_store")),
        sa.UniqueConstraint(
            "tenant_id", "sequence_number", name=op.f("uq_event_store_tenant_id_sequence_number")
        ),
    )
    with op.batch_alter_table("event_store", schema=None) as batch_op:
        batch_op.create_index(
            "ix_event_store_stream", ["stream_id", "sequence_number"], unique=False
        )

    op.create_table(
        "tenants",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("created_at", flowmill.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("event_seq", sa.BigInteger(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tenants")),
    )
    op.create_table(
        "webhook_events",
        sa.Column("id", flowmill.store.types.Id(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("trigger_id", flowmill.store.types.Id(length=36), nullable=True),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("route", sa.String(length=500), nullable=False),
        sa.Column("method", sa.String(length=8), nullable=False),
        sa.Column(
            "headers",
            flowmill.store.types.JsonText().with_variant(
                postgresql.JSONB(astext_type=sa.Text()), "postgresql"
            ),
            nullable=False,
        ),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("verified", sa.Boolean(), nullable=False),
        sa.Column("verification_error", sa.String(length=200), nullable=True),
        sa.Column("dedupe_key", sa.String(length=300), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column(
            "execution_ids",
            flowmill.store.types.JsonText().with_variant(
                postgresql.JSONB(astext_type=sa.Text()), "postgresql"
            ),
            nullable=False,
        ),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("received_at", flowmill.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("processed_at", flowmill.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_events")),
        sa.UniqueConstraint(
            "tenant_id", "dedupe_key", name=op.f("uq_webhook_events_tenant_id_dedupe_key")
        ),
    )
    with op.batch_alter_table("webhook_events", schema=None) as batch_op:
        batch_op.create_index(
            "ix_webhook_events_trigger", ["tenant_id", "trigger_id", "id"], unique=False
        )

    op.create_table(
        "workers",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("hostname", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", flowmill.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", flowmill.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workers")),
    )
    op.create_table(
        "workflow_executions",
        sa.Column("id", flowmill.store.types.Id(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("workflow_id", flowmill.store.types.Id(length=36), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("trigger_type", sa.String(length=64), nullable=False),
        sa.Column(
            "trigger",
            flowmill.store.types.JsonText().with_variant(
                postgresql.JSONB(astext_type=sa.Text()), "postgresql"
            ),
            nullable=False,
        ),
        sa.Column(
            "output",
            flowmill.store.types.JsonText().with_variant(
                postgresql.JSONB(astext_type=sa.Text()), "postgresql"
            ),
            nullable=True,
        ),
        sa.Column(
            "error",
            flowmill.store.types.JsonText().with_variant(
                postgresql.JSONB(astext_type=sa.Text()), "postgresql"
            ),
            nullable=True,
        ),
        sa.Column("created_at", flowmill.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("started_at", flowmill.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("completed_at", flowmill.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("deadline_at", flowmill.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("parent_execution_id", flowmill.store.types.Id(length=36), nullable=True),
        sa.Column("retry_of", flowmill.store.types.Id(length=36), nullable=True),
        sa.Column("dedupe_key", sa.String(length=300), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workflow_executions")),
        sa.UniqueConstraint(
            "tenant_id", "dedupe_key", name=op.f("uq_workflow_executions_tenant_id_dedupe_key")
        ),
    )
    with op.batch_alter_table("workflow_executions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_executions_live",
            ["workflow_id", "status"],
            unique=False,
            sqlite_where=sa.text("status IN ('pending', 'queued', 'running', 'waiting')"),
            postgresql_where=sa.text("status IN ('pending', 'queued', 'running', 'waiting')"),
        )
        batch_op.create_index("ix_executions_tenant_id", ["tenant_id", "id"], unique=False)
        batch_op.create_index(
            "ix_executions_tenant_status", ["tenant_id", "status", "id"], unique=False
        )
        batch_op.create_index(
            "ix_executions_tenant_workflow", ["tenant_id", "workflow_id", "id"], unique=False
        )

    op.create_table(
        "agent_configs",
        sa.Column("id", flowmill.store.types.Id(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("model", sa.String(length=255), nullable=False),
        sa.Column(
            "character",
            flowmill.store.types.JsonText().with_variant(
                postgresql.JSONB(astext_type=sa.Text()), "postgresql"
            ),
            nullable=False,
        ),
        sa.Column("max_tokens", sa.Integer(), nullable=False),
        sa.Column("temperature", sa.Float(), nullable=False),
        sa.Column("created_at", flowmill.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", flowmill.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_agent_configs_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agent_configs")),
    )
    with op.batch_alter_table("agent_configs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_agent_configs_tenant_id"), ["tenant_id"], unique=False)

    op.create_table(
        "api_keys",
        sa.Column("id", flowmill.store.types.Id(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), server_default="", nullable=False),
        sa.Column("prefix", sa.String(length=32), nullable=False),
        sa.Column("key_hash", sa.String(length=128), nullable=False),
        sa.Column("created_at", flowmill.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", flowmill.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", flowmill.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_api_keys_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_api_keys_key_hash")),
    )
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_api_keys_tenant_id"), ["tenant_id"], unique=False)

    op.create_table(
        "credentials",
        sa.Column("id", flowmill.store.types.Id(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("key_id", sa.String(length=64), nullable=False),
        sa.Column("ciphertext", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", flowmill.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", flowmill.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_credentials_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_credentials")),
        sa.UniqueConstraint("tenant_id", "name", name=op.f("uq_credentials_tenant_id_name")),
    )
    op.create_table(
        "execution_logs",
        sa.Column("id", flowmill.store.types.Id(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("execution_id", flowmill.store.types.Id(length=36), nullable=False),
        sa.Column("node_id", sa.String(length=200), nullable=True),
        sa.Column("attempt", sa.Integer(), nullable=True),
        sa.Column("level", sa.String(length=8), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column(
            "metadata",
            flowmill.store.types.JsonText().with_variant(
                postgresql.JSONB(astext_type=sa.Text()), "postgresql"
            ),
            nullable=False,
        ),
        sa.Column("timestamp", flowmill.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["execution_id"],
            ["workflow_executions.id"],
            name=op.f("fk_execution_logs_execution_id_workflow_executions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_execution_logs")),
    )
    with op.batch_alter_table("execution_logs", schema=None) as batch_op:
        batch_op.create_index("ix_execution_logs_execution", ["execution_id", "id"], unique=False)

    op.create_table(
        "node_executions",
        sa.Column("id", flowmill.store.types.Id(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("execution_id", flowmill.store.types.Id(length=36), nullable=False),
        sa.Column("node_id", sa.String(length=200), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column(
            "input",
            flowmill.store.types.JsonText().with_variant(
                postgresql.JSONB(astext_type=sa.Text()), "postgresql"
            ),
            nullable=True,
        ),
        sa.Column(
            "output",
            flowmill.store.types.JsonText().with_variant(
                postgresql.JSONB(astext_type=sa.Text()), "postgresql"
            ),
            nullable=True,
        ),
        sa.Column(
            "error",
            flowmill.store.types.JsonText().with_variant(
                postgresql.JSONB(astext_type=sa.Text()), "postgresql"
            ),
            nullable=True,
        ),
        sa.Column(
            "handles",
            flowmill.store.types.JsonText().with_variant(
                postgresql.JSONB(astext_type=sa.Text()), "postgresql"
            ),
            nullable=True,
        ),
        sa.Column(
            "state",
            flowmill.store.types.JsonText().with_variant(
                postgresql.JSONB(astext_type=sa.Text()), "postgresql"
            ),
            nullable=True,
        ),
        sa.Column("not_before", flowmill.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", flowmill.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("started_at", flowmill.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("completed_at", flowmill.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("owner", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["execution_id"],
            ["workflow_executions.id"],
            name=op.f("fk_node_executions_execution_id_workflow_executions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_node_executions")),
        sa.UniqueConstraint(
            "execution_id",
            "node_id",
            "attempt",
            name=op.f("uq_node_executions_execution_id_node_id_attempt"),
        ),
    )
    with op.batch_alter_table("node_executions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_node_executions_live",
            ["owner", "not_before"],
            unique=False,
            sqlite_where=sa.text("status IN ('pending', 'queued', 'running', 'waiting')"),
            postgresql_where=sa.text("status IN ('pending', 'queued', 'running', 'waiting')"),
        )
        batch_op.create_index(
            "ix_node_executions_live_execution",
            ["execution_id"],
            unique=False,
            sqlite_where=sa.text("status IN ('pending', 'queued', 'running', 'waiting')"),
            postgresql_where=sa.text("status IN ('pending', 'queued', 'running', 'waiting')"),
        )

    op.create_table(
        "workflows",
        sa.Column("id", flowmill.store.types.Id(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=300), nullable=False),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column(
            "tags",
            flowmill.store.types.JsonText().with_variant(
                postgresql.JSONB(astext_type=sa.Text()), "postgresql"
            ),
            nullable=False,
        ),
        sa.Column("latest_version", sa.Integer(), nullable=False),
        sa.Column("active_version", sa.Integer(), nullable=True),
        sa.Column("created_at", flowmill.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", flowmill.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", flowmill.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_workflows_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_workflows")),
    )
    with op.batch_alter_table("workflows", schema=None) as batch_op:
        batch_op.create_index("ix_workflows_tenant_name", ["tenant_id", "name"], unique=False)
        batch_op.create_index(
            "ix_workflows_tenant_status", ["tenant_id", "status", "id"], unique=False
        )

    op.create_table(
        "triggers",
        sa.Column("id", flowmill.store.types.Id(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("workflow_id", flowmill.store.types.Id(length=36), nullable=False),
        sa.Column("node_id", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=200), server_default="", nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=True),
        sa.Column(
            "config",
            flowmill.store.types.JsonText().with_variant(
                postgresql.JSONB(astext_type=sa.Text()), "postgresql"
            ),
            nullable=False,
        ),
        sa.Column("secret", sa.LargeBinary(), nullable=True),
        sa.Column("enabled", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("created_at", flowmill.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", flowmill.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_run_at", flowmill.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("next_run_at", flowmill.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_triggers_tenant_id_tenants")
        ),
        sa.ForeignKeyConstraint(
            ["workflow_id"],
            ["workflows.id"],
            name=op.f("fk_triggers_workflow_id_workflows"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_triggers")),
    )
    with op.batch_alter_table("triggers", schema=None) as batch_op:
        batch_op.create_index("ix_triggers_due", ["kind", "enabled", "next_run_at"], unique=False)
        batch_op.create_index(
            "ix_triggers_tenant_workflow", ["tenant_id", "workflow_id"], unique=False
        )

    op.create_table(
        "workflow_versions",
        sa.Column("workflow_id", flowmill.store.types.Id(length=36), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column(
            "definition",
            flowmill.store.types.JsonText().with_variant(
                postgresql.JSONB(astext_type=sa.Text()), "postgresql"
            ),
            nullable=False,
        ),
        sa.Column("definition_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", flowmill.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("published_at", flowmill.store.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("note", sa.Text(), server_default="", nullable=False),
        sa.ForeignKeyConstraint(
            ["workflow_id"],
            ["workflows.id"],
            name=op.f("fk_workflow_versions_workflow_id_workflows"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("workflow_id", "version", name=op.f("pk_workflow_versions")),
    )


def downgrade() -> None:

    op.drop_table("workflow_versions")
    with op.batch_alter_table("triggers", schema=None) as batch_op:
        batch_op.drop_index("ix_triggers_tenant_workflow")
        batch_op.drop_index("ix_triggers_due")

    op.drop_table("triggers")
    with op.batch_alter_table("workflows", schema=None) as batch_op:
        batch_op.drop_index("ix_workflows_tenant_status")
        batch_op.drop_index("ix_workflows_tenant_name")

    op.drop_table("workflows")
    with op.batch_alter_table("node_executions", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_node_executions_live_execution",
            sqlite_where=sa.text("status IN ('pending', 'queued', 'running', 'waiting')"),
            postgresql_where=sa.text("status IN ('pending', 'queued', 'running', 'waiting')"),
        )
        batch_op.drop_index(
            "ix_node_executions_live",
            sqlite_where=sa.text("status IN ('pending', 'queued', 'running', 'waiting')"),
            postgresql_where=sa.text("status IN ('pending', 'queued', 'running', 'waiting')"),
        )

    op.drop_table("node_executions")
    with op.batch_alter_table("execution_logs", schema=None) as batch_op:
        batch_op.drop_index("ix_execution_logs_execution")

    op.drop_table("execution_logs")
    op.drop_table("credentials")
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_keys_tenant_id"))

    op.drop_table("api_keys")
    with op.batch_alter_table("agent_configs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_agent_configs_tenant_id"))

    op.drop_table("agent_configs")
    with op.batch_alter_table("workflow_executions", schema=None) as batch_op:
        batch_op.drop_index("ix_executions_tenant_workflow")
        batch_op.drop_index("ix_executions_tenant_status")
        batch_op.drop_index("ix_executions_tenant_id")
        batch_op.drop_index(
            "ix_executions_live",
            sqlite_where=sa.text("status IN ('pending', 'queued', 'running', 'waiting')"),
            postgresql_where=sa.text("status IN ('pending', 'queued', 'running', 'waiting')"),
        )

    op.drop_table("workflow_executions")
    op.drop_table("workers")
    with op.batch_alter_table("webhook_events", schema=None) as batch_op:
        batch_op.drop_index("ix_webhook_events_trigger")

    op.drop_table("webhook_events")
    op.drop_table("tenants")
    with op.batch_alter_table("event_store", schema=None) as batch_op:
        batch_op.drop_index("ix_event_store_stream")

    op.drop_table("event_store")
    with op.batch_alter_table("conversation_history", schema=None) as batch_op:
        batch_op.drop_index("ix_conversation_history_conv")

    op.drop_table("conversation_history")

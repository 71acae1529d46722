"""large payloads: the blobs index, blob chunks (PostgreSQL backend), webhook body blobs

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06 15:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import flowmill.store.types

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "blobs",
        sa.Column("id", flowmill.store.types.Id(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("execution_id", flowmill.store.types.Id(length=36), nullable=True),
        sa.Column("webhook_event_id", flowmill.store.types.Id(length=36), nullable=True),
        sa.Column("step_key", sa.String(length=600), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("media_type", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("backend", sa.String(length=16), nullable=False),
        sa.Column("created_at", flowmill.store.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_blobs")),
    )
    op.create_index("ix_blobs_execution", "blobs", ["tenant_id", "execution_id"], unique=False)
    op.create_index(
        "ix_blobs_webhook_event", "blobs", ["tenant_id", "webhook_event_id"], unique=False
    )
    op.create_index("ix_blobs_status", "blobs", ["tenant_id", "status", "created_at"], unique=False)
    op.create_table(
        "blob_chunks",
        sa.Column("blob_id", flowmill.store.types.Id(length=36), nullable=False),
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["blob_id"],
            ["blobs.id"],
            name=op.f("fk_blob_chunks_blob_id_blobs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("blob_id", "seq", name=op.f("pk_blob_chunks")),
    )
    with op.batch_alter_table("webhook_events") as batch:
        batch.add_column(
            sa.Column("body_blob_id", flowmill.store.types.Id(length=36), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("webhook_events") as batch:
        batch.drop_column("body_blob_id")
    op.drop_table("blob_chunks")
    op.drop_index("ix_blobs_status", table_name="blobs")
    op.drop_index("ix_blobs_webhook_event", table_name="blobs")
    op.drop_index("ix_blobs_execution", table_name="blobs")
    op.drop_table("blobs")

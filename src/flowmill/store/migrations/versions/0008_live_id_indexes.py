"""partial indexes by id of live node runs and of queued executions

The sweeper's "live runs of dead workers" and "queued executions" ask for the oldest
first (ORDER BY id LIMIT n). With no index giving live rows in id order, PostgreSQL
walked the primary key from the oldest row of the table, filtering out every ended
one: 16 ms at 30,000 node runs here, 100-250 ms in a 32-minute soak, growing with the
table. These indexes hold the few live rows, in id order.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 14:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_LIVE_RUN = sa.text("status IN ('pending', 'queued', 'running', 'waiting')")
_QUEUED = sa.text("status = 'queued'")


def upgrade() -> None:
    op.create_index(
        "ix_node_executions_live_id",
        "node_executions",
        ["id"],
        unique=False,
        sqlite_where=_LIVE_RUN,
        postgresql_where=_LIVE_RUN,
    )
    op.create_index(
        "ix_executions_queued",
        "workflow_executions",
        ["id"],
        unique=False,
        sqlite_where=_QUEUED,
        postgresql_where=_QUEUED,
    )


def downgrade() -> None:
    op.drop_index("ix_executions_queued", table_name="workflow_executions")
    op.drop_index("ix_node_executions_live_id", table_name="node_executions")

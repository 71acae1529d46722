"""a partial index by id of queued executions

The sweep that starts queued executions asks for the oldest first (ORDER BY id LIMIT
n). With no index giving queued rows in id order, PostgreSQL walked the primary key
from the oldest execution, filtering out every ended one: up to 80 ms in a 32-minute
soak, growing with the table. This index holds the few queued rows, in id order.
(Live node runs got no such index: it cost a chain of steps on PostgreSQL 17 % more
per step; their query orders by creation time instead, see ``live_runs_query``.)

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

_QUEUED = sa.text("status = 'queued'")


def upgrade() -> None:
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

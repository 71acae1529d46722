"""Column types that behave the same on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect

from flowmill import jsonutil


class UTCDateTime(sa.TypeDecorator[datetime]):
    """Timezone-aware UTC in Python; ``timestamptz`` on PostgreSQL, UTC text on SQLite."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime; use timezone-aware UTC")
        value = value.astimezone(UTC)
        return value if dialect.name == "postgresql" else value.replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class JsonText(sa.TypeDecorator[Any]):
    """JSON stored as TEXT on SQLite.

    A column declared ``JSON`` gets NUMERIC affinity in SQLite, which turns a stored
    ``25.0`` (a node whose whole output is a number) into a REAL that no longer decodes
    as JSON, and loses precision on big integers. TEXT affinity keeps the text as is.
    """

    impl = sa.Text()
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> str:
        return jsonutil.dumps(value)

    def process_result_value(self, value: str | None, dialect: Dialect) -> Any:
        return None if value is None else jsonutil.loads(value)


def Json() -> sa.types.TypeEngine[Any]:
    """JSON as TEXT on SQLite, JSONB on PostgreSQL."""
    return JsonText().with_variant(JSONB(), "postgresql")


class Id(sa.TypeDecorator[str]):
    """A UUID as a canonical string: native ``uuid`` on PostgreSQL, text on SQLite.

    SQLAlchemy's own ``Uuid`` re-parses every value on SQLite (to store 32 hex digits);
    on the step hot path that was a measurable share of each checkpoint.
    """

    impl = sa.String(36)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(sa.Uuid(as_uuid=False))
        return dialect.type_descriptor(sa.String(36))

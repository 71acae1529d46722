"""The raw asyncpg connections of the PostgreSQL fast paths go back to the pool clean."""

from __future__ import annotations

from flowmill.store.database import PostgresDatabase, connect
from flowmill.store.postgres_fast import raw_connection


async def test_postgres_raw_connection_left_inside_a_transaction_is_not_reused(
    postgres_url: str,
) -> None:
    # One connection in the pool: the second checkout would get the first one back.
    db = connect(postgres_url, pool_size=1)
    assert isinstance(db, PostgresDatabase)
    try:
        async with raw_connection(db.engine) as pg:
            await pg.execute("BEGIN")  # as a rollback cut short by a cancellation leaves it
            first = pg
        async with raw_connection(db.engine) as pg:
            assert pg is not first
            assert not pg.is_in_transaction()
            async with pg.transaction():  # what the next checkpoint does first
                assert await pg.fetchval("SELECT 1") == 1
    finally:
        await db.close()

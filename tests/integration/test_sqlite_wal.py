"""The SQLite WAL is emptied now and then, however steady the writes."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from flowmill.store.database import SqliteDatabase


async def test_sqlite_wal_is_emptied_every_truncate_every_commits(tmp_path: Path) -> None:
    # Passive checkpoints alone never shrink the file (and under steady commits never
    # let SQLite start it over): a long loop grew it to gigabytes.
    path = tmp_path / "wal.db"
    db = SqliteDatabase(
        f"sqlite:///{path}", checkpoint_every=5, truncate_every=40, truncate_above_bytes=0
    )
    try:
        await db.write(lambda c: c.exec_driver_sql("CREATE TABLE t (x TEXT)"))
        blob = "x" * 4000
        sizes = []
        for i in range(1, 120):
            await db.write(lambda c: c.exec_driver_sql("INSERT INTO t VALUES (?)", (blob,)))
            if (i + 1) % 40 == 0:  # (the CREATE was commit 1)
                sizes.append(os.path.getsize(f"{path}-wal"))
        readers = [
            db.read(lambda c: c.exec_driver_sql("SELECT count(*) FROM t").scalar_one())
            for _ in range(3)
        ]
        assert await asyncio.gather(*readers) == [119, 119, 119]
    finally:
        await db.close()
    assert sizes == [0, 0, 0]


async def test_sqlite_wal_below_the_size_is_left_alone(tmp_path: Path) -> None:
    # A truncation stalls every writer while it copies and syncs: a small WAL is not
    # worth one (a 390 ms stall in the webhook acknowledgements' p99).
    path = tmp_path / "wal.db"
    db = SqliteDatabase(
        f"sqlite:///{path}", checkpoint_every=5, truncate_every=40, truncate_above_bytes=1 << 30
    )
    try:
        await db.write(lambda c: c.exec_driver_sql("CREATE TABLE t (x TEXT)"))
        for _ in range(1, 80):
            await db.write(lambda c: c.exec_driver_sql("INSERT INTO t VALUES (?)", ("x" * 4000,)))
        assert os.path.getsize(f"{path}-wal") > 0
    finally:
        await db.close()

"""Blob bytes in the execution database, a megabyte per ``blob_chunks`` row: the
distributed layout's default (every API and worker process reaches PostgreSQL, not each
other's disks). Works on SQLite too.

Each chunk is its own short transaction, so a 500 MB write never holds a long lock nor
a 500 MB statement; the index row is ``writing`` until the last chunk is in, and a
reader only opens ``ready`` blobs, so a half-written blob is never read. Rewriting a key
first removes its old chunks.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterable, AsyncIterator, Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from flowmill.store.database import Database
from flowmill.store.tables import blob_chunks

CHUNK = 1024 * 1024


def _blob_id(key: str) -> str:
    _tenant, _, blob_id = key.partition("/")
    if not blob_id:
        raise KeyError(key)
    return blob_id


class DatabaseBlobContent:
    """Blob bytes in the ``blob_chunks`` table.

    Args:
        db: The execution database.
    """

    name = "database"

    def __init__(self, db: Database) -> None:
        self.db = db

    async def put(self, key: str, chunks: AsyncIterable[bytes]) -> None:
        """Insert the bytes, re-cut into megabyte rows."""
        blob_id = _blob_id(key)
        c = blob_chunks.c
        await self.db.write(
            lambda conn: conn.execute(blob_chunks.delete().where(c.blob_id == blob_id))
        )
        seq = 0
        pending = bytearray()

        async def flush(data: bytes) -> None:
            nonlocal seq
            row = {"blob_id": blob_id, "seq": seq, "data": data}
            await self.db.write(lambda conn: conn.execute(blob_chunks.insert(), row))
            seq += 1

        async for chunk in chunks:
            pending += chunk
            while len(pending) >= CHUNK:
                await flush(bytes(pending[:CHUNK]))
                del pending[:CHUNK]
        if pending or seq == 0:
            await flush(bytes(pending))

    async def get(self, key: str) -> AsyncIterator[bytes]:
        """The chunks in order, one row per read."""
        blob_id = _blob_id(key)
        c = blob_chunks.c
        seq = 0

        def _chunk(conn: Connection, n: int) -> bytes | None:
            q = sa.select(c.data).where(c.blob_id == blob_id, c.seq == n)
            data = conn.execute(q).scalar()
            return None if data is None else bytes(data)

        while True:
            data = await self.db.read(functools.partial(_chunk, n=seq))
            if data is None:
                if seq == 0:
                    raise KeyError(key)
                return
            if data:
                yield data
            seq += 1

    async def delete(self, keys: Sequence[str]) -> None:
        """Delete the chunks of ``keys`` (the index rows' cascade does it too)."""
        ids = [_blob_id(k) for k in keys]
        if ids:
            q = blob_chunks.delete().where(blob_chunks.c.blob_id.in_(ids))
            await self.db.write(lambda conn: conn.execute(q))

    async def close(self) -> None:
        """The database belongs to the runtime; nothing to release."""

"""Running repository code against SQLite or PostgreSQL without blocking the loop.

Repository functions are plain synchronous SQLAlchemy Core code taking a
:class:`~sqlalchemy.engine.Connection`; one implementation serves both databases:

* **SQLite**: a sync engine; all writes go through one dedicated thread (SQLite has one
  writer anyway) and reads through a small pool of reader threads (WAL lets them run
  beside the writer). One thread hop per transaction: measured 184 µs for a step's
  checkpoint against 1.5 ms through aiosqlite, which hops once per statement.
* **PostgreSQL**: an asyncpg engine, running the same functions with ``run_sync``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from flowmill import jsonutil
from flowmill.store.fair_executor import FairExecutor

T = TypeVar("T")
log = logging.getLogger("flowmill.store")
#: How long a connection waits for a lock another holds (another process on the file).
_BUSY_TIMEOUT_MS = 30000
Work = Callable[[Connection], T]


class Database(ABC):
    """Transactions for repository functions, off the event loop."""

    dialect: str
    url: str

    @abstractmethod
    async def write(self, fn: Work[T]) -> T:
        """Run ``fn`` in a read-write transaction; commit if it returns."""

    @abstractmethod
    async def read(self, fn: Work[T]) -> T:
        """Run ``fn`` in a read transaction."""

    def turn_of(self, tenants: Collection[str], *, reading: bool = False) -> str:
        """The tenant, of ``tenants``, in whose turn work shared by all of them should
        wait for the writer (or, ``reading``, a reader); see
        :meth:`FairExecutor.soonest`. A database that does not queue work per tenant:
        any of them."""
        return next(iter(tenants), "")

    async def read_statements(self, fn: Work[T]) -> T:
        """Run ``fn``'s reads each as its own statement, without a transaction around
        them: cheaper (no BEGIN/ROLLBACK round trips) where the caller checks what it
        read again later (a step's checkpoint does). SQLite: same as :meth:`read`."""
        return await self.read(fn)

    @abstractmethod
    async def close(self) -> None:
        """Release connections and threads."""

    async def reclaim_space(self, pages: int) -> int | None:
        """Give up to ``pages`` free pages back to the file system; the free pages left.

        ``None`` where the database reclaims space itself (PostgreSQL's autovacuum) or
        cannot do so a little at a time (a SQLite file made without incremental
        auto-vacuum: ``flowmill prune --vacuum`` converts it once).
        """
        return None

    @property
    def is_postgres(self) -> bool:
        """Whether this is PostgreSQL (row locks and ``FOR UPDATE`` mean something)."""
        return self.dialect == "postgresql"


def sync_url(url: str) -> str:
    """The URL for the synchronous SQLite engine."""
    return url.replace("sqlite+aiosqlite://", "sqlite://").replace(
        "sqlite+pysqlite://", "sqlite://"
    )


def async_url(url: str) -> str:
    """The URL for the asyncpg engine."""
    rest = url.split("://", 1)[1]
    return f"postgresql+asyncpg://{rest}"


def connect(url: str, *, pool_size: int = 10, sqlite_synchronous: str = "NORMAL") -> Database:
    """Open the database at ``url`` (``sqlite:///path`` or ``postgresql://...``)."""
    if url.startswith("sqlite"):
        return SqliteDatabase(url, synchronous=sqlite_synchronous)
    if url.startswith(("postgresql", "postgres")):
        from flowmill.extras import require

        require("asyncpg")  # the postgres extra: say so rather than fail deep in SQLAlchemy
        return PostgresDatabase(url, pool_size=pool_size)
    raise ValueError(f"unsupported database URL {url!r}; use sqlite:/// or postgresql://")


def _nothing() -> None:
    """A call that only waits its turn."""


def _json_serializer(obj: Any) -> str:
    return jsonutil.dumps(obj)


class SqliteDatabase(Database):
    """SQLite in WAL mode: one writer thread, a few reader threads.

    The writer rarely checkpoints the WAL itself (a checkpoint fsyncs and would stall
    whichever step's commit crossed the threshold); every ``checkpoint_every`` commits a
    passive checkpoint runs on its own connection and thread, beside the writer.

    A passive checkpoint never empties the WAL while commits keep coming (it is still
    copying when the next ones append; SQLite starts the file over only when a writer
    finds it wholly copied and no reader in it): a 15,000-iteration loop left a 1.4 GB
    WAL and a WAL index that every connection maps, so memory grew with it
    (``bench/loops.py``). So every ``truncate_every`` commits the writer thread itself,
    between two transactions, runs a ``TRUNCATE`` checkpoint: the passive ones have
    copied nearly everything, the readers it waits for are short, and it gives up
    after ``truncate_wait_ms`` (the next one catches up). Only a WAL larger than
    ``truncate_above_bytes`` is truncated: a small one costs a stall for nothing.
    """

    dialect = "sqlite"

    def __init__(
        self,
        url: str,
        *,
        synchronous: str = "NORMAL",
        readers: int = 3,
        checkpoint_every: int = 500,
        truncate_every: int = 2000,
        truncate_wait_ms: int = 100,
        truncate_above_bytes: int = 64 * 1024 * 1024,
    ) -> None:
        self.url = sync_url(url)
        path = sa.engine.make_url(self.url).database
        self._path = path if path and path != ":memory:" else None
        if self._path:
            Path(self._path).parent.mkdir(parents=True, exist_ok=True)
        self._checkpoint_every = checkpoint_every
        self._truncate_every = truncate_every
        self._truncate_wait_ms = truncate_wait_ms
        # A truncation stalls every writer while it copies and syncs the WAL (a p99 of
        # 390 ms in bench/webhooks.py at 2,000 commits): only a WAL past this size,
        # which the passive checkpoints did not keep small, is worth it.
        self._truncate_above = truncate_above_bytes
        self._commits = 0
        self._checkpointing = False
        self._checkpointer = ThreadPoolExecutor(1, thread_name_prefix="flowmill-sqlite-ckpt")
        self._synchronous = synchronous
        self.writer_engine = self._engine(
            immediate=True, pool_size=1, autocheckpoint=self._path is None
        )
        self.reader_engine = self._engine(immediate=False, pool_size=readers)
        # The one writer thread (and the readers) serve tenants in turn: a FIFO of work
        # put one tenant's thousands of queued commits before another's single one.
        self._writer = FairExecutor(1, name="flowmill-sqlite-writer")
        self._readers = FairExecutor(readers, name="flowmill-sqlite-reader")
        self._write_conn: Connection | None = None

    def _engine(self, *, immediate: bool, pool_size: int, autocheckpoint: bool = True) -> Engine:
        engine = sa.create_engine(
            self.url,
            json_serializer=_json_serializer,
            json_deserializer=jsonutil.loads,
            connect_args={"check_same_thread": False, "timeout": 30},
            pool_size=pool_size,
            max_overflow=0,
        )
        synchronous = self._synchronous

        @sa.event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves, below
            cur = dbapi_conn.cursor()
            # Takes effect only in a file with no table yet (a new database): its
            # deleted pages can then be returned bit by bit (reclaim_space) instead of
            # by a VACUUM that rewrites the whole file under an exclusive lock.
            cur.execute("PRAGMA auto_vacuum=INCREMENTAL")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA synchronous={synchronous}")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
            if not autocheckpoint:
                cur.execute("PRAGMA wal_autocheckpoint=0")
            cur.close()

        @sa.event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            # IMMEDIATE takes the write lock up front: two processes sharing the file
            # queue on busy_timeout instead of failing to upgrade a read lock.
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

        return engine

    def _run_write(self, fn: Work[T]) -> T:
        if self._write_conn is None:
            self._write_conn = self.writer_engine.connect()
        conn = self._write_conn
        try:
            with conn.begin():
                result = fn(conn)
        except sa.exc.OperationalError:
            # A broken connection must not poison every later write.
            conn.invalidate()
            self._write_conn = None
            raise
        self._commits += 1
        if (
            self._path
            and self._commits % self._truncate_every == 0
            and self._wal_bytes() > self._truncate_above
        ):
            self._truncate_wal(conn)
        elif self._path and self._commits % self._checkpoint_every == 0 and not self._checkpointing:
            self._checkpointing = True
            self._checkpointer.submit(self._checkpoint)
        return result

    def _wal_bytes(self) -> int:
        try:
            return os.path.getsize(f"{self._path}-wal")
        except OSError:
            return 0

    def _truncate_wal(self, conn: Connection) -> None:
        """Checkpoint the whole WAL and empty it, waiting at most ``truncate_wait_ms``
        for readers (on the writer thread, between two transactions)."""
        raw = conn.connection.dbapi_connection
        assert raw is not None
        # A passive checkpoint under way would make this one give up at once (SQLite
        # runs one checkpoint at a time): let it end first (its thread runs in order).
        self._checkpointer.submit(_nothing).result()
        try:
            raw.execute(f"PRAGMA busy_timeout={int(self._truncate_wait_ms)}")
            try:
                raw.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
            finally:
                raw.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
        except sqlite3.Error:
            log.warning("WAL truncation failed; the next one will try again", exc_info=True)

    def _checkpoint(self) -> None:
        try:
            conn = sqlite3.connect(self._path or "", isolation_level=None, timeout=30)
            try:
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
            finally:
                conn.close()
        except sqlite3.Error:
            log.warning("WAL checkpoint failed; the next one will catch up", exc_info=True)
        finally:
            self._checkpointing = False

    def _run_read(self, fn: Work[T]) -> T:
        with self.reader_engine.connect() as conn, conn.begin():
            return fn(conn)

    def turn_of(self, tenants: Collection[str], *, reading: bool = False) -> str:
        if not tenants:
            return ""
        return (self._readers if reading else self._writer).soonest(tenants)

    async def write(self, fn: Work[T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._writer, self._run_write, fn)

    async def read(self, fn: Work[T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._readers, self._run_read, fn)

    async def reclaim_space(self, pages: int) -> int | None:
        return await asyncio.get_running_loop().run_in_executor(
            self._writer, self._incremental_vacuum, pages
        )

    def _raw_writer(self) -> Any:
        if self._write_conn is None:
            self._write_conn = self.writer_engine.connect()
        return self._write_conn.connection.dbapi_connection

    def _incremental_vacuum(self, pages: int) -> int | None:
        raw = self._raw_writer()
        if raw.execute("PRAGMA auto_vacuum").fetchone()[0] != 2:  # 2: INCREMENTAL
            return None
        # executescript steps the pragma to its end (execute() frees a single page),
        # in one short transaction of its own on the writer thread.
        raw.executescript(f"PRAGMA incremental_vacuum({int(pages)});")
        free: int = raw.execute("PRAGMA freelist_count").fetchone()[0]
        return free

    async def vacuum_incremental(self) -> None:
        """Rewrite the file once with incremental auto-vacuum (``VACUUM``: the whole
        file, under an exclusive lock; for a file made before retention existed)."""

        def _vacuum() -> None:
            self._raw_writer().executescript("PRAGMA auto_vacuum=INCREMENTAL; VACUUM;")

        await asyncio.get_running_loop().run_in_executor(self._writer, _vacuum)

    def run_write_sync(self, fn: Work[T]) -> T:
        """Run a write from synchronous code (CLI set-up); not on the event loop."""
        return self._writer.submit(self._run_write, fn).result()

    async def close(self) -> None:
        def _close() -> None:
            if self._write_conn is not None:
                self._write_conn.close()
                self._write_conn = None

        await asyncio.get_running_loop().run_in_executor(self._writer, _close)
        self._writer.shutdown(wait=True)
        self._checkpointer.shutdown(wait=True)
        if self._path:
            self._checkpoint()  # leave a small WAL behind
        self._readers.shutdown(wait=True)
        self.writer_engine.dispose()
        self.reader_engine.dispose()


class PostgresDatabase(Database):
    """PostgreSQL through asyncpg; repository functions run via ``run_sync``."""

    dialect = "postgresql"

    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        self.url = url
        self.engine: AsyncEngine = create_async_engine(
            async_url(url),
            json_serializer=_json_serializer,
            json_deserializer=jsonutil.loads,
            pool_size=pool_size,
            max_overflow=0,
            # No ping per checkout: it cost three round trips (BEGIN; ROLLBACK) per
            # transaction, a third of a step's time. A connection found dead instead
            # invalidates the pool (SQLAlchemy's disconnect handling, and the fast
            # path's own below); a read is retried once, a write fails to its caller,
            # whose work the engine recovers.
            pool_pre_ping=False,
            # Most recently used first: at low concurrency the same few connections
            # serve, warm, with their statements prepared and planned (each new
            # connection plans the batch statements anew, milliseconds each).
            pool_use_lifo=True,
            connect_args={"server_settings": {"application_name": f"flowmill-{os.getpid()}"}},
        )

    async def write(self, fn: Work[T]) -> T:
        async with self.engine.begin() as conn:
            return await conn.run_sync(fn)

    async def read(self, fn: Work[T]) -> T:
        return await self._read(fn, in_transaction=True)

    async def read_statements(self, fn: Work[T]) -> T:
        return await self._read(fn, in_transaction=False)

    async def _read(self, fn: Work[T], *, in_transaction: bool) -> T:
        try:
            return await self._read_once(fn, in_transaction)
        except sa.exc.DBAPIError as e:
            if not e.connection_invalidated:
                raise
            # On a fresh connection: the server restarted under the pooled one.
            return await self._read_once(fn, in_transaction)

    async def _read_once(self, fn: Work[T], in_transaction: bool) -> T:
        async with self.engine.connect() as conn:
            if not in_transaction:  # no BEGIN/ROLLBACK round trips
                conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            result = await conn.run_sync(fn)
            if in_transaction:
                await conn.rollback()
            return result

    async def close(self) -> None:
        await self.engine.dispose()

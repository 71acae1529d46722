"""``database_query``: one parameterised SQL statement against a tenant's database.

The connection URL (``postgresql://``, ``mysql://`` / ``mariadb://``, ``sqlite:///``)
is held in a ``database`` credential. The statement is written with named parameters
(``WHERE id = :id``) and ``params`` gives their values (templates): values are bound
by the driver, never pasted into the SQL, so the SQL itself is not a template.

Output: ``{"rows": [...], "row_count", "truncated"}`` for a query, ``{"rows": [],
"row_count": <rows changed>}`` otherwise. The statement runs in a transaction
committed at the end. A write may run twice after a crash between its commit and the
step's checkpoint: make writes idempotent (``ON CONFLICT DO NOTHING``, a key column).

Safety: the host is vetted by the SSRF policy and the connection goes to the vetted
address; URL options are limited to :data:`ALLOWED_OPTIONS` (``host=`` in a query
string would otherwise move the connection); SQLite files must lie in a directory of
``FLOWMILL_CONNECTOR_SQLITE_DIRS`` (none by default), so a tenant cannot open the
server's own files.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import decimal
import uuid
from pathlib import Path
from typing import Any, ClassVar

import sqlalchemy as sa
from pydantic import Field
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from flowmill.domain.errors import CredentialFailure, NodeError, NodeFailure, Timeout
from flowmill.engine.templates import stringify
from flowmill.nodes.base import NodeConfig, NodeContext, NodeType
from flowmill.nodes.connectors._service import config_error, open_credential, required
from flowmill.nodes.fields import credential_field


class DatabaseUnavailable(NodeFailure):
    """The database could not be reached or refused for now (another attempt may work)."""

    retriable_by_default = True


class QueryError(NodeFailure):
    """The database rejected the statement."""


class DriverMissing(NodeFailure):
    """No driver is installed for the database's URL."""


DRIVERS = {
    "postgresql": "postgresql+asyncpg",
    "mysql": "mysql+aiomysql",
    "mariadb": "mysql+aiomysql",
}
PORTS = {"postgresql": 5432, "mysql": 3306, "mariadb": 3306}
ALLOWED_OPTIONS = frozenset({"ssl", "sslmode", "charset", "application_name", "connect_timeout"})


class DatabaseQueryConfig(NodeConfig):
    """Config of ``database_query``. ``sql`` is not a template; ``params`` are."""

    credential: str = credential_field("database", min_length=1)
    sql: str = Field(min_length=1, max_length=100_000)
    params: dict[str, Any] = Field(default_factory=dict)
    max_rows: int | None = Field(None, ge=1, le=100_000)
    timeout_s: float = Field(30.0, gt=0, le=600)


def jsonable(value: Any) -> Any:
    """A column value as JSON: times as ISO 8601, decimals as text (exact), bytes as
    base64, UUIDs as text."""
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    return value


def _invalid_url(message: str) -> NodeError:
    return CredentialFailure(message)


async def connection_url(ctx: NodeContext, raw: str) -> URL:
    """The credential's URL for the async driver, pinned to the vetted address.

    Raises:
        NodeError: Unsupported database, disallowed option or file, refused host.
    """
    try:
        url = make_url(raw)
    except (ArgumentError, ValueError):
        raise _invalid_url("the credential's URL is not a database URL") from None
    backend = url.get_backend_name()
    bad = sorted(set(url.query) - ALLOWED_OPTIONS)
    if bad:
        raise _invalid_url(f"URL options not allowed: {', '.join(bad)}")
    if backend == "sqlite":
        return _sqlite_url(ctx, url)
    if backend not in DRIVERS:
        raise _invalid_url(f"unsupported database {backend!r}: postgresql, mysql, mariadb, sqlite")
    if not url.host:
        raise _invalid_url("the URL names no host (local sockets are not allowed)")
    guard = ctx.services.network
    if guard is None:
        raise NodeError("outbound connections are not available here", retriable=False)
    port = url.port or PORTS[backend]
    target = await guard.vet_host(url.host, port)
    return url.set(drivername=DRIVERS[backend], host=str(target.addresses[0]), port=port)


def _sqlite_url(ctx: NodeContext, url: URL) -> URL:
    allowed = [Path(d).resolve() for d in ctx.services.connectors.sqlite_dirs]
    if not allowed:
        raise _invalid_url("SQLite is not enabled here (FLOWMILL_CONNECTOR_SQLITE_DIRS)")
    if not url.database or url.database == ":memory:":
        raise _invalid_url("give the SQLite file's path")
    path = Path(url.database).resolve()
    if not any(path.is_relative_to(d) for d in allowed):
        raise _invalid_url("the SQLite file is outside the allowed directories")
    return url.set(drivername="sqlite+aiosqlite", database=str(path))


#: SQLSTATE classes and codes another attempt may get past: connection (08), resources
#: (53), operator intervention (57), serialization failure and deadlock.
_PG_TRANSIENT = ("08", "53", "57", "40001", "40P01")
#: MySQL / MariaDB: no connection, gone away, lost, too many connections, lock wait,
#: deadlock.
_MYSQL_TRANSIENT = frozenset({2002, 2003, 2006, 2013, 1040, 1205, 1213})
_SQLITE_TRANSIENT = ("database is locked", "unable to open", "disk i/o error")


def transient(e: SQLAlchemyError) -> bool:
    """Whether another attempt may succeed: the connection failed or the server asked to
    try again (a syntax error or a missing column is not transient; the drivers report
    both as ``OperationalError``, so the code decides)."""
    if isinstance(e, DBAPIError) and e.connection_invalidated:
        return True
    cause = getattr(e, "orig", None)
    if isinstance(e, sa.exc.InterfaceError):
        return True
    state = getattr(cause, "sqlstate", None) or getattr(cause, "pgcode", None)
    if isinstance(state, str):
        return state.startswith(_PG_TRANSIENT)
    args = getattr(cause, "args", ())
    if args and isinstance(args[0], int):
        return args[0] in _MYSQL_TRANSIENT
    text = str(cause).lower()
    if any(t in text for t in _SQLITE_TRANSIENT):
        return True
    # an asyncpg connection failure surfaces without a SQLSTATE
    return cause is not None and "connection" in type(cause).__name__.lower()


def _translate(e: SQLAlchemyError) -> NodeError:
    cause = getattr(e, "orig", None) or e
    text = (str(cause).strip().splitlines() or [type(cause).__name__])[0][:300]
    name = type(cause).__name__
    if transient(e):
        return DatabaseUnavailable(f"database unavailable ({name}): {text}")
    return QueryError(f"the statement failed ({name}): {text}")


class DatabaseQueryNode(NodeType[DatabaseQueryConfig]):
    """Runs one statement; outputs its rows."""

    type_name = "database_query"
    Config = DatabaseQueryConfig
    code_fields: ClassVar[tuple[str, ...]] = ("sql",)
    description: ClassVar[str] = "Run a parameterised SQL statement (PostgreSQL, MySQL, SQLite)."

    async def execute(self, ctx: NodeContext, config: DatabaseQueryConfig) -> Any:
        r = await ctx.render({"credential": config.credential, "params": config.params})
        required(r, "credential")
        if not isinstance(r["params"], dict):
            raise config_error("params must be an object of named values")
        cred = await open_credential(ctx, stringify(r["credential"]))
        if cred.kind != "database":
            raise _invalid_url(f"credential {cred.ref!r} is {cred.kind!r}, not a database URL")
        url = await connection_url(ctx, str(cred.data["url"]))
        limit = min(
            config.max_rows or ctx.services.connectors.max_rows, ctx.services.connectors.max_rows
        )
        connect_args: dict[str, Any] = {}
        tls = ctx.services.connectors.ssl_context
        if tls is not None and url.get_backend_name() == "postgresql" and "ssl" in url.query:
            connect_args["ssl"] = tls
        try:
            engine = create_async_engine(url, poolclass=NullPool, connect_args=connect_args)
        except ImportError:
            raise DriverMissing(
                f"no driver for {url.get_backend_name()}: pip install 'flowmill[connectors]'"
            ) from None
        try:
            async with asyncio.timeout(config.timeout_s), engine.begin() as conn:
                result = await conn.execute(sa.text(config.sql), r["params"])
                if result.returns_rows:
                    fetched = result.fetchmany(limit + 1)
                    rows = [
                        {str(k): jsonable(v) for k, v in row._mapping.items()}
                        for row in fetched[:limit]
                    ]
                    out = {"rows": rows, "row_count": len(rows), "truncated": len(fetched) > limit}
                else:
                    out = {"rows": [], "row_count": max(result.rowcount, 0), "truncated": False}
        except TimeoutError:
            raise Timeout(f"the statement did not finish within {config.timeout_s:g} s") from None
        except SQLAlchemyError as e:
            raise _translate(e) from None
        except (OSError, ConnectionError) as e:
            raise DatabaseUnavailable(f"database unreachable: {e}") from None
        finally:
            await engine.dispose()
        ctx.log.info(f"{url.get_backend_name()} statement: {out['row_count']} row(s)")
        return out

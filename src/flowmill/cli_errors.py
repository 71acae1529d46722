"""What the CLI says when it cannot start: one line of what is wrong, one of what to do.

A database that is missing or unreachable, a Redis that does not answer, a port that is
taken, an extra that is not installed: these are the user's setup, not a bug, so they
get a sentence and exit status 3 instead of a traceback (docs/cli.md lists the codes).
"""

from __future__ import annotations

import socket
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

EXIT_SETUP = 3  # the environment is not ready: database, Redis, port


@dataclass(frozen=True)
class Explained:
    """A start-up failure in words."""

    message: str
    hint: str
    code: int = EXIT_SETUP


def explain(error: BaseException, database_url: str, redis_url: str | None) -> Explained | None:
    """Put ``error`` (or the cause it wraps) in words, or ``None`` if it is not a known
    start-up failure (then it is a bug and keeps its traceback)."""
    from flowmill.api.server import PortBusy
    from flowmill.extras import MissingExtra

    for e in _chain(error):
        if isinstance(e, MissingExtra):
            return Explained(str(e), "then run the command again", 2)
        if isinstance(e, PortBusy):
            return Explained(str(e), "FLOWMILL_PORT or --port sets the port")
    for e in _chain(error):
        found = _database(e, database_url) or _redis(e, redis_url)
        if found is not None:
            return found
    return None


def _chain(error: BaseException) -> Iterator[BaseException]:
    """``error``, its causes and contexts, and the members of exception groups."""
    seen: set[int] = set()
    todo = [error]
    while todo:
        e = todo.pop(0)
        if id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        if isinstance(e, BaseExceptionGroup):
            todo.extend(e.exceptions)
        for nxt in (e.__cause__, e.__context__, getattr(e, "orig", None)):
            if isinstance(nxt, BaseException):
                todo.append(nxt)


def _where(url: str, default_port: int) -> tuple[str, str]:
    parts = urlsplit(url)
    return f"{parts.hostname or 'localhost'}:{parts.port or default_port}", parts.path.lstrip("/")


def _database(e: BaseException, url: str) -> Explained | None:
    if url.startswith("sqlite"):
        if isinstance(e, sqlite3.OperationalError) and "unable to open" in str(e):
            path = url.split(":///", 1)[-1]
            return Explained(
                f"cannot open the SQLite database {path}",
                "check that its folder exists and is writable (FLOWMILL_HOME or "
                "FLOWMILL_DATABASE_URL choose where it is)",
            )
        return None
    where, name = _where(url, 5432)
    text = str(e)
    if type(e).__name__ == "InvalidCatalogNameError" or (
        "does not exist" in text and f'database "{name}"' in text
    ):
        host, _, port = where.rpartition(":")
        return Explained(
            f"PostgreSQL at {where} has no database {name!r}",
            f"create it (createdb -h {host} -p {port} {name}) or point FLOWMILL_DATABASE_URL "
            "at one that exists",
        )
    kind = type(e).__name__
    if kind in ("InvalidPasswordError", "InvalidAuthorizationSpecificationError") or (
        "password authentication failed" in text
    ):
        return Explained(
            f"PostgreSQL at {where} refused the user of FLOWMILL_DATABASE_URL ({text})",
            "check user and password in FLOWMILL_DATABASE_URL "
            "(postgresql://USER:PASSWORD@HOST:PORT/DB)",
        )
    if kind == "CannotConnectNowError":
        return Explained(
            f"PostgreSQL at {where} does not take connections now ({text})",
            "it is starting up or shutting down: try again in a moment",
        )
    if isinstance(e, socket.gaierror):
        return Explained(
            f"cannot find the PostgreSQL host of FLOWMILL_DATABASE_URL ({where})",
            "check the host name in FLOWMILL_DATABASE_URL",
        )
    if isinstance(e, ConnectionRefusedError | TimeoutError) or (
        isinstance(e, OSError) and "Connect call failed" in text
    ):
        return Explained(
            f"cannot reach PostgreSQL at {where} ({_reason(e)})",
            "start PostgreSQL, or fix host and port in FLOWMILL_DATABASE_URL (unset it to "
            "use the embedded SQLite database)",
        )
    return None


def _redis(e: BaseException, url: str | None) -> Explained | None:
    if not url:
        return None
    module = type(e).__module__
    if module.startswith("redis") and type(e).__name__ in ("ConnectionError", "TimeoutError"):
        where, _ = _where(url, 6379)
        return Explained(
            f"cannot reach Redis at {where} ({e})",
            "start Redis, or fix FLOWMILL_REDIS_URL (unset it to use the in-process queue)",
        )
    return None


def _reason(e: BaseException) -> str:
    if isinstance(e, ConnectionRefusedError) or "111" in str(e):
        return "connection refused"
    if isinstance(e, TimeoutError):
        return "timed out"
    return str(e) or type(e).__name__

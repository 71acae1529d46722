"""``/health`` (the process is up) and ``/ready`` (it can serve: database, Redis, schema)."""

from __future__ import annotations

import asyncio
from urllib.parse import unquote, urlparse

import sqlalchemy as sa
from fastapi import APIRouter
from fastapi.responses import JSONResponse

from flowmill.api.deps import Ctx
from flowmill.api.schemas import Check, Health, Ready
from flowmill.store import migrate

router = APIRouter(tags=["health"])
_TIMEOUT_S = 2.0


@router.get("/health", response_model=Health, summary="Liveness")
async def health() -> Health:
    """Answers while the process runs; checks nothing else."""
    return Health(status="ok")


async def _database(ctx: Ctx) -> Check:
    try:
        await asyncio.wait_for(
            ctx.runtime.db.read(lambda c: c.execute(sa.text("SELECT 1")).scalar()), _TIMEOUT_S
        )
    except Exception as e:  # any failure means not ready; say which
        return Check(ok=False, detail=f"{type(e).__name__}: {e}"[:300])
    return Check(ok=True)


async def _migrations(ctx: Ctx) -> Check:
    try:
        current = await asyncio.wait_for(migrate.is_current(ctx.runtime.db), _TIMEOUT_S)
    except Exception as e:
        return Check(ok=False, detail=f"{type(e).__name__}: {e}"[:300])
    if not current:
        return Check(ok=False, detail="schema is behind; run `flowmill db upgrade`")
    return Check(ok=True, detail=str(migrate.head_revision()))


async def redis_ping(url: str, timeout: float = _TIMEOUT_S) -> None:  # noqa: ASYNC109 - one deadline for connect, auth and ping
    """PING a Redis server (authenticating as the URL says).

    Raises:
        OSError: Unreachable, or it did not answer PONG.
    """
    parts = urlparse(url)
    ssl = parts.scheme == "rediss"

    async def _go() -> None:
        reader, writer = await asyncio.open_connection(
            parts.hostname or "127.0.0.1", parts.port or 6379, ssl=ssl or None
        )
        try:
            if parts.password:
                user = unquote(parts.username) if parts.username else None
                args = [
                    b"AUTH",
                    *([user.encode()] if user else []),
                    unquote(parts.password).encode(),
                ]
                writer.write(
                    b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)
                )
                if not (await reader.readline()).startswith(b"+OK"):
                    raise OSError("Redis refused the credentials")
            writer.write(b"*1\r\n$4\r\nPING\r\n")
            await writer.drain()
            if not (await reader.readline()).startswith(b"+PONG"):
                raise OSError("Redis did not answer PONG")
        finally:
            writer.close()

    await asyncio.wait_for(_go(), timeout)


async def _redis(url: str) -> Check:
    try:
        await redis_ping(url)
    except (OSError, TimeoutError) as e:
        return Check(ok=False, detail=f"{type(e).__name__}: {e}"[:300])
    return Check(ok=True)


@router.get(
    "/ready",
    response_model=Ready,
    responses={503: {"model": Ready, "description": "Not ready; see the failing checks."}},
    summary="Readiness",
)
async def ready(ctx: Ctx) -> JSONResponse:
    """200 when the database answers and its schema is current (and Redis answers, when
    configured); 503 otherwise, with each check's result."""
    checks = {"database": await _database(ctx)}
    checks["migrations"] = (
        await _migrations(ctx) if checks["database"].ok else Check(ok=False, detail="no database")
    )
    if ctx.settings.redis_url:
        checks["redis"] = await _redis(ctx.settings.redis_url)
    ok = all(c.ok for c in checks.values())
    body = Ready(status="ready" if ok else "not_ready", checks=checks)
    return JSONResponse(body.model_dump(mode="json"), status_code=200 if ok else 503)

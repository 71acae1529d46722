"""``GET /api/queues``: queue depth per state, workers alive, the tenant's own work.

What ``flowmill queues`` prints, over the API, so the web app's operations page (and
anyone with an API key) can see it. The queue and the workers are shared by every
tenant of the deployment: their figures are totals, and carry no tenant's ids or data.
The caller's own work in flight is counted from its live node runs in the database.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Literal, Protocol, runtime_checkable

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from flowmill.api.deps import Caller, Ctx
from flowmill.api.errors import ERROR_RESPONSES
from flowmill.store.operations import live_steps

router = APIRouter(tags=["operations"], responses=ERROR_RESPONSES)
_TIMEOUT_S = 2.0


@runtime_checkable
class _Counted(Protocol):
    async def counts(self) -> dict[str, dict[str, int]]: ...


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class QueueOut(_Out):
    """One queue and its jobs per state."""

    name: str = Field(description="`flowmill-trigger`, `flowmill-node`, or `in-process`.")
    counts: dict[str, int] = Field(
        description="Jobs per state: wait, prioritized, delayed, active, completed, failed, "
        "paused (BullMQ); wait, delayed, active (in-process)."
    )


class WorkerOut(_Out):
    """A registered worker process."""

    id: str
    kind: str
    hostname: str
    pid: int
    started_at: datetime
    heartbeat_at: datetime
    alive: bool = Field(description="Heard from within the dead-worker timeout.")


class QueuesOut(_Out):
    """The deployment's queues and workers, and the caller's work in flight."""

    backend: Literal["bullmq", "in_process"]
    queues: list[QueueOut] = Field(description="Shared by every tenant: totals.")
    queues_error: str | None = Field(
        None, description="Why the queue could not be read (Redis down...), if so."
    )
    workers: list[WorkerOut]
    steps: dict[str, int] = Field(
        description="The caller's live node runs per status (pending, queued, running, "
        "waiting), from the database."
    )


@router.get("/api/queues", response_model=QueuesOut, summary="Queues and workers")
async def get_queues(ctx: Ctx, caller: Caller) -> QueuesOut:
    """Jobs per queue and state, the workers and whether each is alive, and the
    caller's own steps in flight (what `flowmill queues` shows, and more)."""
    rt = ctx.runtime
    queues: list[QueueOut] = []
    error = None
    if isinstance(rt.queue, _Counted):  # only BullMQ counts, so redis is installed
        from redis.exceptions import RedisError

        try:
            counts = await asyncio.wait_for(rt.queue.counts(), _TIMEOUT_S)
        except (RedisError, OSError, TimeoutError) as e:  # Redis unreachable: say so
            error = f"{type(e).__name__}: {e}"[:300]
        else:
            queues = [QueueOut(name=k, counts=v) for k, v in counts.items()]
    now = rt.engine.clock.now()
    dead_after = timedelta(seconds=rt.engine.options.dead_after_s)
    workers = [
        WorkerOut(
            id=w.id,
            kind=w.kind,
            hostname=w.hostname,
            pid=w.pid,
            started_at=w.started_at,
            heartbeat_at=w.heartbeat_at,
            alive=w.heartbeat_at >= now - dead_after,
        )
        for w in await rt.engine.workers.list_workers()
    ]
    return QueuesOut(
        backend="in_process" if rt.queue.in_process else "bullmq",
        queues=queues,
        queues_error=error,
        workers=workers,
        steps=await live_steps(rt.db, caller.tenant_id),
    )

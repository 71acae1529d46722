"""Every use the BullMQ adapter makes of library internals, for one bullmq version.

bullmq's public API (``Queue.add``, a ``Worker`` with a processor) costs a round trip
per job added, fetched and completed. The adapter adds, fetches and completes many
jobs per round trip instead, through BullMQ's own Lua scripts (the contract shared with
Node.js producers), and that needs a few things bullmq does not promise to keep: its
``Scripts`` helper, the worker's fetch and completion methods, some worker attributes.
redis-py's pipelines are touched once too (``Pipeline.scripts``).

This module is the only place that touches them:

- importing it checks the installed bullmq (:data:`BULLMQ_VERSION`): any other version
  is refused at import with what to do, not at the first job;
- :data:`INTERNALS` names each internal used, with the parameters it is called with;
  ``tests/unit/test_bullmq_internals.py`` checks each against the installed packages,
  so an upgrade fails there, naming the internal that moved;
- the rest of the adapter (``bullmq.py``, ``bullmq_consumer.py``) uses bullmq's public
  API and the names below.

Why not a consumer of Flowmill's own around the Lua scripts: the scripts ship inside
the bullmq package, and their argument formats (msgpack-packed options, key lists)
change with it, so such a consumer would be bound to one bullmq version as tightly as
this one is, and would re-implement lock renewal and stalled-job checks besides.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import msgpack
import redis.asyncio as aioredis
import structlog
from bullmq import Job as BullJob
from bullmq import Worker
from bullmq.scripts import raw2NextJobData
from redis.exceptions import NoScriptError

from flowmill.coalesce import Coalescer
from flowmill.domain.errors import FlowmillError
from flowmill.queue.bullmq_redis import describe

BULLMQ_VERSION = "3.4.4"

log = structlog.get_logger("flowmill.queue")


class UnsupportedBullMQ(FlowmillError, ImportError):
    """The installed bullmq is not the version the adapter's internals are written for."""


def check_version(installed: str) -> None:
    """Refuse a bullmq other than :data:`BULLMQ_VERSION` (run at import).

    Raises:
        UnsupportedBullMQ: ``installed`` is another version.
    """
    if installed != BULLMQ_VERSION:
        raise UnsupportedBullMQ(
            f"Flowmill's BullMQ adapter is written against bullmq {BULLMQ_VERSION} and "
            f"bullmq {installed} is installed; run `pip install bullmq=={BULLMQ_VERSION}` "
            "(docs/queues.md says why the version is exact)"
        )


check_version(importlib.metadata.version("bullmq"))


@dataclass(frozen=True)
class Internal:
    """One internal the adapter uses.

    Attributes:
        owner: ``module:Class`` (or ``module`` for a function).
        name: The attribute. An instance attribute (set in ``__init__``) has no
            parameters: the test checks it on a worker made without connecting.
        params: The parameters it is called with (checked against its signature),
            or None for an attribute that is read or written, not called.
    """

    owner: str
    name: str
    params: tuple[str, ...] | None = None


INTERNALS: tuple[Internal, ...] = (
    # the producer: many adds in one MULTI (BullMQQueue._send)
    Internal("bullmq.scripts:Scripts", "addJob", ("job", "pipe")),
    Internal("bullmq.queue:Queue", "scripts"),
    Internal("bullmq.queue:Queue", "keys"),
    # redis-py: no SCRIPT EXISTS round trip before a pipeline holding scripts
    Internal("redis.asyncio.client:Pipeline", "scripts"),
    # the worker: fetches in turn while drained, in batches while not
    Internal("bullmq.worker:Worker", "getNextJob", ("token",)),
    Internal("bullmq.worker:Worker", "moveToActive", ("token",)),
    Internal(
        "bullmq.worker:Worker",
        "nextJobFromJobData",
        ("job_data", "job_id", "limit_until", "delay_until", "token"),
    ),
    Internal("bullmq.worker:Worker", "isConnectionError", ("error",)),
    Internal("bullmq.worker:Worker", "cancelProcessing", ()),
    Internal("bullmq.worker:Worker", "drained"),
    Internal("bullmq.worker:Worker", "closing"),
    Internal("bullmq.worker:Worker", "paused"),
    Internal("bullmq.worker:Worker", "forceClosing"),
    Internal("bullmq.worker:Worker", "opts"),
    Internal("bullmq.worker:Worker", "backend"),
    Internal("bullmq.worker:Worker", "blockingRedisConnection"),
    Internal("bullmq.redis_connection:RedisConnection", "getRedisVersion", ()),
    # completions in batches: the backend's method replaced on the instance
    Internal(
        "bullmq.backends.redis_backend:RedisBackend",
        "moveToCompleted",
        ("job", "return_value", "remove_on_complete", "token", "fetch_next"),
    ),
    Internal("bullmq.backends.redis_backend:RedisBackend", "conn"),
    Internal("bullmq.backends.redis_backend:RedisBackend", "scripts"),
    Internal(
        "bullmq.scripts:Scripts",
        "moveToCompletedArgs",
        ("job", "return_value", "shouldRemove", "token", "fetchNext"),
    ),
    Internal("bullmq.scripts:Scripts", "getKeys", ("keys",)),
    Internal("bullmq.scripts:Scripts", "finishedErrors", ("opts",)),
    Internal("bullmq.scripts:Scripts", "commands"),
    Internal("bullmq.scripts:Scripts", "keys"),
    Internal("bullmq.scripts", "raw2NextJobData", ("raw",)),
)

# moveToActive's KEYS, in the order of BullMQ's moveToActive-11.lua
MOVE_TO_ACTIVE_KEYS = [
    "wait", "active", "prioritized", "events", "stalled", "limiter", "delayed", "paused",
    "meta", "pc", "marker",
]  # fmt: skip
_MAX_FETCH = 32  # most moveToActive calls in one round trip
_Finish = tuple[str, list[Any], list[Any]]  # job id, moveToFinished's keys and args


async def add_job(pipe: Any, queue: Any, name: str, data: Any, opts: dict[str, Any]) -> None:
    """Queue BullMQ's add script for one job on ``pipe`` (sent with the pipeline)."""
    await queue.scripts.addJob(BullJob(queue, name, data, opts), pipe)


def queue_keys(queue: Any) -> dict[str, str]:
    """The queue's Redis keys by name (``""`` is the job key prefix, ``"completed"``...)."""
    keys: dict[str, str] = queue.keys
    return keys


def skip_script_check(pipe: Any) -> None:
    """Keep redis-py from asking ``SCRIPT EXISTS`` before ``pipe`` runs: a round trip
    per pipeline. Callers redo the calls that get ``NOSCRIPT`` (after a Redis restart)
    with the check left on."""
    pipe.scripts.clear()


ScriptCall = tuple[Any, list[Any], list[Any]]  # (registered script, keys, args)


async def run_scripts(
    client: aioredis.Redis,
    calls: Sequence[ScriptCall],
    after: Sequence[tuple[Any, ...]] = (),
) -> list[Any]:
    """Run Lua scripts in one round trip (a pipeline, not a transaction); each reply,
    or the exception it raised, in order; then the replies of the plain commands
    ``after`` (run behind the scripts, in the same round trip).

    redis-py asks ``SCRIPT EXISTS`` before every pipeline holding scripts, a second
    round trip; the scripts are loaded already (by this process or another) except
    after a Redis restart, when the calls that got ``NOSCRIPT`` are run once more with
    their scripts loaded.
    """
    replies = await _pipeline(client, calls, after, load=False)
    tail = replies[len(calls) :]
    replies = replies[: len(calls)]
    missing = [i for i, r in enumerate(replies) if isinstance(r, NoScriptError)]
    if missing:
        again = await _pipeline(client, [calls[i] for i in missing], (), load=True)
        for i, reply in zip(missing, again, strict=True):
            replies[i] = reply
    return replies + tail


async def _pipeline(
    client: aioredis.Redis,
    calls: Sequence[ScriptCall],
    after: Sequence[tuple[Any, ...]],
    *,
    load: bool,
) -> list[Any]:
    async with client.pipeline(transaction=False) as pipe:
        for script, keys, args in calls:
            await script(keys=keys, args=args, client=pipe)
        for command in after:
            pipe.execute_command(*command)
        if not load:
            skip_script_check(pipe)
        return list(await pipe.execute(raise_on_error=False))


class BatchingWorker(Worker):  # type: ignore[misc]  # bullmq is untyped
    """bullmq's ``Worker``, fetching and completing jobs in batches.

    The Python port starts one fetch per free slot at once; when a job arrives on an
    empty queue, one fetch takes it and every other one runs BullMQ's moveToActive
    script for nothing. At concurrency 16 that doubled the time of a chain of jobs
    (bench/bullmq_floor.py). So while the queue is drained, fetches take turns waiting
    for its marker (as Node's worker does). While it has jobs, the fetches of free
    slots go to Redis together, in one round trip, as many as the queue had jobs left
    after the last fetch (counted in the same round trip); and the completions of jobs
    that finish together go in one round trip too: per job the same BullMQ scripts,
    one socket write for many.

    Attributes:
        late: Called with a job a fetch brought back after the worker was paused; it
            must hand the job back (the worker will not process it).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._fetching = asyncio.Lock()
        self._unreachable = False
        self.late: Callable[[Any, str], Awaitable[None]] | None = None
        self._actives: Coalescer[str, Any] = Coalescer(self._move_to_active_batch, max_batch=1)
        self._left: int | None = None  # jobs waiting after the last fetch, if known
        self._completions: Coalescer[_Finish, Any] = Coalescer(self._finish_batch)
        self.backend.moveToCompleted = self._move_to_completed

    async def learn_redis_version(self) -> None:
        """Ask the server's version (raises when Redis is unreachable).

        The port only learns it (so that it may block for fractions of a second) when
        asked; unasked, it rounds every blocking wait up to whole seconds and delayed
        jobs run up to a second late.
        """
        await self.blockingRedisConnection.getRedisVersion()

    def force_close(self) -> None:
        """Cancel the worker's own tasks (a close hanging on an unreachable Redis)."""
        self.forceClosing = True
        self.cancelProcessing()

    async def settle(self) -> None:
        """Wait for a fetch under way to end (after :meth:`pause`, none starts)."""
        async with self._fetching:
            pass

    async def getNextJob(self, token: str) -> Any:
        if self.drained:
            async with self._fetching:
                if self.drained:  # still: wait for the queue's marker, one at a time
                    return await self._next_job(token)
        return await self._next_job(token)

    async def _next_job(self, token: str) -> Any:
        if self.closing or self.paused:
            return None
        try:
            job = await super().getNextJob(token)
        except Exception as e:
            # bullmq retries connection errors without a word: say it once.
            if self.isConnectionError(e) and not self._unreachable:
                self._unreachable = True
                log.warning("redis unreachable; retrying", queue=self.name, error=describe(e))
            raise
        if self._unreachable:
            self._unreachable = False
            log.info("redis reachable again", queue=self.name)
        if job is not None and (self.closing or self.paused) and self.late is not None:
            await self.late(job, token)
            return None
        return job

    async def moveToActive(self, token: str) -> Any:
        job_data, job_id, limit_until, delay_until = await self._actives.submit(token)
        job = await self.nextJobFromJobData(job_data, job_id, limit_until, delay_until, token)
        if job is not None and self._left == 0:
            # That was the last job: the next fetch waits for the queue's marker
            # instead of asking an empty queue first.
            self.drained = True
        return job

    async def _move_to_active_batch(self, tokens: list[str]) -> list[Any]:
        # BullMQ's Scripts.moveToActive, for many tokens at once.
        scripts = self.backend.scripts
        keys = scripts.getKeys(MOVE_TO_ACTIVE_KEYS)
        now = round(time.time() * 1000)
        calls: list[ScriptCall] = []
        for token in tokens:
            packed = msgpack.packb(
                {
                    "token": token,
                    "lockDuration": self.opts.get("lockDuration", 0),
                    "limiter": self.opts.get("limiter"),
                },
                use_bin_type=True,
            )
            calls.append((scripts.commands["moveToActive"], keys, [scripts.keys[""], now, packed]))
        # Behind the fetches, in the same round trip: how many jobs are left.
        left = [("LLEN", scripts.keys["wait"]), ("ZCARD", scripts.keys["prioritized"])]
        replies = await run_scripts(self.backend.conn, calls, left)
        counts = [r for r in replies[len(calls) :] if isinstance(r, int)]
        self._left = sum(counts) if len(counts) == len(left) else None
        # The next fetch asks for as many jobs as are left, so that free slots do not
        # run BullMQ's script on an empty queue (it was two empty fetches per job).
        self._actives.max_batch = min(max(self._left or 1, 1), _MAX_FETCH)
        return [
            r if isinstance(r, Exception) else raw2NextJobData(r) for r in replies[: len(calls)]
        ]

    async def _move_to_completed(
        self,
        job: Any,
        return_value: Any,
        remove_on_complete: Any,
        token: str,
        fetch_next: bool = True,
    ) -> dict[str, Any]:
        # RedisBackend.moveToCompleted (never fetching the next job), through a batch;
        # the same parameters, which bullmq passes by position and by name.
        keys, args = self.backend.scripts.moveToCompletedArgs(
            job, return_value, remove_on_complete, token, False
        )
        result = await self._completions.submit((job.id, keys, args))
        return {"result": result, "finishedOn": args[1]}

    async def _finish_batch(self, items: list[_Finish]) -> list[Any]:
        scripts = self.backend.scripts
        script = scripts.commands["moveToFinished"]
        replies = await run_scripts(self.backend.conn, [(script, k, a) for _, k, a in items])
        out: list[Any] = []
        for (job_id, _, _), reply in zip(items, replies, strict=True):
            if isinstance(reply, int) and reply < 0:
                state = {"code": reply, "jobId": job_id, "command": "moveToFinished"}
                reply = scripts.finishedErrors({**state, "state": "active"})
            elif reply is not None and not isinstance(reply, Exception):
                reply = raw2NextJobData(reply)
            out.append(reply)
        return out

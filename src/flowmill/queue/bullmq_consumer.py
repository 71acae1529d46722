"""Consuming the BullMQ queues: one bullmq ``Worker`` per queue, one handler budget.

BullMQ's machinery does the transport work: locks renewed while a handler runs,
stalled jobs of dead workers moved back to wait, blocking waits for new jobs. This
module adds what the engine needs on top: a shared limit on running handlers, data
validation, hand-back of jobs on shutdown, and bounded shutdown when Redis is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, NoReturn

import msgpack
import structlog
from bullmq import DelayedError, UnrecoverableError, Worker
from bullmq.scripts import raw2NextJobData
from redis.exceptions import RedisError

from flowmill.coalesce import Coalescer
from flowmill.engine.ports import Job, JobHandler, StepJob
from flowmill.queue.bullmq_codec import JobDataError, decode_node_job, decode_trigger
from flowmill.queue.bullmq_redis import ScriptCall, make_client, run_scripts

if TYPE_CHECKING:
    from flowmill.queue.bullmq import BullMQOptions

log = structlog.get_logger("flowmill.queue")

Decode = Callable[[Any, int], Job]


class Consumer:
    """Runs a handler on the jobs of both queues until :meth:`stop`.

    Args:
        url: Redis URL.
        options: Adapter settings.
        handler: Called once per job.
        concurrency: Most handlers running at once, over both queues.
        own: Ids of step jobs whose handler runs in this process, mapped to the time
            (epoch ms) their handler asked for them to run again, if it did. Shared
            with the producer side, which fills in the times.
        waited: Told ``(queue, seconds)`` as each job is taken: how long it was ready
            in Redis before a worker took it (the queue-wait metric).
    """

    def __init__(
        self,
        *,
        url: str,
        options: BullMQOptions,
        handler: JobHandler,
        concurrency: int,
        own: dict[str, int | None],
        waited: Callable[[str, float], None] | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self._url = url
        self._options = options
        self._handler = handler
        self._own = own
        self._waited = waited  # told (queue, seconds) when a job is taken
        # Both workers take jobs up to their own concurrency; this caps the handlers
        # that run. A trigger job taken while every slot is busy waits here, locked.
        self._slots = asyncio.Semaphore(concurrency)
        triggers = min(concurrency, options.trigger_concurrency or max(1, concurrency // 4))
        self._specs: list[tuple[str, int, Decode]] = [
            (options.trigger_queue, triggers, decode_trigger),
            (options.node_queue, concurrency, decode_node_job),
        ]
        self._jobs: set[asyncio.Task[Any]] = set()  # bullmq's tasks running our processor
        self._handlers: set[asyncio.Task[None]] = set()
        self._stopping = asyncio.Event()
        self._handing_back = False
        self._workers: list[Any] = []
        self._clients: list[Any] = []
        self._runs: list[asyncio.Future[Any]] = []
        self._stopped: asyncio.Future[None] | None = None

    # --- running ------------------------------------------------------------------------

    async def run(self) -> None:
        """Consume until :meth:`stop`.

        Raises:
            RuntimeError: A bullmq worker loop ended without being asked to.
        """
        try:
            for queue, concurrency, decode in self._specs:
                client = make_client(self._url)
                self._clients.append(client)
                self._workers.append(self._worker(queue, concurrency, decode, client))
            if not await self._connect():
                return
            self._runs = [asyncio.ensure_future(w.run()) for w in self._workers]
            done, _ = await asyncio.wait(self._runs, return_when=asyncio.FIRST_COMPLETED)
            if not self._stopping.is_set():
                ended = next(iter(done))
                cause = None if ended.cancelled() else ended.exception()
                log.error("a bullmq worker loop ended by itself; stopping", error=_describe(cause))
                await self.stop(0)
                raise RuntimeError("bullmq worker loop ended unexpectedly") from cause
            await asyncio.gather(*self._runs, return_exceptions=True)
        finally:
            await self.stop(0)  # at once if stopped already; else (cancelled) now
            for client in self._clients:  # closed by their worker already, unless it never ran
                await client.aclose()

    def _worker(self, queue: str, concurrency: int, decode: Decode, client: Any) -> Any:
        o = self._options

        async def process(job: Any, token: str) -> Any:
            return await self._process(queue, decode, job, token)

        async def late(job: Any, token: str) -> None:
            with contextlib.suppress(DelayedError):
                await self._requeue(job, token, 0)

        worker = _Worker(
            queue,
            process,
            {
                "connection": client,
                "prefix": o.prefix,
                "autorun": False,
                "concurrency": concurrency,
                "lockDuration": o.lock_duration_ms,
                "stalledInterval": o.stalled_interval_ms,
                "maxStalledCount": o.max_stalled_count,
                "drainDelay": o.drain_delay_s,
                "runRetryDelay": o.reconnect_delay_ms,
                # For jobs added by others without retention of their own.
                "removeOnComplete": o.remove_on_complete.to_bullmq(),
                "removeOnFail": o.remove_on_fail.to_bullmq(),
            },
        )
        worker.late = late
        bound = log.bind(queue=queue)
        worker.on("error", lambda err, *_: bound.warning("bullmq error", error=_describe(err)))
        worker.on("stalled", lambda job_id, *_: bound.warning("stalled job back", job_id=job_id))
        worker.on("failed", lambda job, err, *_: _log_failed(queue, job, err))
        return worker

    async def _connect(self) -> bool:
        """Wait until Redis answers (or stop); whether to go on."""
        while not self._stopping.is_set():
            try:
                for worker in self._workers:
                    # The port only learns the server's version (so that it may block
                    # for fractions of a second) when asked; unasked, it rounds every
                    # blocking wait up to whole seconds and delayed jobs run up to a
                    # second late.
                    await worker.blockingRedisConnection.getRedisVersion()
                return True
            except (RedisError, OSError) as e:
                log.warning("redis unreachable; retrying", error=_describe(e))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._stopping.wait(), self._options.reconnect_delay_ms / 1000
                )
        return False

    # --- one job ------------------------------------------------------------------------

    async def _process(self, queue: str, decode: Decode, job: Any, token: str) -> Any:
        me = asyncio.current_task()
        assert me is not None
        self._jobs.add(me)
        try:
            return await self._take(queue, decode, job, token)
        finally:
            self._jobs.discard(me)

    async def _take(self, queue: str, decode: Decode, job: Any, token: str) -> Any:
        if self._stopping.is_set():
            await self._requeue(job, token, 0)  # taken while the worker was closing
        try:
            parsed = decode(job.data, job.priority)
        except JobDataError as e:
            log.error("job refused: invalid data", queue=queue, job_id=job.id, reason=str(e))
            raise UnrecoverableError(f"invalid job data: {e}") from None
        async with self._slots:
            if self._stopping.is_set():
                await self._requeue(job, token, 0)
            return await self._run(queue, job, token, parsed)

    async def _run(self, queue: str, job: Any, token: str, parsed: Job) -> Any:
        if self._waited is not None:
            # ready when added, or when its delay ended (BullMQ's timestamp and delay, ms)
            ready_ms = (getattr(job, "timestamp", 0) or 0) + (getattr(job, "delay", 0) or 0)
            if ready_ms:
                self._waited(queue, time.time() - ready_ms / 1000)
        own_id = parsed.job_id if isinstance(parsed, StepJob) else None
        if own_id is not None:
            self._own[own_id] = None
        task = asyncio.ensure_future(self._handler(parsed))
        self._handlers.add(task)
        error: Exception | None = None
        result: Any = None
        try:
            result = await task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if self._handing_back and current is not None and not current.cancelling():
                await self._requeue(job, token, 0)  # grace is over: let another worker run it
            raise
        except Exception as e:
            log.exception("job handler failed", queue=queue, job_id=job.id)
            error = e
        finally:
            self._handlers.discard(task)
            rerun = self._own.pop(own_id, None) if own_id is not None else None
        if rerun is not None:
            await self._requeue(job, token, rerun)
        if error is not None:
            # Recorded as failed in Redis (attempts=1): the engine retries, from the database.
            raise error
        return result  # kept as the job's returnvalue

    async def _requeue(self, job: Any, token: str, at_ms: int) -> NoReturn:
        """Move an active job back to wait (as delayed until ``at_ms``), then tell the
        worker it is neither completed nor failed."""
        try:
            async with asyncio.timeout(self._options.hand_back_timeout_s):
                await job.moveToDelayed(max(at_ms, int(time.time() * 1000)), token)
        except Exception as e:
            log.warning(
                "could not hand a job back; it returns when its lock expires",
                job_id=job.id,
                error=_describe(e),
            )
        raise DelayedError()

    # --- stopping -----------------------------------------------------------------------

    async def stop(self, grace_s: float) -> None:
        """Stop taking jobs; give running handlers ``grace_s``, then hand their jobs back."""
        self._stopping.set()
        if self._stopped is None:
            self._stopped = asyncio.ensure_future(self._stop(grace_s))
        await asyncio.shield(self._stopped)

    async def _stop(self, grace_s: float) -> None:
        o = self._options
        for worker in self._workers:
            # Not close(): its loop exits at once and stops renewing the locks of jobs
            # still running. Paused, it renews them and takes nothing new.
            await worker.pause(do_not_wait_active=True)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(o.hand_back_timeout_s):
                for worker in self._workers:
                    await worker.settle()
        if self._jobs:
            _, pending = await asyncio.wait(self._jobs, timeout=max(grace_s, 0.0))
            if pending:
                self._handing_back = True
                for task in list(self._handlers):
                    task.cancel()
                await asyncio.wait(pending, timeout=o.hand_back_timeout_s + 1)
        closing = [asyncio.ensure_future(w.close()) for w in self._workers]
        if not closing:
            return
        _, pending = await asyncio.wait(closing, timeout=o.hand_back_timeout_s)
        if pending:
            # Only if a bullmq task hangs on an unreachable Redis: cancel what is left;
            # jobs still locked return to the queue when their locks expire.
            log.warning("bullmq workers did not close in time; cancelling their tasks")
            for worker in self._workers:
                worker.forceClosing = True
                worker.cancelProcessing()
            await asyncio.wait(pending, timeout=o.hand_back_timeout_s)
        if self._runs:
            await asyncio.wait(self._runs, timeout=o.hand_back_timeout_s)


_MOVE_TO_ACTIVE_KEYS = [
    "wait", "active", "prioritized", "events", "stalled", "limiter", "delayed", "paused",
    "meta", "pc", "marker",
]  # fmt: skip
_MAX_FETCH = 32  # most moveToActive calls in one round trip
_Finish = tuple[str, list[Any], list[Any]]  # job id, moveToFinished's keys and args


class _Worker(Worker):  # type: ignore[misc]  # bullmq is untyped
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
                log.warning("redis unreachable; retrying", queue=self.name, error=_describe(e))
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
        keys = scripts.getKeys(_MOVE_TO_ACTIVE_KEYS)
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
        self, job: Any, value: Any, remove: Any, token: str, fetch_next: bool = True
    ) -> dict[str, Any]:
        # RedisBackend.moveToCompleted (never fetching the next job), through a batch.
        keys, args = self.backend.scripts.moveToCompletedArgs(job, value, remove, token, False)
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

    async def settle(self) -> None:
        """Wait for a fetch under way to end (after :meth:`pause`, none starts)."""
        async with self._fetching:
            pass


def _describe(err: BaseException | None) -> str:
    # redis-py 8's exceptions print as "network:ConnectionError"; say what happened.
    return f"{type(err).__name__}: {err}" if err is not None else "none"


def _log_failed(queue: str, job: Any, err: BaseException) -> None:
    # Handler errors and refused data are logged where they happen; this is for the
    # failures BullMQ decides alone (a job that stalled too often).
    if getattr(job, "deferredFailure", None):
        log.warning("job failed by bullmq", queue=queue, job_id=job.id, reason=str(err))

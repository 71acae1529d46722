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
from collections.abc import Callable
from typing import Any, NoReturn

import structlog
from bullmq import DelayedError, UnrecoverableError
from redis.exceptions import RedisError

from flowmill.engine.ports import Job, JobHandler, StepJob
from flowmill.queue.bullmq_codec import JobDataError, decode_node_job, decode_trigger
from flowmill.queue.bullmq_internals import BatchingWorker
from flowmill.queue.bullmq_options import BullMQOptions
from flowmill.queue.bullmq_redis import describe, make_client

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
        self._workers: list[BatchingWorker] = []
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
                log.error("a bullmq worker loop ended by itself; stopping", error=describe(cause))
                await self.stop(0)
                raise RuntimeError("bullmq worker loop ended unexpectedly") from cause
            await asyncio.gather(*self._runs, return_exceptions=True)
        finally:
            await self.stop(0)  # at once if stopped already; else (cancelled) now
            for client in self._clients:  # closed by their worker already, unless it never ran
                await client.aclose()

    def _worker(self, queue: str, concurrency: int, decode: Decode, client: Any) -> BatchingWorker:
        o = self._options

        async def process(job: Any, token: str) -> Any:
            return await self._process(queue, decode, job, token)

        async def late(job: Any, token: str) -> None:
            with contextlib.suppress(DelayedError):
                await self._requeue(job, token, 0)

        worker = BatchingWorker(
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
        worker.on("error", lambda err, *_: bound.warning("bullmq error", error=describe(err)))
        worker.on("stalled", lambda job_id, *_: bound.warning("stalled job back", job_id=job_id))
        worker.on("failed", lambda job, err, *_: _log_failed(queue, job, err))
        return worker

    async def _connect(self) -> bool:
        """Wait until Redis answers (or stop); whether to go on."""
        while not self._stopping.is_set():
            try:
                for worker in self._workers:
                    await worker.learn_redis_version()
                return True
            except (RedisError, OSError) as e:
                log.warning("redis unreachable; retrying", error=describe(e))
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
                error=describe(e),
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
                worker.force_close()
            await asyncio.wait(pending, timeout=o.hand_back_timeout_s)
        if self._runs:
            await asyncio.wait(self._runs, timeout=o.hand_back_timeout_s)


def _log_failed(queue: str, job: Any, err: BaseException) -> None:
    # Handler errors and refused data are logged where they happen; this is for the
    # failures BullMQ decides alone (a job that stalled too often).
    if getattr(job, "deferredFailure", None):
        log.warning("job failed by bullmq", queue=queue, job_id=job.id, reason=str(err))

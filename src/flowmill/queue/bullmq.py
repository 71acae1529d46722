"""The job queue of the distributed deployment: BullMQ queues on Redis.

Wire-compatible with Node.js BullMQ (same key layout and Lua scripts), so Node.js
services can add trigger jobs (schema in ``docs/queues.md``). The database stays the
source of truth (DESIGN §4): a job is only a reminder to run a step, the engine's
sweeper re-dispatches what the queue lost, and running a job twice is harmless.

- Step jobs go to ``flowmill-node`` under their deterministic id, so adding one twice
  adds one job. A finished (completed or failed) job with that id is replaced in the
  same atomic MULTI: BullMQ would otherwise ignore the add while the old job is kept.
- Trigger jobs go to ``flowmill-trigger`` with BullMQ's own ids.
- Both names are settings (``FLOWMILL_QUEUE_TRIGGER``, ``FLOWMILL_QUEUE_NODE``), so a
  deployment can use the seed documents' ``workflow-trigger`` and
  ``workflow-node-execution``.
- ``attempts`` is 1: the engine retries, from the database. A handler error marks the
  job failed in Redis, with its reason, for dashboards; what a handler returns (the
  execution ids a trigger job started) is the job's ``returnvalue``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bullmq import Job as BullJob
from bullmq import Queue
from redis.exceptions import NoScriptError

from flowmill.coalesce import Coalescer
from flowmill.domain.execution import StepKey
from flowmill.engine.ports import Job, JobHandler, JobInfo, StepJob, TriggerJob
from flowmill.queue.bullmq_codec import (
    STEP_JOB_NAME,
    TRIGGER_JOB_NAME,
    delay_ms,
    encode_step,
    encode_trigger,
    to_bullmq_priority,
)
from flowmill.queue.bullmq_consumer import Consumer
from flowmill.queue.bullmq_internals import add_job, queue_keys, skip_script_check
from flowmill.queue.bullmq_options import BullMQOptions
from flowmill.queue.bullmq_redis import PRESENT_LUA, REVIVE_LUA, make_client

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
JOB_STATES = ("wait", "prioritized", "delayed", "active", "completed", "failed", "paused")
_PRESENT_BATCH = 500  # ids per Lua call: keeps each call short for other clients


@dataclass(frozen=True)
class _Put:
    """The jobs of one :meth:`BullMQQueue.put`."""

    steps: dict[str, StepJob]
    triggers: list[TriggerJob]

    @property
    def tenant(self) -> str:
        """Whose jobs these are (the first job's tenant), for fair batching."""
        first = next(iter(self.steps.values()), None) or next(iter(self.triggers), None)
        return first.tenant_id if first is not None else ""


class BullMQQueue:
    """:class:`~flowmill.engine.ports.JobQueue` on BullMQ.

    Args:
        url: Redis URL.
        options: Settings.
    """

    def __init__(self, url: str = DEFAULT_REDIS_URL, options: BullMQOptions | None = None) -> None:
        self.url = url
        self.options = options or BullMQOptions()
        # One pooled client for adding and querying; each worker gets its own, since
        # closing a bullmq object closes the client it was given.
        self._client = make_client(url)
        conn = {"connection": self._client, "prefix": self.options.prefix}
        self._triggers = Queue(self.options.trigger_queue, conn)
        self._nodes = Queue(self.options.node_queue, conn)
        self._present = self._client.register_script(PRESENT_LUA)
        self._revive = self._client.register_script(REVIVE_LUA)
        self._own: dict[str, int | None] = {}
        # told (queue, seconds a job was ready before a worker took it): the metrics
        self.wait_listeners: list[Callable[[str, float], None]] = []
        self._consumer: Consumer | None = None
        # Concurrent puts (every start and step of this process) share one MULTI.
        # A full batch is filled from tenants in turn (a flood's puts do not push
        # another tenant's one past the next round trip).
        self._puts: Coalescer[_Put, None] = Coalescer(self._put_batch, share=lambda p: p.tenant)

    @property
    def in_process(self) -> bool:
        return False

    # --- producing ----------------------------------------------------------------------

    async def put(self, jobs: Sequence[Job]) -> None:
        """Add jobs, in one round trip with those of concurrent calls; a step job already
        waiting, delayed or active is not added twice, a finished one is added again."""
        now_ms = int(time.time() * 1000)
        put = _Put({}, [])
        for job in jobs:
            if isinstance(job, TriggerJob):
                put.triggers.append(job)
            elif job.job_id in self._own:
                self._rerun_later(job, now_ms)
            else:
                put.steps.setdefault(job.job_id, job)
        if put.steps or put.triggers:
            await self._puts.submit(put)

    async def _put_batch(self, puts: list[_Put]) -> list[None]:
        steps: dict[str, StepJob] = {}
        for put in puts:
            for job_id, job in put.steps.items():
                steps.setdefault(job_id, job)
        triggers = [t for put in puts for t in put.triggers]
        await self._send(steps, triggers, int(time.time() * 1000), load_scripts=False)
        return [None] * len(puts)

    async def _send(
        self,
        steps: dict[str, StepJob],
        triggers: list[TriggerJob],
        now_ms: int,
        *,
        load_scripts: bool,
    ) -> None:
        """Add jobs in one MULTI: each finished step job is replaced atomically."""
        async with self._client.pipeline(transaction=True) as pipe:
            if steps:
                keys = queue_keys(self._nodes)
                await self._revive(
                    keys=[keys["completed"], keys["failed"], keys["events"], keys["meta"]],
                    args=[keys[""], *steps],
                    client=pipe,
                )
                for job_id, step in steps.items():
                    opts = self._job_opts(step.priority, step.not_before, now_ms)
                    opts["jobId"] = job_id
                    await add_job(pipe, self._nodes, STEP_JOB_NAME, encode_step(step), opts)
            for trigger in triggers:
                opts = self._job_opts(trigger.priority, None, now_ms)
                data = encode_trigger(trigger)
                await add_job(pipe, self._triggers, TRIGGER_JOB_NAME, data, opts)
            if not load_scripts:
                # redis-py sends SCRIPT EXISTS before every pipeline holding scripts: a
                # round trip that doubled the cost of a put. The scripts are loaded
                # already (by this process or another) except after a Redis restart,
                # when the adds fail with NOSCRIPT and are redone below.
                skip_script_check(pipe)
            replies = await pipe.execute(raise_on_error=False)
        for reply in replies:
            if isinstance(reply, Exception) and not isinstance(reply, NoScriptError):
                raise reply
        if load_scripts or not any(isinstance(r, NoScriptError) for r in replies):
            return
        # Redis lost its scripts (a restart): load them and redo what did not run. The
        # step part is idempotent as a whole; a trigger added must not be added twice.
        missing = [isinstance(r, NoScriptError) for r in replies]
        split = 1 + len(steps) if steps else 0
        redo_steps = steps if any(missing[:split]) else {}
        redo_triggers = [t for t, m in zip(triggers, missing[split:], strict=True) if m]
        await self._send(redo_steps, redo_triggers, now_ms, load_scripts=True)

    def _rerun_later(self, job: StepJob, now_ms: int) -> None:
        # The handler of this very job asks for it again (a step woken early parks
        # itself). BullMQ would ignore the add while the job is active, so the consumer
        # moves the job back to delayed when the handler returns.
        due = now_ms + delay_ms(job.not_before, now_ms)
        earlier = self._own[job.job_id]
        self._own[job.job_id] = due if earlier is None else min(earlier, due)

    def _job_opts(self, priority: int, not_before: datetime | None, now_ms: int) -> dict[str, Any]:
        opts: dict[str, Any] = {
            "attempts": 1,
            "timestamp": now_ms,
            "priority": to_bullmq_priority(priority),
            "removeOnComplete": self.options.remove_on_complete.to_bullmq(),
            "removeOnFail": self.options.remove_on_fail.to_bullmq(),
        }
        delay = delay_ms(not_before, now_ms)
        if delay:
            opts["delay"] = delay
        return opts

    async def present(self, jobs: Collection[StepJob]) -> set[StepKey]:
        """Which of these steps have a job waiting, prioritized, delayed or active."""
        by_id = {j.job_id: j.key for j in jobs}
        if not by_id:
            return set()
        ids = list(by_id)
        keys = queue_keys(self._nodes)
        async with self._client.pipeline(transaction=False) as pipe:
            for start in range(0, len(ids), _PRESENT_BATCH):
                chunk = ids[start : start + _PRESENT_BATCH]
                await self._present(
                    keys=[keys["completed"], keys["failed"]], args=[keys[""], *chunk], client=pipe
                )
            replies = await pipe.execute()
        flags = [flag for reply in replies for flag in reply]
        return {by_id[job_id] for job_id, flag in zip(ids, flags, strict=True) if flag}

    async def inspect(self, job_id: str) -> list[JobInfo]:
        """The jobs with this id in the trigger and node queues (each has its own ids)."""
        found: list[JobInfo] = []
        for queue in (self._triggers, self._nodes):
            # The state first: BullMQ moves a job to "completed" in the same script that
            # writes its returnvalue, so a job read after its state is at least that far
            # on. Read the other way round, a job finishing in between showed
            # "completed" with no result (the seed-queue test failed one run in four).
            state = await queue.getJobState(job_id)
            job = await BullJob.fromId(queue, job_id)
            if job is None:
                continue
            found.append(
                JobInfo(
                    queue=queue.name,
                    id=job_id,
                    state=state.decode() if isinstance(state, bytes) else str(state),
                    data=job.data,
                    result=job.returnvalue,
                    failed_reason=_text(job.failedReason),
                    attempts_made=int(job.attemptsMade or 0),
                    created_ms=int(job.timestamp) if job.timestamp else None,
                    processed_ms=int(job.processedOn) if job.processedOn else None,
                    finished_ms=int(job.finishedOn) if job.finishedOn else None,
                )
            )
        return found

    async def counts(self) -> dict[str, dict[str, int]]:
        """Jobs per state in each queue: ``{"flowmill-node": {"wait": 3, ...}, ...}``."""
        out: dict[str, dict[str, int]] = {}
        for queue in (self._triggers, self._nodes):
            raw = await queue.getJobCounts(*JOB_STATES)
            out[queue.name] = {state: int(raw.get(state, 0)) for state in JOB_STATES}
        return out

    # --- consuming ----------------------------------------------------------------------

    async def consume(self, handler: JobHandler, *, concurrency: int) -> None:
        """Run ``handler`` on jobs of both queues until :meth:`stop`.

        Raises:
            RuntimeError: Already consuming, or a bullmq worker loop died.
        """
        if self._consumer is not None:
            raise RuntimeError("this queue is already consuming")
        self._consumer = Consumer(
            url=self.url,
            options=self.options,
            handler=handler,
            concurrency=concurrency,
            own=self._own,
            waited=self._tell_waited,
        )
        try:
            await self._consumer.run()
        finally:
            self._consumer = None

    def _tell_waited(self, queue: str, seconds: float) -> None:
        for listener in self.wait_listeners:
            listener(queue, seconds)

    async def stop(self, grace_s: float = 10.0) -> None:
        """Stop taking jobs; running handlers get ``grace_s`` to finish, then their jobs
        are handed back to the queue for another worker."""
        if self._consumer is not None:
            await self._consumer.stop(grace_s)

    async def close(self) -> None:
        """Stop at once and release connections."""
        await self.stop(0)
        await self._client.aclose()


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)

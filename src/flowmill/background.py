"""What a process runs beside its main work: the projector and the pruner (each led by
one replica), the queue-depth poller, the event-loop lag monitor and, for processes
without the API, the ``/health``, ``/ready``, ``/metrics`` port.

``flowmill serve`` and ``flowmill scheduler`` run the projector and the pruner;
``flowmill worker`` does not (its steps must not wait behind read models or deletes).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator
from dataclasses import dataclass

import structlog

from flowmill.observability.loop_lag import LoopLagMonitor
from flowmill.observability.metrics import Metrics
from flowmill.projections.projector import Projector
from flowmill.projections.service import ProjectorOptions, ProjectorService
from flowmill.queue.local import LocalQueue
from flowmill.retention.pruner import Pruner
from flowmill.retention.service import RetentionService
from flowmill.runtime import Runtime
from flowmill.store.leases import LeaseStore

log = structlog.get_logger("flowmill")


@dataclass
class Background:
    """The parts running in the background of a process."""

    projector: ProjectorService | None
    retention: RetentionService | None
    loop_lag: LoopLagMonitor
    ops_port: int | None


def projector_service(rt: Runtime) -> ProjectorService:
    """The projector of ``rt``'s database, woken by news of commits."""
    s = rt.settings
    return ProjectorService(
        Projector(rt.db, batch_size=s.projector_batch, clock=rt.engine.clock),
        LeaseStore(rt.db),
        ProjectorOptions(interval_s=s.projector_interval_s, lease_s=s.projector_lease_s),
        clock=rt.engine.clock,
        on_lag=rt.metrics.projection_lag if rt.metrics is not None else None,
    )


def retention_service(rt: Runtime) -> RetentionService:
    """The pruner of ``rt``'s database, by the ``FLOWMILL_RETENTION_*`` settings."""
    s = rt.settings
    pruner = Pruner(
        rt.db,
        s.retention(),
        batch=s.retention_batch,
        pause_s=s.retention_pause_s,
        clock=rt.engine.clock,
    )
    return RetentionService(
        pruner, LeaseStore(rt.db), interval_s=s.retention_interval_s, clock=rt.engine.clock
    )


async def _poll_queues(rt: Runtime, metrics: Metrics) -> None:
    queue = rt.queue
    while True:
        try:
            if isinstance(queue, LocalQueue):
                metrics.queue_counts({"local": {"wait": len(queue)}})
            elif rt.settings.redis_url:
                from flowmill.queue.bullmq import BullMQQueue

                if isinstance(queue, BullMQQueue):
                    metrics.queue_counts(await queue.counts())
        except Exception as e:
            log.debug("queue depth unavailable", error=str(e))
        await asyncio.sleep(rt.settings.queue_metrics_interval_s)


@contextlib.asynccontextmanager
async def running_background(
    rt: Runtime,
    *,
    kind: str,
    projector: bool,
    ops_port: int | None = None,
    freeze_heap: bool = False,
) -> AsyncIterator[Background]:
    """Run the background parts inside the block.

    Args:
        rt: The process's runtime.
        kind: What the process is (``serve``, ``worker``, ``scheduler``).
        projector: Run a projector replica here (if projections are enabled), and a
            pruner replica (if retention is enabled).
        ops_port: Serve ``/health``, ``/ready``, ``/metrics`` on this port (0: off).
        freeze_heap: Move every object made so far out of the garbage collector's reach
            (``gc.freeze``). For a process that lives as long as this block: a full
            collection otherwise walks the ~190,000 objects of start-up (modules, schemas,
            compiled statements) each time, ~50-115 ms during which the event loop stands
            still; frozen, they are never walked. Not for a test process, which would
            keep every runtime it opens.
    """
    s = rt.settings
    metrics = rt.metrics
    lag = LoopLagMonitor(
        threshold_s=s.loop_lag_threshold_ms / 1000,
        on_lag=metrics.loop_lag.observe if metrics is not None else None,
    )
    lag.start()
    async with contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(lag.stop)
        service = None
        if projector and s.projections_enabled:
            service = projector_service(rt)
            # Woken by this process's commits only: news from other processes would
            # cost a Redis message per commit batch, for a projector that runs at
            # most a round a second anyway (its interval polls for theirs).
            stack.callback(rt.engine.hub.subscribe(service.wake))
            await stack.enter_async_context(service.running())
        pruning = None
        if projector and s.retention_enabled:
            pruning = retention_service(rt)
            await stack.enter_async_context(pruning.running())
        if metrics is not None:
            poller = asyncio.create_task(_poll_queues(rt, metrics), name="queue-metrics")
            stack.callback(poller.cancel)
        port = None
        if ops_port:
            from flowmill.observability.server import serving_ops

            port = await stack.enter_async_context(serving_ops(rt, kind, s.metrics_host, ops_port))
        if freeze_heap:
            gc.collect()  # what start-up left as garbage is freed, not frozen
            gc.freeze()
        yield Background(service, pruning, lag, port)

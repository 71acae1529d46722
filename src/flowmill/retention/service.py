"""The pruner in the background: one replica at a time, every ``interval_s``.

``flowmill serve`` and ``flowmill scheduler`` run it (beside the projector). Each
replica tries the ``retention`` lease every interval; the one that takes it prunes.
Correctness does not rest on the lease: two replicas pruning at once delete each row
once (a batch chooses its rows inside its own transaction); the lease only saves work.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import AsyncIterator

import structlog

from flowmill.clock import Clock, SystemClock
from flowmill.ids import uuid7
from flowmill.retention.pruner import Pruner, PruneReport
from flowmill.store.leases import LeaseStore

log = structlog.get_logger("flowmill.retention")
LEASE = "retention"


class RetentionService:
    """Runs a :class:`Pruner` every ``interval_s`` while holding the ``retention`` lease.

    Args:
        pruner: What to run.
        leases: Leader election.
        interval_s: Pause between runs (the first starts at once).
        lease_s: How long the lease lasts unrenewed.
        clock: Time.
    """

    def __init__(
        self,
        pruner: Pruner,
        leases: LeaseStore,
        *,
        interval_s: float,
        lease_s: float = 60.0,
        clock: Clock | None = None,
    ) -> None:
        self.pruner = pruner
        self.leases = leases
        self.interval_s = interval_s
        self.lease_s = lease_s
        self.clock = clock or SystemClock()
        self.holder = f"{socket.gethostname()[:40]}-{os.getpid()}-{uuid7()[-8:]}"
        self.last: PruneReport | None = None
        self._stop = asyncio.Event()

    async def round(self) -> PruneReport | None:
        """Prune once if this replica takes the lease; the report, or ``None``."""
        if not await self.leases.acquire(LEASE, self.holder, self.clock.now(), self.lease_s):
            return None
        report = await self.pruner.prune(stop=self._stop)
        total = report.total
        if total.total:
            log.info("pruned old records", **vars(total), free_pages_left=report.free_pages_left)
        self.last = report
        return report

    async def run(self) -> None:
        """Rounds until :meth:`stop`; a failing round is logged and tried next time."""
        try:
            while not self._stop.is_set():
                try:
                    await self.round()
                except Exception:
                    log.exception("retention round failed; trying at the next interval")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), self.interval_s)
        finally:
            with contextlib.suppress(Exception):
                await self.leases.release(LEASE, self.holder)

    def stop(self) -> None:
        """End :meth:`run` after the batch under way."""
        self._stop.set()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[RetentionService]:
        """Run in the background inside the block."""
        task = asyncio.create_task(self.run(), name="retention")
        try:
            yield self
        finally:
            self.stop()
            await task

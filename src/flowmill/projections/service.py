"""The projector as a service: one leader at a time, waking on news of commits.

Any number of processes run it (``flowmill serve``, ``flowmill scheduler``); they elect
one leader through the ``projector`` lease (``store/leases.py``). The leader catches
up every round, within a time budget so that it renews its lease during a long
replay. Correctness does not rest on the lease: a paused leader that wakes after
losing it finds the cursors moved under their locks and applies nothing twice.

Rounds start every ``interval_s`` or sooner when :meth:`wake` is called (the engine's
hub in this process, news of commits from other processes), at most every
``min_interval_s`` so that a burst of commits is applied in a few batches.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass

import structlog

from flowmill.clock import Clock, SystemClock
from flowmill.ids import uuid7
from flowmill.projections.projector import Lag, Projector
from flowmill.store.leases import LeaseStore

log = structlog.get_logger("flowmill.projector")
LEASE = "projector"


@dataclass
class ProjectorOptions:
    """Timing of the projector service.

    Attributes:
        interval_s: Longest pause between rounds.
        min_interval_s: Shortest pause between rounds (wake-ups within it wait).
        lease_s: Lease of the leading replica; a dead leader is replaced within it.
        lag_every_s: How often the lag is measured (for the metric).
    """

    interval_s: float = 1.0
    # A batch's fixed cost (about 15 statements per tenant) is paid per round, so rounds
    # under load are at most one a second: bigger batches, less CPU per event; the lag
    # stays about a second.
    min_interval_s: float = 1.0
    lease_s: float = 15.0
    lag_every_s: float = 5.0


LagListener = Callable[[Sequence[Lag]], None]


class ProjectorService:
    """Runs a :class:`Projector` in the background of a process.

    Args:
        projector: What to run.
        leases: Leader election.
        options: Timing.
        clock: Time.
        on_lag: Told each measured lag (the projector-lag metric).
    """

    def __init__(
        self,
        projector: Projector,
        leases: LeaseStore,
        options: ProjectorOptions | None = None,
        *,
        clock: Clock | None = None,
        on_lag: LagListener | None = None,
    ) -> None:
        self.projector = projector
        self.leases = leases
        self.options = options or ProjectorOptions()
        self.clock = clock or SystemClock()
        self.on_lag = on_lag
        self.holder = f"{socket.gethostname()[:40]}-{os.getpid()}-{uuid7()[-8:]}"
        self.leading = False
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._lag_at = -float("inf")
        self._renew_at = -float("inf")

    def wake(self, *_: object) -> None:
        """Start a round soon (there are new events). Safe to call from listeners."""
        self._wake.set()

    async def round(self) -> int:
        """Take or renew the lease; if leading, catch up. Returns events read."""
        # The lease is renewed a third of its time before it runs out, not every round:
        # a round per commit burst must not also be a write each.
        if not self.leading or time.monotonic() >= self._renew_at:
            self.leading = await self.leases.acquire(
                LEASE, self.holder, self.clock.now(), self.options.lease_s
            )
            self._renew_at = time.monotonic() + self.options.lease_s / 3
        read = 0
        if self.leading:
            read = await self.projector.one_pass(budget_s=self.options.lease_s / 3)
        if self.on_lag is not None and time.monotonic() - self._lag_at >= self.options.lag_every_s:
            self._lag_at = time.monotonic()
            self.on_lag(await self.projector.lag())
        return read

    async def run(self) -> None:
        """Rounds until :meth:`stop`; the lease is given up on the way out."""
        failing = False
        try:
            while not self._stop.is_set():
                self._wake.clear()
                started = time.monotonic()
                try:
                    await self.round()
                except Exception as e:
                    if not failing:  # once per outage, not every second
                        log.exception("projector round failed; trying again")
                    else:
                        log.debug("projector still failing", error=str(e))
                    failing = True
                else:
                    if failing:
                        log.info("projector working again")
                    failing = False
                await self._pause(started)
        finally:
            if self.leading:
                with contextlib.suppress(Exception):
                    await self.leases.release(LEASE, self.holder)
            self.leading = False

    async def _pause(self, started: float) -> None:
        rest = self.options.min_interval_s - (time.monotonic() - started)
        if rest > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), rest)
        waits = {asyncio.ensure_future(e.wait()) for e in (self._stop, self._wake)}
        try:
            await asyncio.wait(
                waits, timeout=self.options.interval_s, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            for w in waits:
                w.cancel()

    def stop(self) -> None:
        """Ask :meth:`run` to return."""
        self._stop.set()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[ProjectorService]:
        """Run the service in the background inside the block."""
        task = asyncio.create_task(self.run(), name="projector")
        try:
            yield self
        finally:
            self.stop()
            await task

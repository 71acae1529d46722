"""The event-loop lag monitor: a blocked loop is caught while it is blocked, with the
stack of what blocks it; each sample's lag goes to the listener."""

from __future__ import annotations

import asyncio
import time

from flowmill.observability.loop_lag import LoopLagMonitor


def _blocking_call(seconds: float) -> None:
    time.sleep(seconds)  # not a wait: what a careless node or library does on the loop


async def test_loop_lag_catches_a_stall_with_the_blocking_stack() -> None:
    lags: list[float] = []
    monitor = LoopLagMonitor(threshold_s=0.1, interval_s=0.02, on_lag=lags.append)
    monitor.start()
    try:
        await asyncio.sleep(0.1)  # not a wait: a few samples first
        _blocking_call(0.4)
        await asyncio.sleep(0.1)  # not a wait: the monitor samples after the stall
    finally:
        await monitor.stop()
    assert not monitor.running
    # (a loaded machine may add stalls of its own; this one is ours)
    [stall] = [s for s in monitor.stalls if "_blocking_call" in s.stack]
    assert stall.blocked_s >= 0.1
    assert "_blocking_call" in stall.stack and "time.sleep" in stall.stack
    assert max(lags) >= 0.3  # the sample that spanned the stall saw it


async def test_loop_lag_stays_quiet_on_a_healthy_loop_and_restarts() -> None:
    monitor = LoopLagMonitor(threshold_s=1.0, interval_s=0.01)
    for _ in range(2):
        monitor.start()
        monitor.start()  # idempotent
        await asyncio.sleep(0.15)  # not a wait: the monitor runs this long
        await monitor.stop()
    assert monitor.stalls == []

"""Event-loop lag: how late the loop runs a timer, and what blocked it.

One coroutine sleeps ``interval_s`` again and again and reports how much later than
asked it woke (``on_lag``, the ``flowmill_event_loop_lag_seconds`` metric). A watchdog
thread looks at the time of the coroutine's last wake-up: when it is older than
``threshold_s`` the loop is blocked right now, so the thread takes the loop thread's
stack at that moment (``sys._current_frames``) and logs it, once per stall. A stack
taken after the fact would only show the monitor itself.

Usage::

    monitor = LoopLagMonitor(threshold_s=0.25, on_lag=metrics.loop_lag.observe)
    monitor.start()          # inside the running loop
    ...
    await monitor.stop()
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass

import structlog

log = structlog.get_logger("flowmill.loop")


@dataclass(frozen=True)
class Stall:
    """A time the loop was blocked past the threshold: for how long (at least, when
    seen), and the loop thread's stack while it was."""

    blocked_s: float
    stack: str


class LoopLagMonitor:
    """Watches the running event loop.

    Args:
        threshold_s: Stalls longer than this are logged with the blocking stack.
        interval_s: How often the loop is sampled (and the watchdog looks).
        on_lag: Told each sample's lag in seconds (cheap: called in the loop).
        keep: How many recent stalls :attr:`stalls` keeps.
    """

    def __init__(
        self,
        *,
        threshold_s: float = 0.25,
        interval_s: float = 0.05,
        on_lag: Callable[[float], None] | None = None,
        keep: int = 20,
    ) -> None:
        self.threshold_s = threshold_s
        self.interval_s = interval_s
        self.on_lag = on_lag
        self.keep = keep
        self.stalls: list[Stall] = []
        self._beat = 0.0
        self._reported = -1.0
        self._loop_thread = 0
        self._task: asyncio.Task[None] | None = None
        self._watchdog: threading.Thread | None = None
        self._stopping = threading.Event()

    @property
    def running(self) -> bool:
        """Whether :meth:`start` was called and :meth:`stop` not yet."""
        return self._task is not None

    def start(self) -> None:
        """Start watching the running loop (call from inside it; idempotent)."""
        if self._task is not None:
            return
        self._loop_thread = threading.get_ident()
        self._beat = time.monotonic()
        self._stopping.clear()
        self._task = asyncio.get_running_loop().create_task(self._tick(), name="loop-lag")
        self._watchdog = threading.Thread(target=self._watch, name="loop-lag-watchdog", daemon=True)
        self._watchdog.start()

    async def stop(self) -> None:
        """Stop watching."""
        task, self._task = self._task, None
        self._stopping.set()
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._watchdog is not None:
            await asyncio.to_thread(self._watchdog.join, 2)
            self._watchdog = None

    async def _tick(self) -> None:
        while True:
            asked = time.monotonic()
            await asyncio.sleep(self.interval_s)
            self._beat = now = time.monotonic()
            if self.on_lag is not None:
                self.on_lag(max(0.0, now - asked - self.interval_s))

    def _watch(self) -> None:
        while not self._stopping.wait(self.interval_s):
            beat = self._beat
            blocked = time.monotonic() - beat
            if blocked < self.threshold_s or beat == self._reported:
                continue
            self._reported = beat
            frame = sys._current_frames().get(self._loop_thread)
            stack = "".join(traceback.format_stack(frame, limit=20)) if frame else ""
            self.stalls = [*self.stalls[-(self.keep - 1) :], Stall(blocked, stack)]
            # The innermost frames say what blocks; the whole stack goes in the record.
            where = stack.strip().splitlines()[-2:] if stack else []
            log.warning(
                "event loop blocked",
                blocked_ms=round(blocked * 1000, 1),
                where=" | ".join(line.strip() for line in where),
                stack=stack,
            )

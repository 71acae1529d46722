"""Background tasks: named, watched, and the one loop that outlives outages.

Two rules of the house live here so that no module writes them again by hand:

- A task that runs for the life of a service has a name (``asyncio.all_tasks()`` in a
  debugger, or a hung shutdown, says what is still running), and a fire-and-forget
  task reports its failure when it ends, with its name and traceback, instead of
  "Task exception was never retrieved" at garbage collection, if ever (:func:`spawn`).
- A service's periodic work runs in :func:`run_every`: a failure (a database outage)
  is logged once with its traceback, then quietly until the work succeeds again, and
  the loop goes on, so a process never looks alive with its schedules stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import structlog

log = structlog.get_logger("flowmill.tasks")
T = TypeVar("T")


def spawn(
    coro: Coroutine[Any, Any, T], *, name: str, keep: set[asyncio.Task[Any]] | None = None
) -> asyncio.Task[T]:
    """Start ``coro`` as a task called ``name`` whose failure is logged when it ends.

    Args:
        coro: The work.
        name: What the task is, for logs and debuggers.
        keep: A set that holds the task while it runs (the event loop keeps only a weak
            reference to it), for the owner to wait for or cancel on shutdown.
    """
    task = asyncio.create_task(coro, name=name)
    if keep is not None:
        keep.add(task)
        task.add_done_callback(keep.discard)
    task.add_done_callback(log_failure)
    return task


def log_failure(task: asyncio.Task[Any]) -> None:
    """Done-callback: log the task's exception (and so mark it retrieved), if any."""
    if task.cancelled():
        return
    error = task.exception()
    if error is not None:
        log.error("background task failed", task=task.get_name(), exc_info=error)


async def run_every(
    name: str,
    work: Callable[[], Awaitable[float | None]],
    *,
    interval_s: float,
    stop: asyncio.Event,
    sleep: Callable[[float], Awaitable[None]] | None = None,
    wait_first: bool = False,
) -> None:
    """Run ``work`` until ``stop`` is set, pausing between runs; survive its failures.

    Args:
        name: What the work is, for logs.
        work: One run; it may return the pause before the next run (``None``: the
            interval). After a failure the pause is the interval.
        interval_s: The usual pause, in seconds.
        stop: Ends the loop, and any pause at once.
        sleep: How to pause (a clock's ``sleep``, so that a fake clock drives the loop
            in tests); by default the event loop's time.
        wait_first: Pause before the first run too.
    """
    failing = False
    pause: float | None = interval_s
    first = True
    while True:
        if wait_first or not first:
            await _pause(pause if pause is not None else interval_s, stop, sleep)
        first = False
        if stop.is_set():
            return
        try:
            pause = await work()
        except Exception as e:
            # Once per outage, with the traceback; not twice a second while the
            # database is away.
            if not failing:
                log.exception("background task failing; retrying", task=name)
            else:
                log.debug("background task still failing", task=name, error=str(e))
            failing = True
            pause = None
        else:
            if failing:
                log.info("background task working again", task=name)
            failing = False


async def _pause(
    seconds: float, stop: asyncio.Event, sleep: Callable[[float], Awaitable[None]] | None
) -> None:
    if sleep is None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=seconds)
        return
    sleeping = asyncio.ensure_future(sleep(seconds))
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({sleeping, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        sleeping.cancel()
        stopping.cancel()

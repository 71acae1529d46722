"""Background tasks: the outage-surviving loop, named tasks that log their failure, and
the runtime closing what it opened when its block fails."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from structlog.testing import capture_logs

from flowmill.config import Settings
from flowmill.queue.local import LocalQueue
from flowmill.runtime import open_runtime
from flowmill.tasks import run_every, spawn
from flowmill.testing import FakeClock, eventually


async def test_tasks_run_every_outlives_failures_and_logs_an_outage_once() -> None:
    clock = FakeClock()
    stop = asyncio.Event()
    outcomes = iter([None, OSError("db away"), OSError("db away"), OSError("db away"), 5.0])
    runs: list[float] = []

    async def work() -> float | None:
        runs.append(clock.monotonic())
        outcome = next(outcomes, None)
        if isinstance(outcome, Exception):
            raise outcome
        if len(runs) >= 6:
            stop.set()
        return outcome

    with capture_logs() as logs:
        await asyncio.wait_for(
            run_every("work", work, interval_s=1.0, stop=stop, sleep=clock.sleep), 5
        )
    # first run at once; then the interval, after failures too; then the pause asked for
    assert runs == [0.0, 1.0, 2.0, 3.0, 4.0, 9.0]
    levels = [(e["log_level"], e["event"]) for e in logs]
    assert levels == [
        ("error", "background task failing; retrying"),
        ("debug", "background task still failing"),
        ("debug", "background task still failing"),
        ("info", "background task working again"),
    ]


async def test_tasks_run_every_stops_during_a_pause() -> None:
    stop = asyncio.Event()
    runs = 0

    async def work() -> None:
        nonlocal runs
        runs += 1

    task = asyncio.create_task(run_every("w", work, interval_s=3600, stop=stop, wait_first=True))
    await asyncio.sleep(0)  # not a wait: let the loop enter its first pause
    stop.set()
    await asyncio.wait_for(task, 5)  # not an hour
    assert runs == 0


async def test_tasks_spawn_names_the_task_and_logs_its_failure() -> None:
    kept: set[asyncio.Task[Any]] = set()

    async def boom() -> None:
        raise ValueError("lost")

    with capture_logs() as logs:
        task = spawn(boom(), name="promote-all", keep=kept)
        assert task.get_name() == "promote-all" and task in kept
        await eventually(lambda: task.done() and not kept, 5, "the task to end")
        await asyncio.sleep(0)  # not a wait: done-callbacks run on the next loop turn
    [entry] = [e for e in logs if e["event"] == "background task failed"]
    assert entry["task"] == "promote-all"
    assert isinstance(entry["exc_info"], ValueError)


class _ClosingQueue(LocalQueue):
    closed = False

    async def close(self) -> None:
        self.closed = True
        await super().close()


async def test_tasks_runtime_closes_what_it_opened_when_its_block_fails(sqlite_url: str) -> None:
    queue = _ClosingQueue()
    with pytest.raises(RuntimeError, match="in the block"):
        async with open_runtime(
            Settings(database_url=sqlite_url, sandbox_enabled=False), queue=queue
        ):
            raise RuntimeError("in the block")
    assert queue.closed

"""Two copies of one parked step (two wake jobs, two workers): they run one at a time,
and a copy's suspension never moves a wake's due time later (docs/control-flow.md)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest

from flowmill.domain.states import NodeRunStatus
from flowmill.engine.control import WAKE_SIGNAL, ControlSettings
from flowmill.engine.engine import Engine, EngineOptions
from flowmill.engine.ports import StepJob
from flowmill.engine.runner import RunnerOptions
from flowmill.engine.services import NodeServices
from flowmill.nodes.base import NodeConfig, NodeContext, NodeType, Suspend
from flowmill.queue.local import LocalQueue
from flowmill.testing import (
    InMemoryControlStore,
    InMemoryDefinitions,
    InMemoryExecutionStore,
    InMemoryWorkerRegistry,
    eventually,
)
from tests.engine_support import registry, wf


@dataclass
class Gate:
    """Holds every copy of the ``gated`` node until the test lets it through."""

    inside: int = 0
    peak: int = 0
    entered: int = 0
    doors: list[asyncio.Event] = field(default_factory=list)

    async def hold(self) -> None:
        door = asyncio.Event()
        self.doors.append(door)
        self.inside += 1
        self.entered += 1
        self.peak = max(self.peak, self.inside)
        try:
            await door.wait()
        finally:
            self.inside -= 1


GATE = Gate()


class GatedNode(NodeType[NodeConfig]):
    """First run: waits at the gate, then parks for a signal. Resumed: waits at the
    gate, then succeeds."""

    type_name = "gated"
    Config = NodeConfig

    async def execute(self, ctx: NodeContext, config: NodeConfig) -> Any:
        await GATE.hold()
        if ctx.resumed:
            return {"resumed": True}
        return Suspend(until=ctx.now + timedelta(seconds=60), state={}, wake_on=WAKE_SIGNAL)


@dataclass
class Workers:
    one: Engine
    two: Engine
    store: InMemoryExecutionStore
    execution_id: str

    async def gate_run(self) -> Any:
        return next(r for r in await self.store.node_runs(self.execution_id) if r.node_id == "g")

    def job(self, wake: int = 0) -> StepJob:
        return StepJob(self.execution_id, "g", 1, tenant_id="t1", wake=wake)


@pytest.fixture
async def workers() -> AsyncIterator[Workers]:
    """Two engines (workers) on one store, neither consuming its queue: the test hands
    each the jobs it runs."""
    global GATE
    GATE = Gate()
    store = InMemoryExecutionStore()
    control = InMemoryControlStore(store)
    definitions = InMemoryDefinitions()
    reg = registry()
    reg.register(GatedNode)

    def engine() -> Engine:
        return Engine(
            store=store,
            definitions=definitions,
            queue=LocalQueue(),
            registry=reg,
            services=NodeServices(),
            workers=InMemoryWorkerRegistry(),
            options=EngineOptions(runner=RunnerOptions(announce_after_s=30)),
            control_store=control,
            control_settings=ControlSettings(poll_s=60),
        )

    one, two = engine(), engine()
    definitions.add("wf", wf([{"id": "g", "type": "gated"}], [("t", "g")]))
    execution_id = await one.start_execution(tenant_id="t1", workflow_id="wf", version=1, data={})
    w = Workers(one, two, store, execution_id)
    yield w
    for door in GATE.doors:
        door.set()


async def test_runner_racing_wakes_run_one_copy_of_a_parked_step_at_a_time(
    workers: Workers,
) -> None:
    # The gated node's first run parks.
    first = asyncio.create_task(workers.one.runner.run_job(workers.job()))
    await eventually(lambda: GATE.entered == 1, 5, "the first run at the gate")
    GATE.doors[0].set()
    await first
    assert (await workers.gate_run()).status is NodeRunStatus.WAITING
    assert await workers.one.runner.wake(workers.execution_id, WAKE_SIGNAL) == 1

    # Two wake jobs of the same step (different ids), one on each worker.
    copies = [
        asyncio.create_task(workers.one.runner.run_job(workers.job(wake=1))),
        asyncio.create_task(workers.two.runner.run_job(workers.job(wake=2))),
    ]
    await eventually(lambda: GATE.entered >= 2, 5, "a resumed copy at the gate")
    await asyncio.wait(copies, timeout=0.3)  # not a wait: room for a second copy to enter
    assert GATE.peak == 1, "two copies of one parked step ran at once"
    for door in GATE.doors:
        door.set()
    await asyncio.gather(*copies)
    run = await workers.gate_run()
    assert run.status is NodeRunStatus.SUCCEEDED
    assert run.output == {"resumed": True}


async def test_runner_racing_wakes_a_late_suspension_never_moves_a_due_time_later(
    workers: Workers,
) -> None:
    # Two copies of the first run (a duplicate job), both at the gate.
    first = asyncio.create_task(workers.one.runner.run_job(workers.job()))
    await eventually(lambda: GATE.entered == 1, 5, "the first copy at the gate")
    second = asyncio.create_task(workers.two.runner.run_job(workers.job()))
    await eventually(lambda: GATE.entered == 2, 5, "the second copy at the gate")

    # The first parks; a wake makes it due now.
    GATE.doors[0].set()
    await first
    assert await workers.one.runner.wake(workers.execution_id, WAKE_SIGNAL) == 1
    woken = (await workers.gate_run()).not_before
    assert woken is not None

    # The second copy parks too, later: the wake's due time must stand.
    GATE.doors[1].set()
    await second
    run = await workers.gate_run()
    assert run.status is NodeRunStatus.WAITING
    assert run.not_before == woken, "a suspension pushed a woken step's due time later"

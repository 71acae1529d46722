"""The sweeper puts back a worker's own steps that lost their job, and only those."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import timedelta

from flowmill.domain.execution import Effects, RunUpdate, StepKey
from flowmill.domain.states import ExecutionStatus as X
from flowmill.domain.states import NodeRunStatus as S
from flowmill.engine.ports import Job, StepJob
from flowmill.engine.runner import job_for
from flowmill.testing import eventually
from tests.engine_support import Harness, wf


async def test_sweeper_redispatch_leaves_a_step_that_moved_on_while_it_looked(
    harness: Harness,
) -> None:
    """A loop's run is woken by every child that ends and parks again under a new job
    id. When that happens between the sweeper's read of the run and the queue's answer,
    the old job id is gone but the run has moved on: it is not lost, and putting the
    old job back only runs the step once more for nothing (the sweeper's "re-dispatching
    steps that fell off the queue" warnings during long loops)."""
    definition = wf([{"id": "d", "type": "delay", "config": {"ms": 600_000}}], [("t", "d")])
    execution_id = await harness.start(definition)

    async def parked() -> bool:
        ex = await harness.store.get_execution(execution_id)
        return ex is not None and ex.status is X.WAITING

    await eventually(parked, 10, "the execution parked on its delay")
    (run,) = [r for r in await harness.store.node_runs(execution_id) if r.node_id == "d"]
    assert run.status is S.WAITING and run.not_before is not None
    old = job_for(run, run.tenant_id)
    later = run.not_before + timedelta(seconds=30)

    queue = harness.engine.queue
    real_present, real_put = queue.present, queue.put
    moved: list[bool] = []
    put: list[StepJob] = []

    async def present(jobs: Collection[StepJob]) -> set[StepKey]:
        if moved or old.job_id not in {j.job_id for j in jobs}:
            return await real_present(jobs)
        # The step's job ran just now, and the step parked again until later.
        moved.append(True)

        def again(_ex: object, _reader: object) -> Effects:
            update = RunUpdate(
                run.id, frozenset({S.WAITING}), S.WAITING, not_before=later, state=run.state
            )
            return Effects(execution_id, run.tenant_id, run_updates=[update])

        await harness.store.checkpoint(execution_id, again)
        (now_parked,) = [r for r in await harness.store.node_runs(execution_id) if r.id == run.id]
        await real_put([job_for(now_parked, run.tenant_id)])
        return await real_present([j for j in jobs if j.job_id != old.job_id])

    async def record(jobs: Sequence[Job]) -> None:
        put.extend(j for j in jobs if isinstance(j, StepJob))
        await real_put(jobs)

    queue.present = present  # type: ignore[method-assign]
    queue.put = record  # type: ignore[method-assign]
    harness.engine.options.orphan_grace_s = 0.0
    await harness.engine.sweep()
    await harness.engine.sweep()

    assert moved, "the sweeper asked the queue about the parked step"
    assert old.job_id not in {j.job_id for j in put}, "the step's old job was put back"
    # a step that really lost its job is still put back
    (now_parked,) = [r for r in await harness.store.node_runs(execution_id) if r.id == run.id]
    lost = job_for(now_parked, run.tenant_id)
    queue.present = lambda jobs: real_present([j for j in jobs if j.job_id != lost.job_id])  # type: ignore[method-assign]
    await harness.engine.sweep()
    assert lost.job_id in {j.job_id for j in put}

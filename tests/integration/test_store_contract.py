"""The contract of the engine's ports, run against the in-memory fakes of
``flowmill.testing`` and the SQL stores on SQLite and PostgreSQL alike.

Unit tests trust the fakes; this suite is what earns that trust: each test states one
rule of a port (``engine/ports.py``) and must pass on every backend, so a fake that
drifts from the store it mirrors fails here, not in production.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from flowmill.config import Settings
from flowmill.domain.execution import (
    Effects,
    ExecutionRecord,
    FollowingStart,
    NodeRun,
    RunUpdate,
    StaleStepError,
)
from flowmill.domain.states import ExecutionStatus, NodeRunStatus
from flowmill.engine import starts
from flowmill.engine import transitions as tx
from flowmill.engine.compiled import CompiledWorkflow
from flowmill.engine.engine import Engine
from flowmill.engine.ports import (
    DefinitionSource,
    DuplicateExecutionError,
    ExecutionStore,
    WorkerRegistry,
)
from flowmill.engine.services import NodeServices
from flowmill.ids import uuid7
from flowmill.nodes.registry import NodeRegistry
from flowmill.queue.local import LocalQueue
from flowmill.runtime import open_runtime
from flowmill.testing import (
    FakeClock,
    InMemoryDefinitions,
    InMemoryExecutionStore,
    InMemoryWorkerRegistry,
)

TENANT = "contract"
CHAIN = {
    "name": "chain",
    "nodes": [
        {"id": "t", "type": "trigger"},
        {"id": "a", "type": "noop"},
        {"id": "b", "type": "noop"},
    ],
    "edges": [{"source": "t", "target": "a"}, {"source": "a", "target": "b"}],
}


@dataclass
class Backend:
    """The ports of one backend, and what setting up a workflow takes on it."""

    name: str
    store: ExecutionStore
    workers: WorkerRegistry
    definitions: DefinitionSource
    engine: Engine
    clock: FakeClock
    add_workflow: Callable[[dict[str, Any]], Any]

    async def workflow(self, doc: dict[str, Any]) -> tuple[str, CompiledWorkflow]:
        wf_id: str = await self.add_workflow(doc)
        return wf_id, await self.engine.compiled(wf_id, 1)

    async def start(
        self,
        wf_id: str,
        compiled: CompiledWorkflow,
        *,
        dedupe_key: str | None = None,
        owner: str | None = None,
        deadline_at: datetime | None = None,
    ) -> str:
        """Start an execution through the port, its first step left queued."""
        now = self.clock.now()
        ex = ExecutionRecord(
            uuid7(), TENANT, wf_id, 1, ExecutionStatus.PENDING, {"type": "manual"}, "manual", now
        )
        ex.deadline_at = deadline_at
        fx = starts.start_execution(compiled, ex, "t", {"n": 1}, now, owner=owner)
        await self.store.start(ex, lambda _counts: fx, dedupe_key=dedupe_key)
        return ex.id

    async def run_of(self, execution_id: str, node_id: str) -> NodeRun:
        [run] = [r for r in await self.store.node_runs(execution_id) if r.node_id == node_id]
        return run

    async def succeed(self, execution_id: str, compiled: CompiledWorkflow, run: NodeRun) -> Any:
        """Checkpoint ``run`` as succeeded (what a worker does after running it)."""
        return await self.store.checkpoint(
            execution_id,
            lambda ex, reader: tx.after_step(
                compiled, ex, run, tx.Succeeded({"from": run.node_id}), reader, self.clock.now()
            ),
        )


@contextlib.asynccontextmanager
async def _memory(clock: FakeClock) -> AsyncIterator[Backend]:
    definitions = InMemoryDefinitions()
    engine = Engine(
        store=InMemoryExecutionStore(clock),
        definitions=definitions,
        queue=LocalQueue(),
        registry=NodeRegistry.from_entry_points(),
        services=NodeServices(),
        workers=InMemoryWorkerRegistry(clock),
        clock=clock,
    )

    async def add(doc: dict[str, Any]) -> str:
        wf_id = uuid7()
        definitions.add(wf_id, doc, tenant_id=TENANT)
        return wf_id

    yield Backend("memory", engine.store, engine.workers, definitions, engine, clock, add)


@contextlib.asynccontextmanager
async def _sql(url: str, clock: FakeClock) -> AsyncIterator[Backend]:
    async with open_runtime(Settings(database_url=url, sandbox_enabled=False), clock=clock) as rt:
        await rt.workflows.ensure_tenant(TENANT)

        async def add(doc: dict[str, Any]) -> str:
            return (await rt.workflows.create(TENANT, doc, publish=True)).id

        engine = rt.engine
        yield Backend("sql", engine.store, engine.workers, rt.workflows, engine, clock, add)


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def backend_url(request: pytest.FixtureRequest) -> str | None:
    """``None`` for the in-memory fakes, else a migrated database of the test's own."""
    if request.param == "memory":
        return None
    return str(request.getfixturevalue(f"{request.param}_url"))


@pytest.fixture
async def backend(backend_url: str | None) -> AsyncIterator[Backend]:
    clock = FakeClock(datetime(2026, 5, 4, 9, 0, tzinfo=UTC))
    opened = _memory(clock) if backend_url is None else _sql(backend_url, clock)
    async with opened as b:
        yield b


# --- ExecutionStore --------------------------------------------------------------------


async def test_store_contract_start_writes_the_execution_and_its_first_step(
    backend: Backend,
) -> None:
    wf_id, compiled = await backend.workflow(CHAIN)
    execution_id = await backend.start(wf_id, compiled)
    ex = await backend.store.get_execution(execution_id)
    assert ex is not None and ex.status is ExecutionStatus.RUNNING
    runs = await backend.store.node_runs(execution_id)
    assert [(r.node_id, r.attempt, r.status) for r in runs] == [
        ("t", 1, NodeRunStatus.SUCCEEDED),
        ("a", 1, NodeRunStatus.QUEUED),
    ]
    assert await backend.store.get_execution(uuid7()) is None


async def test_store_contract_a_dedupe_key_starts_one_execution(backend: Backend) -> None:
    wf_id, compiled = await backend.workflow(CHAIN)
    first = await backend.start(wf_id, compiled, dedupe_key="evt-1")
    with pytest.raises(DuplicateExecutionError) as info:
        await backend.start(wf_id, compiled, dedupe_key="evt-1")
    assert info.value.execution_id == first
    assert await backend.start(wf_id, compiled, dedupe_key="evt-2") != first


async def test_store_contract_a_stale_checkpoint_writes_nothing(backend: Backend) -> None:
    """The second checkpoint of the same attempt (a duplicate job) raises StaleStepError
    and leaves every row as the first one left it."""
    wf_id, compiled = await backend.workflow(CHAIN)
    execution_id = await backend.start(wf_id, compiled)
    run = await backend.run_of(execution_id, "a")
    await backend.succeed(execution_id, compiled, run)
    before = (
        await backend.store.get_execution(execution_id),
        await backend.store.node_runs(execution_id),
    )
    with pytest.raises(StaleStepError):
        await backend.succeed(execution_id, compiled, run)
    after = (
        await backend.store.get_execution(execution_id),
        await backend.store.node_runs(execution_id),
    )
    assert after == before
    assert [r.node_id for r in after[1]] == ["t", "a", "b"]  # b made ready once


async def test_store_contract_checkpoints_at_once_a_stale_one_fails_alone(
    backend: Backend,
) -> None:
    """Checkpoints made at the same moment (SQLite commits them together): one that is
    stale halfway (its first run update applies, its second finds its run moved on)
    raises StaleStepError and writes nothing, not even that first update; the other is
    written."""
    wf_id, compiled = await backend.workflow(CHAIN)
    good_id = await backend.start(wf_id, compiled)
    stale_id = await backend.start(wf_id, compiled)
    good_run = await backend.run_of(good_id, "a")
    queued = await backend.run_of(stale_id, "a")
    done = await backend.run_of(stale_id, "t")  # succeeded: not queued any more
    before = await backend.store.node_runs(stale_id)

    def half_stale(ex: ExecutionRecord, _reader: Any) -> Effects:
        fx = Effects(execution_id=ex.id, tenant_id=ex.tenant_id)
        waiting = frozenset({NodeRunStatus.QUEUED})
        fx.run_updates += [
            RunUpdate(queued.id, waiting, NodeRunStatus.RUNNING, started_at=backend.clock.now()),
            RunUpdate(done.id, waiting, NodeRunStatus.RUNNING, started_at=backend.clock.now()),
        ]
        return fx

    good, stale = await asyncio.gather(
        backend.succeed(good_id, compiled, good_run),
        backend.store.checkpoint(stale_id, half_stale),
        return_exceptions=True,
    )
    assert isinstance(stale, StaleStepError), stale
    assert not isinstance(good, BaseException), good
    assert await backend.store.node_runs(stale_id) == before
    runs = await backend.store.node_runs(good_id)
    assert [(r.node_id, r.status) for r in runs] == [
        ("t", NodeRunStatus.SUCCEEDED),
        ("a", NodeRunStatus.SUCCEEDED),
        ("b", NodeRunStatus.QUEUED),
    ]


async def test_store_contract_checkpoint_of_an_unknown_execution_is_a_lookup_error(
    backend: Backend,
) -> None:
    with pytest.raises(LookupError):
        await backend.store.checkpoint(
            uuid7(), lambda ex, r: tx.time_out_execution(ex, backend.clock.now())
        )


@pytest.mark.parametrize("assumed", [True, False], ids=["assumed", "locked"])
async def test_store_contract_checkpoint_carries_a_start(backend: Backend, assumed: bool) -> None:
    """A checkpoint carrying a start (a sequential loop's next iteration) writes it in
    its transaction; one whose key another execution holds writes the step alone and
    names the holder. With the execution as the caller saw it (``assumed``) and
    without (PostgreSQL's batched statement, and its locked transaction)."""
    wf_id, compiled = await backend.workflow(CHAIN)
    holder = await backend.start(wf_id, compiled, dedupe_key="held")
    execution_id = await backend.start(wf_id, compiled)
    outcomes = []
    for node_id, key in (("a", "next-1"), ("b", "held")):
        run = await backend.run_of(execution_id, node_id)
        seen = await backend.store.get_execution(execution_id) if assumed else None
        now = backend.clock.now()
        nxt = ExecutionRecord(
            uuid7(), TENANT, wf_id, 1, ExecutionStatus.PENDING, {"type": "loop"}, "loop", now
        )
        start = starts.start_execution(compiled, nxt, "t", {"i": 1}, now)

        follow = FollowingStart(start, key)

        def build(
            ex: ExecutionRecord, reader: Any, run: NodeRun = run, follow: Any = follow
        ) -> Effects:
            fx = tx.after_step(compiled, ex, run, tx.Succeeded({}), reader, backend.clock.now())
            fx.follow = follow
            return fx

        fx = await backend.store.checkpoint(execution_id, build, assumed=seen)
        assert fx.follow is not None
        outcomes.append((nxt.id, fx.follow.taken_by))
    (carried, first), (refused, second) = outcomes
    assert (first, second) == (None, holder)
    ex = await backend.store.get_execution(carried)
    assert ex is not None and ex.status is ExecutionStatus.RUNNING
    assert [r.node_id for r in await backend.store.node_runs(carried)] == ["t", "a"]
    assert await backend.store.get_execution(refused) is None
    assert await backend.store.node_runs(refused) == []
    done = await backend.store.get_execution(execution_id)
    assert done is not None and done.status is ExecutionStatus.SUCCEEDED  # b was written


async def test_store_contract_load_step_and_outputs(backend: Backend) -> None:
    wf_id, compiled = await backend.workflow(CHAIN)
    execution_id = await backend.start(wf_id, compiled)
    a = await backend.run_of(execution_id, "a")
    await backend.succeed(execution_id, compiled, a)
    b = await backend.run_of(execution_id, "b")
    loaded = await backend.store.load_step(b.key, ["a", "t"])
    assert loaded is not None
    assert (loaded.execution.id, loaded.run.node_id, loaded.run.status) == (
        execution_id,
        "b",
        NodeRunStatus.QUEUED,
    )
    assert loaded.outputs["a"] == {"from": "a"}
    assert await backend.store.load_outputs(execution_id, ["a", "b"]) == {"a": {"from": "a"}}
    missing = NodeRun(uuid7(), execution_id, TENANT, "b", 9, NodeRunStatus.QUEUED).key
    assert await backend.store.load_step(missing, []) is None


async def test_store_contract_load_step_many_at_once_each_gets_its_own(backend: Backend) -> None:
    """Steps loaded at the same moment (a fan-out's branches taken from the queue
    together, read in one batch where the store batches) each get their own execution,
    run and outputs; a missing one gets ``None``."""
    wf_id, compiled = await backend.workflow(CHAIN)
    ids = [await backend.start(wf_id, compiled) for _ in range(5)]
    keys = []
    for n, execution_id in enumerate(ids):
        a = await backend.run_of(execution_id, "a")
        if n % 2:  # every other one a step further: its b is queued, with a's output
            await backend.succeed(execution_id, compiled, a)
            keys.append((await backend.run_of(execution_id, "b")).key)
        else:
            keys.append(a.key)
    missing = NodeRun(uuid7(), ids[0], TENANT, "b", 9, NodeRunStatus.QUEUED).key
    loaded = await asyncio.gather(
        *(backend.store.load_step(k, ["a"]) for k in [*keys, missing, *keys])
    )
    assert loaded[len(keys)] is None
    for key, got in zip([*keys, *keys], loaded[: len(keys)] + loaded[len(keys) + 1 :], strict=True):
        assert got is not None
        assert (got.execution.id, got.run.node_id, got.run.attempt) == (
            key.execution_id,
            key.node_id,
            key.attempt,
        )
        assert got.execution.status is ExecutionStatus.RUNNING
        assert got.outputs == ({"a": {"from": "a"}} if key.node_id == "b" else {})


async def test_store_contract_live_runs_of_dead_and_unowned_workers(backend: Backend) -> None:
    wf_id, compiled = await backend.workflow(CHAIN)
    owned = await backend.start(wf_id, compiled, owner="worker-1")
    unowned = await backend.start(wf_id, compiled)
    store = backend.store
    dead = await store.live_runs(alive_owners=["worker-2"])
    assert [(r.execution_id, r.node_id) for r in dead] == [(owned, "a")]
    assert await store.live_runs(alive_owners=["worker-1"]) == []
    later = backend.clock.now() + timedelta(seconds=1)
    old = await store.live_runs(alive_owners=["worker-1"], unowned_older_than=later)
    assert [(r.execution_id, r.node_id) for r in old] == [(unowned, "a")]
    mine = await store.live_runs(alive_owners=[], owner="worker-1", created_before=later)
    assert [r.execution_id for r in mine] == [owned]

    await store.set_owner([r.id for r in mine], None)  # handed back to the queue
    assert await store.live_runs(alive_owners=[]) == []
    handed = await store.live_runs(alive_owners=[], unowned_older_than=later)
    assert sorted(r.execution_id for r in handed) == sorted([owned, unowned])


async def test_store_contract_overdue_executions_are_live_ones_past_their_deadline(
    backend: Backend,
) -> None:
    wf_id, compiled = await backend.workflow(CHAIN)
    now = backend.clock.now()
    late = await backend.start(wf_id, compiled, deadline_at=now - timedelta(seconds=1))
    await backend.start(wf_id, compiled, deadline_at=now + timedelta(hours=1))
    await backend.start(wf_id, compiled)
    assert await backend.store.overdue_executions(now) == [late]


# --- WorkerRegistry and DefinitionSource ---------------------------------------------------


async def test_store_contract_workers_register_beat_and_leave(backend: Backend) -> None:
    workers = backend.workers
    await workers.register("w-1", "worker", "host", 1)
    assert await workers.heartbeat("w-1") is True
    assert [w.id for w in await workers.list_workers()] == ["w-1"]
    await workers.unregister("w-1")
    assert await workers.heartbeat("w-1") is False  # taken for dead: must register again
    assert await workers.list_workers() == []


async def test_store_contract_definitions_by_version(backend: Backend) -> None:
    wf_id, _ = await backend.workflow(CHAIN)
    definition = await backend.definitions.get_definition(wf_id, 1)
    assert [n["id"] for n in definition["nodes"]] == ["t", "a", "b"]
    with pytest.raises(LookupError):
        await backend.definitions.get_definition(wf_id, 2)
    assert await backend.definitions.active_version(TENANT, wf_id) == 1
    assert await backend.definitions.active_version("another-tenant", wf_id) is None

"""The engine on in-memory fakes, and node types for tests: one that records its calls
and fails on demand, one that holds its worker (unlike ``delay``).

Unit tests get a :class:`Harness` from the ``harness`` fixture (``tests/unit/conftest.py``);
integration tests register :func:`registry` in a real runtime to count node calls.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from flowmill.domain.errors import NodeError
from flowmill.domain.execution import ExecutionRecord, NodeRun
from flowmill.engine.control import ControlSettings
from flowmill.engine.engine import Engine, EngineOptions
from flowmill.engine.ports import Job
from flowmill.engine.runner import RunnerOptions
from flowmill.engine.services import NodeServices
from flowmill.nodes.base import NodeConfig, NodeContext, NodeType
from flowmill.nodes.registry import NodeRegistry
from flowmill.queue.local import LocalQueue
from flowmill.testing import (
    InMemoryControlStore,
    InMemoryDefinitions,
    InMemoryExecutionStore,
    InMemoryWorkerRegistry,
)

# A workflow with a delay, a fan-out of three, a join and a branch: ten steps succeed in
# each execution (t, a, wait1, b1, b2, b3, j, c, out, and one of hi/lo). Crash tests run it.
BRANCHY: dict[str, Any] = {
    "name": "crash target",
    "nodes": [
        {"id": "t", "type": "trigger"},
        {"id": "a", "type": "transform", "config": {"mapping": {"n": "{{data.n}}"}}},
        {"id": "wait1", "type": "delay", "config": {"ms": 60}},
        {"id": "b1", "type": "transform", "config": {"mapping": {"b": 1}}},
        {"id": "b2", "type": "transform", "config": {"mapping": {"b": 2}}},
        {"id": "b3", "type": "delay", "config": {"ms": 30}},
        {"id": "j", "type": "merge"},
        {
            "id": "c",
            "type": "conditional",
            "config": {"condition": {"left": "{{trigger.data.n}}", "op": ">", "right": 50}},
        },
        {"id": "hi", "type": "transform", "config": {"mapping": {"side": "hi"}}},
        {"id": "lo", "type": "delay", "config": {"ms": 20}},
        {"id": "out", "type": "response", "config": {"body": {"n": "{{trigger.data.n}}"}}},
    ],
    "edges": [
        {"source": "t", "target": "a"},
        {"source": "a", "target": "wait1"},
        {"source": "wait1", "target": "b1"},
        {"source": "wait1", "target": "b2"},
        {"source": "wait1", "target": "b3"},
        {"source": "b1", "target": "j"},
        {"source": "b2", "target": "j"},
        {"source": "b3", "target": "j"},
        {"source": "j", "target": "c"},
        {"source": "c", "target": "hi", "sourceHandle": "true"},
        {"source": "c", "target": "lo", "sourceHandle": "false"},
        {"source": "hi", "target": "out"},
        {"source": "lo", "target": "out"},
    ],
}

CALLS: list[tuple[str, int, str]] = []  # (node id, attempt, idempotency key); cleared per test


class FlakyConfig(NodeConfig):
    fail_times: int = 0  # fail attempts 1..fail_times
    fail_calls: int = 0  # fail the first fail_calls calls of this node id (any execution)
    retriable: bool = True
    output: Any = None


class FlakyNode(NodeType[FlakyConfig]):
    """Fails its first ``fail_times`` attempts."""

    type_name = "flaky"
    Config = FlakyConfig

    async def execute(self, ctx: NodeContext, config: FlakyConfig) -> Any:
        CALLS.append((ctx.node.id, ctx.attempt, ctx.idempotency_key))
        calls = sum(1 for c in CALLS if c[0] == ctx.node.id)
        if ctx.attempt <= config.fail_times or calls <= config.fail_calls:
            raise NodeError(
                f"attempt {ctx.attempt} failed", type="Flaky", retriable=config.retriable
            )
        return config.output if config.output is not None else {"attempt": ctx.attempt}


class SlowConfig(NodeConfig):
    seconds: float = 1.0


class SlowNode(NodeType[SlowConfig]):
    """Sleeps (holding the worker, unlike delay)."""

    type_name = "slow"
    Config = SlowConfig

    async def execute(self, ctx: NodeContext, config: SlowConfig) -> Any:
        CALLS.append((ctx.node.id, ctx.attempt, ctx.idempotency_key))
        await asyncio.sleep(config.seconds)  # not a wait: the node holds its worker
        return {"slept": config.seconds}


def registry() -> NodeRegistry:
    reg = NodeRegistry.from_entry_points()
    reg.register(FlakyNode)
    reg.register(SlowNode)
    return reg


@dataclass
class Harness:
    engine: Engine
    store: InMemoryExecutionStore
    definitions: InMemoryDefinitions
    control: InMemoryControlStore

    async def run(
        self,
        definition: dict[str, Any],
        data: Any = None,
        *,
        timeout: float = 10,
        workflow_id: str = "wf",
    ) -> tuple[ExecutionRecord, dict[str, NodeRun]]:
        execution_id = await self.start(definition, data, workflow_id=workflow_id)
        ex = await self.engine.wait(execution_id, timeout=timeout)
        return ex, await self.latest(execution_id)

    async def start(
        self,
        definition: dict[str, Any],
        data: Any = None,
        *,
        workflow_id: str = "wf",
        **kwargs: Any,
    ) -> str:
        if (workflow_id, 1) not in self.definitions.versions:
            self.definitions.add(workflow_id, definition)
        return await self.engine.start_execution(
            tenant_id="t1", workflow_id=workflow_id, version=1, data=data, **kwargs
        )

    async def latest(self, execution_id: str) -> dict[str, NodeRun]:
        out: dict[str, NodeRun] = {}
        for r in await self.store.node_runs(execution_id):
            out[r.node_id] = r
        return out


MakeHarness = Callable[..., Awaitable[Harness]]


def wf(nodes: list[dict[str, Any]], edges: list[tuple[str, ...]], **extra: Any) -> dict[str, Any]:
    """A definition from node dicts and (source, target[, handle]) tuples."""
    return {
        "name": "test",
        "nodes": [{"id": "t", "type": "trigger"}, *nodes],
        "edges": [
            {"source": e[0], "target": e[1], **({"sourceHandle": e[2]} if len(e) > 2 else {})}
            for e in edges
        ],
        **extra,
    }


@contextlib.asynccontextmanager
async def open_harness(
    services: NodeServices | None = None, control: ControlSettings | None = None
) -> AsyncIterator[Harness]:
    """The engine on in-memory fakes with its worker running (``services``: what nodes
    get, e.g. a ``FakeHttp`` and ``InMemoryCredentials``; ``control``: limits of loop,
    sub_workflow and wait nodes)."""
    CALLS.clear()
    store = InMemoryExecutionStore()
    signals = InMemoryControlStore(store)
    definitions = InMemoryDefinitions()
    engine = Engine(
        store=store,
        definitions=definitions,
        queue=LocalQueue(),
        registry=registry(),
        services=services or NodeServices(),
        workers=InMemoryWorkerRegistry(),
        options=EngineOptions(
            concurrency=8,
            sweep_interval_s=0.05,
            shutdown_grace_s=1,
            runner=RunnerOptions(announce_after_s=0.05),
        ),
        control_store=signals,
        control_settings=control or ControlSettings(poll_s=5.0),
    )
    async with engine.running():
        yield Harness(engine, store, definitions, signals)


def spy_on_puts(queue: Any, monkeypatch: pytest.MonkeyPatch) -> list[Job]:
    """Record every job put on ``queue`` from now on (they still go), until the test
    ends."""
    put = queue.put
    jobs: list[Job] = []

    async def spy(batch: Sequence[Job]) -> None:
        jobs.extend(batch)
        await put(batch)

    monkeypatch.setattr(queue, "put", spy)
    return jobs


@dataclass
class StartSpy:
    """What an execution store was asked to start, and how (see :func:`spy_on_starts`).

    Attributes:
        batches: The size of each ``start_many``.
        singles: The execution of each ``start``.
        carriers: The execution of each checkpoint that wrote a start it carried.
    """

    batches: list[int] = field(default_factory=list)
    singles: list[str] = field(default_factory=list)
    carriers: list[str] = field(default_factory=list)


def spy_on_starts(store: Any) -> StartSpy:
    """Record the starts ``store`` writes from now on (they are still written): alone,
    in windows, or carried by checkpoints."""
    spy = StartSpy()
    start, start_many, checkpoint = store.start, store.start_many, store.checkpoint

    async def counted(execution: Any, *args: Any, **kwargs: Any) -> Any:
        spy.singles.append(execution.id)
        return await start(execution, *args, **kwargs)

    async def counted_many(starts: Any) -> Any:
        spy.batches.append(len(starts))
        return await start_many(starts)

    async def carrying(execution_id: str, build: Any, **kwargs: Any) -> Any:
        fx = await checkpoint(execution_id, build, **kwargs)
        if fx.follow is not None and fx.follow.taken_by is None:
            spy.carriers.append(execution_id)
        return fx

    store.start, store.start_many, store.checkpoint = counted, counted_many, carrying
    return spy

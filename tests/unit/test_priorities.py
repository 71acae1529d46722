"""Execution priorities: ``settings.priority`` and a start's own ``priority`` order the
queue, higher first, for every step of the execution."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from flowmill.domain.definition import load_definition
from flowmill.domain.errors import DefinitionError
from flowmill.engine.engine import Engine, EngineOptions
from flowmill.engine.runner import RunnerOptions
from flowmill.engine.services import NodeServices
from flowmill.queue.local import LocalQueue
from flowmill.testing import InMemoryDefinitions, InMemoryExecutionStore, InMemoryWorkerRegistry
from tests.engine_support import registry, wf

# Steps that hold the one worker a little: a backlog takes a while to drain. The urgent
# workflow is longer than the backlog's, so its later steps must carry its priority too:
# the queue is first-in first-out within a tenant otherwise, and each of its steps would
# wait for the backlog's steps queued before it.
SHORT = wf([{"id": "a", "type": "slow", "config": {"seconds": 0.01}}], [("t", "a")])
BUSY = wf(
    [
        {"id": "a", "type": "slow", "config": {"seconds": 0.01}},
        {"id": "b", "type": "slow", "config": {"seconds": 0.01}},
        {"id": "c", "type": "slow", "config": {"seconds": 0.01}},
    ],
    [("t", "a"), ("a", "b"), ("b", "c")],
)


async def _one_worker_engine() -> tuple[Engine, InMemoryDefinitions, InMemoryExecutionStore]:
    store, definitions = InMemoryExecutionStore(), InMemoryDefinitions()
    engine = Engine(
        store=store,
        definitions=definitions,
        queue=LocalQueue(),
        registry=registry(),
        services=NodeServices(),
        workers=InMemoryWorkerRegistry(),
        options=EngineOptions(
            concurrency=1,
            sweep_interval_s=0.05,
            shutdown_grace_s=1,
            # Every step through the queue: inline chaining would hide the ordering.
            runner=RunnerOptions(inline=False),
        ),
    )
    return engine, definitions, store


async def _finish_order(urgent: dict[str, Any], backlog: int = 20) -> tuple[int, int]:
    """Start ``backlog`` normal executions, then one more (``urgent``: its workflow's
    settings and start arguments); how many of the backlog finished before and after it."""
    engine, definitions, _ = await _one_worker_engine()
    definitions.add("normal", SHORT)
    definitions.add("urgent", {**BUSY, "settings": urgent.get("settings", {})})
    async with engine.running():
        normal = [
            await engine.start_execution(tenant_id="t1", workflow_id="normal", version=1)
            for _ in range(backlog)
        ]
        first = await engine.start_execution(
            tenant_id="t1", workflow_id="urgent", version=1, priority=urgent.get("priority")
        )
        done = await asyncio.gather(*(engine.wait(e, timeout=30) for e in [*normal, first]))
    assert {d.status.value for d in done} == {"succeeded"}
    finished = done[-1].completed_at
    assert finished is not None
    before = sum(1 for d in done[:-1] if d.completed_at is not None and d.completed_at < finished)
    return before, backlog - before


@pytest.mark.parametrize(
    "urgent",
    [
        pytest.param({"priority": 10}, id="start-priority"),
        pytest.param({"settings": {"priority": 10}}, id="workflow-setting"),
        pytest.param({"settings": {"priority": -5}, "priority": 10}, id="start-overrides-setting"),
    ],
)
async def test_priorities_a_high_priority_execution_overtakes_a_backlog(
    urgent: dict[str, Any],
) -> None:
    before, after = await _finish_order(urgent)
    # The one worker had started at most the first backlog step when it came in.
    assert before <= 1, (before, after)


async def test_priorities_a_low_priority_execution_waits_for_the_backlog() -> None:
    before, after = await _finish_order({"settings": {"priority": -10}})
    assert after == 0, (before, after)


async def test_priorities_equal_priorities_keep_their_order() -> None:
    before, _ = await _finish_order({}, backlog=10)
    assert before == 10  # the longer one, started last, ends last


@pytest.mark.parametrize("value", [101, -101, 1.5, "high", True])
def test_priorities_setting_out_of_range_or_not_a_whole_number_is_refused(value: Any) -> None:
    with pytest.raises(DefinitionError) as caught:
        load_definition({**BUSY, "settings": {"priority": value}})
    assert [i.path for i in caught.value.issues] == ["settings.priority"]


def test_priorities_setting_round_trips_through_the_stored_form() -> None:
    from flowmill.domain.definition import dump_definition

    loaded = load_definition({**BUSY, "settings": {"priority": 7}})
    assert loaded.settings.priority == 7
    assert dump_definition(loaded)["settings"]["priority"] == 7
    assert "priority" not in dump_definition(load_definition(BUSY)).get("settings", {})

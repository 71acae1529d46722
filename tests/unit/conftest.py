"""Unit-test harness: the engine on in-memory fakes, plus test-only node types.

The pieces live in ``tests/engine_support.py``; the names are re-exported here for
modules that still import them from this file.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from flowmill.engine.engine import Engine, EngineOptions
from flowmill.engine.runner import RunnerOptions
from flowmill.engine.services import NodeServices
from flowmill.queue.local import LocalQueue
from flowmill.testing import InMemoryDefinitions, InMemoryExecutionStore, InMemoryWorkerRegistry
from tests.engine_support import (
    CALLS,
    FlakyConfig,
    FlakyNode,
    Harness,
    MakeHarness,
    SlowConfig,
    SlowNode,
    registry,
    wf,
)

__all__ = [
    "CALLS",
    "FlakyConfig",
    "FlakyNode",
    "Harness",
    "MakeHarness",
    "SlowConfig",
    "SlowNode",
    "registry",
    "wf",
]


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    CALLS.clear()
    store = InMemoryExecutionStore()
    definitions = InMemoryDefinitions()
    engine = Engine(
        store=store,
        definitions=definitions,
        queue=LocalQueue(),
        registry=registry(),
        services=NodeServices(),
        workers=InMemoryWorkerRegistry(),
        options=EngineOptions(
            concurrency=8,
            sweep_interval_s=0.05,
            shutdown_grace_s=1,
            runner=RunnerOptions(announce_after_s=0.05),
        ),
    )
    async with engine.running():
        yield Harness(engine, store, definitions)

"""A worker whose database is away as it starts keeps running and sweeps once it is back."""

from __future__ import annotations

from flowmill.engine.engine import Engine, EngineOptions
from flowmill.engine.ports import WorkerInfo
from flowmill.queue.local import LocalQueue
from flowmill.testing import (
    InMemoryDefinitions,
    InMemoryExecutionStore,
    InMemoryWorkerRegistry,
    eventually,
)
from tests.engine_support import registry


class _RestartingDatabase(InMemoryWorkerRegistry):
    """Workers' rows whose first read fails, as PostgreSQL restarting does."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    async def list_workers(self) -> list[WorkerInfo]:
        self.reads += 1
        if self.reads == 1:
            raise ConnectionRefusedError("the database system is starting up")
        return await super().list_workers()


async def test_engine_first_sweep_failing_does_not_end_the_worker() -> None:
    workers = _RestartingDatabase()
    engine = Engine(
        store=InMemoryExecutionStore(),
        definitions=InMemoryDefinitions(),
        queue=LocalQueue(),
        registry=registry(),
        workers=workers,
        options=EngineOptions(sweep_interval_s=0.05, shutdown_grace_s=1),
    )
    async with engine.running():  # raised ConnectionRefusedError before the fix
        await eventually(lambda: workers.reads >= 2, 10, "a periodic sweep after the first")

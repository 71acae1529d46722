"""Wrappers of the engine's ports that time them: the store's transactions and the
sandbox's runs. Each forwards every call unchanged; only the timing is added."""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import datetime
from typing import Any

from flowmill.domain.errors import NodeError
from flowmill.domain.execution import Effects, ExecutionRecord, NodeRun, StepKey
from flowmill.engine.effects import StateReader
from flowmill.engine.ports import (
    DuplicateExecutionError,
    ExecutionStore,
    LimitCounts,
    LoadedStep,
    NewExecution,
)
from flowmill.engine.services import CodeLimits, CodeResult, CodeRunner
from flowmill.observability.metrics import Metrics


class TimedExecutionStore:
    """An :class:`~flowmill.engine.ports.ExecutionStore` whose writes are timed
    (``flowmill_store_commit_seconds{operation=start|checkpoint|promote}``)."""

    def __init__(self, inner: ExecutionStore, metrics: Metrics) -> None:
        self.inner = inner
        self._start = metrics.store_commit.labels("start")
        self._checkpoint = metrics.store_commit.labels("checkpoint")
        self._promote = metrics.store_commit.labels("promote")

    async def start(
        self,
        execution: ExecutionRecord,
        build: Callable[[LimitCounts], Effects],
        *,
        dedupe_key: str | None = None,
        limited: bool = False,
    ) -> Effects:
        t = time.perf_counter()
        try:
            return await self.inner.start(execution, build, dedupe_key=dedupe_key, limited=limited)
        finally:
            self._start.observe(time.perf_counter() - t)

    async def start_many(
        self, starts: Sequence[NewExecution]
    ) -> list[Effects | DuplicateExecutionError]:
        t = time.perf_counter()
        try:
            return await self.inner.start_many(starts)
        finally:
            self._start.observe(time.perf_counter() - t)

    async def checkpoint(
        self,
        execution_id: str,
        build: Callable[[ExecutionRecord, StateReader], Effects],
        *,
        assumed: ExecutionRecord | None = None,
    ) -> Effects:
        t = time.perf_counter()
        try:
            return await self.inner.checkpoint(execution_id, build, assumed=assumed)
        finally:
            self._checkpoint.observe(time.perf_counter() - t)

    async def load_step(self, key: StepKey, references: Collection[str]) -> LoadedStep | None:
        return await self.inner.load_step(key, references)

    async def load_outputs(self, execution_id: str, node_ids: Collection[str]) -> dict[str, Any]:
        return await self.inner.load_outputs(execution_id, node_ids)

    async def get_execution(self, execution_id: str) -> ExecutionRecord | None:
        return await self.inner.get_execution(execution_id)

    async def node_runs(self, execution_id: str) -> list[NodeRun]:
        return await self.inner.node_runs(execution_id)

    async def live_runs(
        self,
        *,
        alive_owners: Collection[str],
        unowned_older_than: datetime | None = None,
        owner: str | None = None,
        created_before: datetime | None = None,
        limit: int = 1000,
    ) -> list[NodeRun]:
        return await self.inner.live_runs(
            alive_owners=alive_owners,
            unowned_older_than=unowned_older_than,
            owner=owner,
            created_before=created_before,
            limit=limit,
        )

    async def set_owner(self, run_ids: Collection[str], owner: str | None) -> None:
        await self.inner.set_owner(run_ids, owner)

    async def overdue_executions(self, now: datetime, limit: int = 100) -> list[str]:
        return await self.inner.overdue_executions(now, limit)

    async def queued_executions(
        self, workflow_id: str | None = None, limit: int = 100, *, tenant_id: str | None = None
    ) -> list[ExecutionRecord]:
        return await self.inner.queued_executions(workflow_id, limit, tenant_id=tenant_id)

    async def promote(
        self, execution_id: str, build: Callable[[ExecutionRecord, LimitCounts], Effects | None]
    ) -> Effects | None:
        t = time.perf_counter()
        try:
            return await self.inner.promote(execution_id, build)
        finally:
            self._promote.observe(time.perf_counter() - t)


_OUTCOMES = {"SandboxTimeout": "timeout", "SandboxMemoryExceeded": "memory"}


class TimedCodeRunner:
    """A :class:`~flowmill.engine.services.CodeRunner` whose runs are timed
    (``flowmill_sandbox_run_seconds{language, outcome}``)."""

    def __init__(self, inner: CodeRunner, metrics: Metrics) -> None:
        self.inner = inner
        self._histogram = metrics.sandbox_run_of

    async def run(
        self, language: str, code: str, scope: Mapping[str, Any], limits: CodeLimits
    ) -> CodeResult:
        t = time.perf_counter()
        outcome = "ok"
        try:
            return await self.inner.run(language, code, scope, limits)
        except NodeError as e:
            # a bounded set of labels: user code may name its own errors anything
            outcome = _OUTCOMES.get(e.type, "error")
            raise
        finally:
            self._histogram(language, outcome).observe(time.perf_counter() - t)

    async def aclose(self) -> None:
        """Close the sandbox underneath."""
        closer = getattr(self.inner, "aclose", None) or getattr(self.inner, "close", None)
        if closer is not None:
            await closer()

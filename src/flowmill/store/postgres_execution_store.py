"""The engine's execution store on PostgreSQL: steps and starts written in batches.

Everything but the gathering of writes is :class:`~flowmill.store.execution_store.
SqlExecutionStore`'s. Here the common step and the unlimited start go to a
:class:`~flowmill.coalesce.Coalescer` that writes what arrives together in one
statement (:mod:`flowmill.store.postgres_batch`); a step that needs other runs'
states, and a limited start, take the locked transaction of the one writer
(:mod:`flowmill.store.writer` through :mod:`flowmill.store.postgres_fast`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection, Sequence

import asyncpg
from sqlalchemy.engine import Connection

from flowmill.clock import Clock
from flowmill.coalesce import Coalescer
from flowmill.domain.execution import Effects, ExecutionRecord, StaleStepError, StepKey
from flowmill.engine.effects import StateReader
from flowmill.engine.ports import DuplicateExecutionError, LimitCounts, LoadedStep, NewExecution
from flowmill.store import postgres_batch as pg_batch
from flowmill.store import postgres_fast as pg_fast
from flowmill.store import writer
from flowmill.store.database import PostgresDatabase
from flowmill.store.execution_store import SqlExecutionStore
from flowmill.store.postgres_batch import WriteItem, WriteResult


class PostgresExecutionStore(SqlExecutionStore):
    """Executions and node runs in PostgreSQL."""

    db: PostgresDatabase

    def __init__(self, db: PostgresDatabase, clock: Clock | None = None) -> None:
        super().__init__(db, clock)
        engine = db.engine
        self._plans = pg_batch.Plans()
        # Batches are filled from tenants in turn: a flood of starts or steps does not
        # push another tenant's one write past the next flush.
        self._writes: Coalescer[WriteItem, WriteResult] = Coalescer(
            self._write_batch,
            key=lambda item: item.fx.execution_id,
            share=lambda item: item.fx.tenant_id,
        )
        self._loads: Coalescer[StepKey, LoadedStep | None] = Coalescer(
            lambda keys: pg_batch.load(engine, keys, self._plans)
        )

    def _driver(self, conn: Connection) -> writer.Driver:
        return pg_fast.driver(conn)

    async def _write_batch(self, items: list[WriteItem]) -> list[WriteResult | BaseException]:
        engine, now = self.db.engine, self.clock.now()
        try:
            return list(await pg_batch.write(engine, items, now, self._plans))
        except asyncpg.PostgresError as e:
            if len(items) == 1 or isinstance(e, pg_fast.CONNECTION_LOST):
                raise
        # One item's error (or a deadlock between two batches) must not fail the
        # others: each alone, so that only the culprit gets the error.
        out: list[WriteResult | BaseException] = []
        for item in items:
            try:
                out.extend(await pg_batch.write(engine, [item], now, self._plans))
            except Exception as e:
                out.append(e)
        return out

    async def start(
        self,
        execution: ExecutionRecord,
        build: Callable[[LimitCounts], Effects],
        *,
        dedupe_key: str | None = None,
        limited: bool = False,
    ) -> Effects:
        if limited:  # counted under the workflow's and the tenant's locks
            return await super().start(execution, build, dedupe_key=dedupe_key, limited=True)
        fx = build(LimitCounts())
        result = await self._writes.submit(WriteItem(fx, dedupe_key=dedupe_key))
        if result.done:
            return fx
        existing = await self._holder_of(execution.tenant_id, dedupe_key)
        if existing is None:  # pragma: no cover - the insert would say
            raise RuntimeError(f"execution {execution.id} was not written")
        raise DuplicateExecutionError(existing)

    async def start_many(
        self, starts: Sequence[NewExecution]
    ) -> list[Effects | DuplicateExecutionError]:
        # Started together, the starts go in one flush of the write batcher.
        results = await asyncio.gather(
            *(self.start(s.execution, s.build, dedupe_key=s.dedupe_key) for s in starts),
            return_exceptions=True,
        )
        out: list[Effects | DuplicateExecutionError] = []
        for r in results:
            if isinstance(r, (Effects, DuplicateExecutionError)):
                out.append(r)
            else:
                raise r
        return out

    async def checkpoint(
        self,
        execution_id: str,
        build: Callable[[ExecutionRecord, StateReader], Effects],
        *,
        assumed: ExecutionRecord | None = None,
    ) -> Effects:
        if assumed is not None:
            fx = pg_fast.quick_effects(assumed, build)
            if fx is not None and pg_batch.fits(fx):
                result = await self._writes.submit(WriteItem(fx, assumed=assumed.status))
                if result.done:
                    follow = fx.follow
                    if follow is not None and not result.follow_done:
                        # Not written with the step: another execution holds its key.
                        holder = await self._holder_of(fx.tenant_id, follow.dedupe_key)
                        if holder is None:  # pragma: no cover - the insert would say
                            raise RuntimeError("a carried start was neither written nor taken")
                        follow.taken_by = holder
                    return fx
                if result.ok:  # the run had moved on: a duplicate finished it
                    raise StaleStepError(fx.run_updates[0].run_id)
                # The execution changed under us: decide again under its lock.
        return await pg_fast.checkpoint(self.db.engine, execution_id, build, self.clock.now)

    async def load_step(self, key: StepKey, references: Collection[str]) -> LoadedStep | None:
        loaded = await self._loads.submit(key)
        if loaded is not None and references:
            loaded.outputs = await self.load_outputs(key.execution_id, references)
        return loaded

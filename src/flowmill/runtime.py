"""Assembles a deployment from settings: database, stores, queue, services, engine.

Nothing above the ports knows which deployment it runs in; this is the one place
that chooses.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import structlog

from flowmill.blobs.build import build_blob_store
from flowmill.blobs.store import BlobStore
from flowmill.clock import Clock, SystemClock
from flowmill.config import Settings
from flowmill.credentials.oauth2 import CredentialAccess
from flowmill.credentials.vault import CredentialVault
from flowmill.engine.engine import Engine, EngineOptions
from flowmill.engine.news import NewsChannel
from flowmill.engine.ports import ExecutionStore, JobQueue, TriggerHandlers
from flowmill.engine.services import NodeServices
from flowmill.net.http import GuardedHttpClient
from flowmill.net.settings import HttpSettings
from flowmill.nodes.registry import NodeRegistry
from flowmill.observability.instrumented import TimedCodeRunner, TimedExecutionStore
from flowmill.observability.logcontext import context_middleware
from flowmill.observability.metrics import Metrics
from flowmill.observability.tracing import build_tracer
from flowmill.queue.local import LocalQueue
from flowmill.quotas import QuotaBook
from flowmill.realtime.news import FeedNews, LocalFeedNews
from flowmill.sandbox.sandbox import Sandbox
from flowmill.store import migrate
from flowmill.store.control import SqlControlStore
from flowmill.store.database import Database, PostgresDatabase, connect
from flowmill.store.execution_store import (
    SqlExecutionStore,
    SqliteExecutionStore,
    SqlWorkerRegistry,
)
from flowmill.store.quotas import QuotaStore
from flowmill.store.workflows import WorkflowRepository
from flowmill.triggers.parts import TriggerParts, build_trigger_parts
from flowmill.wiring import node_extras

if TYPE_CHECKING:
    from flowmill.queue.bullmq import BullMQQueue

log = structlog.get_logger("flowmill")


@dataclass
class Runtime:
    """The assembled parts of one process."""

    settings: Settings
    db: Database
    workflows: WorkflowRepository
    executions: SqlExecutionStore
    engine: Engine
    queue: JobQueue
    services: NodeServices
    credentials: CredentialVault
    triggers: TriggerParts
    quotas: QuotaBook
    # which tenants have new events, in this process and (distributed) the others
    feed_news: FeedNews = field(default_factory=LocalFeedNews)
    metrics: Metrics | None = None  # this process's instruments (FLOWMILL_METRICS_ENABLED)

    @property
    def blobs(self) -> BlobStore | None:
        """The store of large values (docs/payloads.md), if on."""
        return self.services.blobs


def build_queue(
    settings: Settings, quotas: QuotaBook | None = None, clock: Clock | None = None
) -> JobQueue:
    """The in-process queue, or BullMQ when a Redis URL is configured.

    ``clock`` is the engine's: the in-process queue holds delayed jobs by it.
    """
    if settings.redis_url:
        return bullmq_queue(settings)
    if quotas is None:
        return LocalQueue(clock=clock)
    return LocalQueue(
        max_per_tenant=lambda t: quotas.concurrency(t, "concurrent_steps"), clock=clock
    )


def bullmq_queue(settings: Settings) -> BullMQQueue:
    """The BullMQ queue of ``FLOWMILL_REDIS_URL`` with the ``FLOWMILL_QUEUE_*`` settings.

    Raises:
        ValueError: No Redis URL is set.
    """
    if not settings.redis_url:
        raise ValueError("FLOWMILL_REDIS_URL is not set")
    from flowmill.extras import require

    for module in ("redis", "bullmq", "msgpack"):  # the redis extra
        require(module)
    from flowmill.queue.bullmq import BullMQQueue
    from flowmill.queue.bullmq_options import BullMQOptions, Retention

    kept = Retention(settings.queue_keep_completed, settings.queue_keep_completed_s)
    options = BullMQOptions(
        prefix=settings.queue_prefix,
        remove_on_complete=kept,
        remove_on_fail=Retention(settings.queue_keep_failed, settings.queue_keep_failed_s),
        lock_duration_ms=int(settings.queue_lock_s * 1000),
        stalled_interval_ms=int(settings.queue_stalled_check_s * 1000),
        trigger_queue=settings.queue_trigger,
        node_queue=settings.queue_node,
    )
    return BullMQQueue(settings.redis_url, options)


def build_feed_news(settings: Settings) -> FeedNews:
    """News of new events: in-process, or over Redis pub/sub when distributed."""
    if not settings.redis_url:
        return LocalFeedNews()
    from flowmill.realtime.news import RedisFeedNews

    return RedisFeedNews(settings.redis_url, settings.queue_prefix)


def build_news(settings: Settings) -> NewsChannel | None:
    """News of ended executions between processes: Redis pub/sub when distributed."""
    if not settings.redis_url:
        return None
    from flowmill.queue.redis_news import RedisNews

    return RedisNews(settings.redis_url, settings.queue_prefix)


async def build_services(
    settings: Settings,
    clock: Clock,
    credentials: CredentialVault | None = None,
    quotas: QuotaBook | None = None,
) -> NodeServices:
    """Services handed to nodes: outbound HTTP (SSRF-guarded), the sandbox, the clock."""
    http = GuardedHttpClient(
        HttpSettings(
            allow_hosts=tuple(settings.http_allow_hosts),
            allow_cidrs=tuple(settings.http_allow_cidrs),
            max_response_bytes=settings.http_max_response_bytes,
        )
    )
    access = CredentialAccess(credentials, http, clock) if credentials is not None else None
    extras = node_extras(settings, db=credentials.db if credentials is not None else None)
    if not settings.sandbox_enabled:
        return NodeServices(
            http=http, clock=clock, credentials=access, network=http.guard, **extras
        )
    sandbox_settings = settings.sandbox_settings()
    cap = (lambda t: quotas.concurrency(t, "sandbox_concurrency")) if quotas else None
    sandbox = await Sandbox.create(sandbox_settings, cap)
    info = sandbox.describe()
    if "warning" in info:
        # The server says so at start: Python code nodes are refused (or unjailed).
        log.warning("sandbox isolation is reduced", detail=info["warning"])
    log.debug("sandbox ready", **{k: v for k, v in info.items() if k != "warning"})
    return NodeServices(
        http=http,
        expressions=sandbox,
        code=sandbox,
        credentials=access,
        network=http.guard,
        clock=clock,
        **extras,
        code_limits=sandbox_settings.default_limits,
        max_code_limits=sandbox_settings.max_limits,
    )


@dataclass
class Stores:
    """The repositories alone, for commands that run no engine."""

    db: Database
    workflows: WorkflowRepository
    credentials: CredentialVault


@contextlib.asynccontextmanager
async def open_store(settings: Settings | None = None) -> AsyncIterator[Stores]:
    """Open (and migrate) the database without starting sandboxes or queues."""
    settings = settings or Settings()
    db = connect(
        settings.database,
        pool_size=settings.db_pool_size,
        sqlite_synchronous=settings.sqlite_synchronous,
    )
    try:
        await _migrate(db, settings)
        yield Stores(db, WorkflowRepository(db), CredentialVault(db, settings.keyring()))
    finally:
        await db.close()


def execution_store_for(db: Database, clock: Clock | None = None) -> SqlExecutionStore:
    """The execution store of ``db``'s kind, chosen once, as the runtime is assembled."""
    if isinstance(db, PostgresDatabase):
        # Imported here: it needs asyncpg (the postgres extra), and the embedded
        # default runs without it.
        from flowmill.store.postgres_execution_store import PostgresExecutionStore

        return PostgresExecutionStore(db, clock)
    return SqliteExecutionStore(db, clock)


async def _migrate(db: Database, settings: Settings) -> None:
    if settings.auto_migrate:
        before, after = await migrate.upgrade(db)
        if before != after:
            log.info("database migrated", before=before, after=after)
    elif not await migrate.is_current(db):
        raise RuntimeError("the database schema is out of date; run `flowmill db upgrade` first")


@contextlib.asynccontextmanager
async def open_runtime(
    settings: Settings | None = None,
    *,
    kind: str = "embedded",
    clock: Clock | None = None,
    registry: NodeRegistry | None = None,
    queue: JobQueue | None = None,
) -> AsyncIterator[Runtime]:
    """Open the database (migrating it if allowed) and assemble the engine.

    The engine's worker is not started; use ``runtime.engine.running()`` for that.
    """
    settings = settings or Settings()
    clock = clock or SystemClock()
    # Each resource is closed by the stack, registered right after it is opened: an
    # error anywhere (here or in the caller's block) closes what was opened, in reverse.
    async with contextlib.AsyncExitStack() as opened:
        db = connect(
            settings.database,
            pool_size=settings.db_pool_size,
            sqlite_synchronous=settings.sqlite_synchronous,
        )
        opened.push_async_callback(db.close)
        await _migrate(db, settings)
        workflows = WorkflowRepository(db, clock)
        executions = execution_store_for(db, clock)
        vault = CredentialVault(db, settings.keyring(), clock)
        quotas = QuotaBook(settings.quota_defaults(), QuotaStore(db, clock).all_overrides)
        await quotas.refresh()
        services = await build_services(settings, clock, vault, quotas)
        services.blobs = build_blob_store(settings, db, clock)
        opened.push_async_callback(_close_services, services)
        # not `queue or ...`: an empty LocalQueue has len() 0 and would be replaced
        q = queue if queue is not None else build_queue(settings, quotas, clock)
        opened.push_async_callback(q.close)
        engine_store: ExecutionStore = executions
        if settings.faults:
            engine_store, q = _with_faults(settings.faults, executions, q)
        news = build_news(settings)
        if news is not None:
            opened.push_async_callback(news.close)
        metrics: Metrics | None = None
        if settings.metrics_enabled:
            metrics = Metrics(tenant_label=settings.metrics_tenant_label)
        if metrics is not None and services.code is not None:
            services.code = TimedCodeRunner(services.code, metrics)
        tracer = build_tracer(settings.otel_endpoint) if settings.otel_enabled else None
        if tracer is not None:
            # flushes what is left to export
            opened.push_async_callback(asyncio.to_thread, tracer.close)
        # filled by the trigger side below: it needs the engine, the engine needs it
        handlers = TriggerHandlers()
        engine = Engine(
            store=TimedExecutionStore(engine_store, metrics) if metrics else engine_store,
            middlewares=[
                context_middleware,
                *([metrics.node_middleware] if metrics else []),
                *([tracer.node_middleware] if tracer else []),
            ],
            definitions=workflows,
            queue=q,
            registry=registry or NodeRegistry.from_entry_points(),
            services=services,
            workers=SqlWorkerRegistry(db, clock),
            clock=clock,
            options=EngineOptions(
                concurrency=settings.concurrency,
                sweep_interval_s=settings.sweep_interval_s,
                dead_after_s=settings.dead_worker_after_s,
                orphan_grace_s=settings.orphan_grace_s,
                shutdown_grace_s=settings.shutdown_grace_s,
                max_output_bytes=settings.max_output_bytes,
                wait_fallback_s=settings.wait_fallback_s,
            ),
            kind=kind,
            news=news,
            control_store=SqlControlStore(db),
            control_settings=settings.control_settings(),
            resume_key=settings.resume_key(),
            execution_cap=quotas.execution_cap,
            trigger_handlers=handlers,
        )
        parts = build_trigger_parts(
            settings=settings,
            db=db,
            engine=engine,
            handlers=handlers,
            workflows=workflows,
            clock=clock,
            vault=vault,
            quotas=quotas,
            blobs=services.blobs,
        )
        opened.push_async_callback(parts.ingress.close)
        feed_news = build_feed_news(settings)
        opened.push_async_callback(feed_news.close)
        engine.hub.subscribe(feed_news.committed)
        if metrics is not None:
            _instrument(metrics, engine, q, parts)
        if tracer is not None:
            engine.hub.subscribe(tracer.committed)
        yield Runtime(
            settings, db, workflows, executions, engine, q, services, vault, parts, quotas,
            feed_news, metrics,
        )  # fmt: skip


def _with_faults(
    spec: str, store: ExecutionStore, queue: JobQueue
) -> tuple[ExecutionStore, JobQueue]:
    """The engine's store and queue with faults injected (test mode, ``FLOWMILL_FAULTS``)."""
    import random

    from flowmill.faults import QUEUE_CALLS, STORE_CALLS, FaultPlan, inject

    plan = FaultPlan.parse(spec)
    seed = plan.seed if plan.seed is not None else random.SystemRandom().randrange(2**32)
    log.warning("FAULTS ARE INJECTED ON PURPOSE (test mode)", spec=spec, seed=seed)
    return (
        inject(store, STORE_CALLS, plan.store, plan, seed),
        inject(queue, QUEUE_CALLS, plan.queue, plan, seed + 1),
    )


def _instrument(metrics: Metrics, engine: Engine, queue: JobQueue, parts: TriggerParts) -> None:
    """Let ``metrics`` hear of commits, webhook calls and queue waits."""
    engine.hub.subscribe(metrics.committed)
    parts.events.listeners.append(metrics.webhook_event)
    if isinstance(queue, LocalQueue):
        queue.wait_listeners.append(metrics.queue_waited)
    else:
        from flowmill.queue.bullmq import BullMQQueue

        if isinstance(queue, BullMQQueue):
            queue.wait_listeners.append(metrics.queue_waited)


async def _close_services(services: NodeServices) -> None:
    for part in (services.http, services.code, services.blobs):
        closer = getattr(part, "aclose", None) or getattr(part, "close", None)
        if closer is not None:
            await closer()

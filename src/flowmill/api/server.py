"""``flowmill serve``: migrate, bootstrap the first key, serve the API with the worker.

One process, one event loop: uvicorn serves the app while the engine's worker (unless
``worker=False``) runs steps beside it. SIGTERM or Ctrl-C stops taking connections,
lets open requests finish, then stops the worker within the shutdown grace period.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Collection, Generator, Sequence
from dataclasses import dataclass

import uvicorn

from flowmill.api.app import build_context, close_app, create_app
from flowmill.api.deps import ApiContext
from flowmill.background import running_background
from flowmill.config import Settings
from flowmill.constants import DEFAULT_TENANT
from flowmill.domain.execution import StepKey
from flowmill.engine.ports import Job, JobHandler, JobInfo, StepJob
from flowmill.runtime import open_runtime


@dataclass(frozen=True)
class Bootstrap:
    """What a first start created."""

    tenant_id: str
    key: str


async def bootstrap(ctx: ApiContext) -> Bootstrap | None:
    """On a database without any API key, create the default tenant and its first key.

    Returns:
        The new key (to show once), or ``None`` when keys exist already.
    """
    if await ctx.keys.count() > 0:
        return None
    await ctx.tenants.ensure(DEFAULT_TENANT, "Default tenant")
    new = await ctx.keys.create(DEFAULT_TENANT, "first key (created by flowmill serve)")
    return Bootstrap(DEFAULT_TENANT, new.secret)


def _base_url(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else host  # noqa: S104 - naming, not binding
    if ":" in shown:
        shown = f"[{shown}]"
    return f"http://{shown}:{port}"


def first_key_message(first: Bootstrap, base_url: str) -> list[str]:
    """The lines shown when the first key is created; the key is the last word of
    its own line so scripts can pick it up."""
    return [
        f"Created tenant {first.tenant_id!r} and its first API key. It is shown only "
        "this once: store it now (more keys: flowmill keys create).",
        f"API key: {first.key}",
        f'Try it: curl -H "Authorization: Bearer {first.key}" {base_url}/api/workflows',
    ]


class HandOffQueue:
    """The queue of an API process without a worker and without Redis.

    Jobs are not kept: nothing here would ever take them, so holding them would only
    grow memory. The database is the source of truth: the steps stay committed,
    owned by this process's engine, which never registers as a worker, so a
    ``flowmill worker`` sharing the database adopts them on its next sweep.
    """

    @property
    def in_process(self) -> bool:
        return True

    async def put(self, jobs: Sequence[Job]) -> None:
        return None

    async def present(self, jobs: Collection[StepJob]) -> set[StepKey]:
        return set()

    async def inspect(self, job_id: str) -> list[JobInfo]:
        return []

    async def consume(self, handler: JobHandler, *, concurrency: int) -> None:
        raise RuntimeError("an API process without a worker takes no jobs")

    async def stop(self, grace_s: float = 10.0) -> None:
        return None

    async def close(self) -> None:
        return None


class _Server(uvicorn.Server):
    """uvicorn's server without re-raising the stop signal after shutdown: the worker
    and the database still have to close after it returns."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        sigs = (signal.SIGINT, signal.SIGTERM)
        original = {sig: signal.signal(sig, self.handle_exit) for sig in sigs}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)


async def serve(
    settings: Settings,
    *,
    host: str,
    port: int,
    worker: bool = True,
    scheduler: bool = True,
    say: Callable[[str], None] = print,
) -> None:
    """Run the API (and the worker, and a trigger-service replica) until SIGTERM or
    Ctrl-C. Any number of processes may run the trigger service: one leads."""
    queue = None if worker or settings.redis_url else HandOffQueue()
    async with open_runtime(settings, kind="embedded" if worker else "api", queue=queue) as rt:
        ctx = build_context(rt)
        app = create_app(rt, context=ctx)
        base = _base_url(host, port)
        first = await bootstrap(ctx)
        mode = "API + worker" if worker else "API only (run `flowmill worker` for steps)"
        say(f"Flowmill on {base} ({mode}); web app at {base}/, API docs at {base}/docs")
        if first is not None:
            for line in first_key_message(first, base):
                say(line)
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level=settings.log_level,
            # JSON logs: uvicorn's records go through the root handler (flowmill.logs)
            log_config=None if settings.log_format == "json" else uvicorn.config.LOGGING_CONFIG,
            access_log=settings.log_level == "debug",
            lifespan="off",
            timeout_graceful_shutdown=max(1, int(settings.shutdown_grace_s)),
            server_header=False,
        )
        server = _Server(config)
        async with contextlib.AsyncExitStack() as stack:
            # the projector replica runs wherever a trigger-service replica may
            await stack.enter_async_context(
                running_background(rt, kind="serve", projector=scheduler)
            )
            if worker:
                await stack.enter_async_context(rt.engine.running())
            if scheduler:
                await stack.enter_async_context(rt.triggers.service.running())
            try:
                await server.serve()
            finally:
                await close_app(app)

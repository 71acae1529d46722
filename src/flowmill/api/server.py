"""``flowmill serve``: migrate, bootstrap the first key, serve the API with the worker.

One process, one event loop: uvicorn serves the app while the engine's worker (unless
``worker=False``) runs steps beside it. SIGTERM or Ctrl-C stops taking connections,
lets open requests finish, then stops the worker within the shutdown grace period.
"""

from __future__ import annotations

import contextlib
import errno
import signal
import socket
import threading
from collections.abc import Callable, Collection, Generator, Sequence
from dataclasses import dataclass
from typing import Any

import uvicorn

from flowmill.api.app import build_context, close_app, create_app
from flowmill.api.deps import ApiContext
from flowmill.background import running_background
from flowmill.config import Settings
from flowmill.constants import DEFAULT_TENANT
from flowmill.domain.errors import FlowmillError
from flowmill.domain.execution import StepKey
from flowmill.engine.ports import Job, JobHandler, JobInfo, StepJob
from flowmill.runtime import Runtime, open_runtime


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


class PortBusy(FlowmillError, OSError):
    """The address to serve on is taken (or not ours to take)."""


def bind(host: str, port: int) -> socket.socket:
    """Bind the listening socket before anything is announced, so that a busy port is
    one clear error before any banner, migration or key.

    Raises:
        PortBusy: Another process listens there, or the address is not this host's.
    """
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
    except OSError as e:
        raise PortBusy(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            raise PortBusy(
                f"port {port} on {host} is already in use (another Flowmill, or another "
                f"server); stop it, or choose another port: flowmill serve --port {port + 1}"
            ) from None
        raise PortBusy(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    sock.set_inheritable(True)
    return sock


def banner(settings: Settings, base_url: str, mode: str, first: Bootstrap | None) -> list[str]:
    """What ``serve`` prints once it listens: version, URL, database, how to get a key."""
    from flowmill import __version__

    lines = [
        f"Flowmill {__version__} on {base_url} ({mode}); web app at {base_url}/, "
        f"API docs at {base_url}/docs",
        f"Database: {_shown_database(settings.database)}",
    ]
    if first is not None:
        lines += first_key_message(first, base_url)
    else:
        lines.append(
            "API keys were created before (they are shown only once); make another with: "
            f"flowmill keys create --tenant {DEFAULT_TENANT}"
        )
    return lines


def _shown_database(url: str) -> str:
    if url.startswith("sqlite:///"):
        return f"SQLite file {url[len('sqlite:///') :]}"
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    return url.replace(f":{parts.password}@", ":***@", 1)


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
    freeze_heap: bool = False,
) -> None:
    """Run the API (and the worker, and a trigger-service replica) until SIGTERM or
    Ctrl-C. Any number of processes may run the trigger service: one leads.

    ``freeze_heap`` is for a process that serves until it exits (``flowmill serve``):
    see :func:`flowmill.background.running_background`."""
    queue = None if worker or settings.redis_url else HandOffQueue()
    sock = bind(host, port)  # first: a busy port fails before anything is said or done
    with contextlib.closing(sock):
        async with open_runtime(settings, kind="embedded" if worker else "api", queue=queue) as rt:
            await _serve(rt, settings, sock, host, port, worker, scheduler, say, freeze_heap)


def uvicorn_config(app: Any, settings: Settings, host: str, port: int) -> uvicorn.Config:
    """How ``flowmill serve`` runs uvicorn with ``app``."""
    debug = settings.log_level == "debug"
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        # uvicorn's own lines repeat the banner; its warnings and errors still show
        log_level=settings.log_level if debug else "warning",
        # its records go through the root handler, in Flowmill's format (flowmill.logs)
        log_config=None,
        access_log=debug,
        lifespan="off",
        timeout_graceful_shutdown=max(1, int(settings.shutdown_grace_s)),
        server_header=False,
        ws_per_message_deflate=settings.socket_compression,
    )


async def _serve(
    rt: Runtime,
    settings: Settings,
    sock: socket.socket,
    host: str,
    port: int,
    worker: bool,
    scheduler: bool,
    say: Callable[[str], None],
    freeze_heap: bool,
) -> None:
    ctx = build_context(rt)
    app = create_app(rt, context=ctx)
    base = _base_url(host, port)
    first = await bootstrap(ctx)
    mode = "API + worker" if worker else "API only (run `flowmill worker` for steps)"
    config = uvicorn_config(app, settings, host, port)
    server = _Server(config)
    async with contextlib.AsyncExitStack() as stack:
        # the projector replica runs wherever a trigger-service replica may
        await stack.enter_async_context(
            running_background(rt, kind="serve", projector=scheduler, freeze_heap=freeze_heap)
        )
        if worker:
            await stack.enter_async_context(rt.engine.running())
        if scheduler:
            await stack.enter_async_context(rt.triggers.service.running())
        for line in banner(settings, base, mode, first):
            say(line)  # the socket is bound: the URL is true
        try:
            await server.serve(sockets=[sock])
        finally:
            await close_app(app)

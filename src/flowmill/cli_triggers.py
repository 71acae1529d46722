"""CLI command of the trigger service: ``flowmill scheduler``. Thin, like ``cli.py``."""

from __future__ import annotations

import asyncio
import signal
import sys
from typing import Annotated

import typer

from flowmill.config import Settings


def scheduler(
    tick: Annotated[
        float | None, typer.Option(help="Longest pause between rounds, seconds.")
    ] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(help="Serve /health, /ready, /metrics on this port (FLOWMILL_METRICS_PORT)."),
    ] = None,
) -> None:
    """Run a trigger-service replica: schedules, event triggers, lost-webhook recovery.

    Run as many as you like (on PostgreSQL or SQLite): they elect one leader through a
    lease in the database, and every firing starts exactly one execution anyway. With
    FLOWMILL_REDIS_URL the executions' steps go to BullMQ workers; without, to the
    workers sharing the database. Stops cleanly on SIGTERM or Ctrl-C.
    """
    settings = Settings()
    if tick is not None:
        settings.scheduler_tick_s = tick
    if metrics_port is not None:
        settings.metrics_port = metrics_port
    asyncio.run(_scheduler(settings))


async def _scheduler(settings: Settings) -> None:
    from flowmill.api.server import HandOffQueue
    from flowmill.background import running_background
    from flowmill.runtime import open_runtime

    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    # Without Redis the steps it starts stay in the database for the workers to adopt.
    queue = None if settings.redis_url else HandOffQueue()
    async with open_runtime(settings, kind="scheduler", queue=queue) as rt:
        service = rt.triggers.service
        async with running_background(
            rt, kind="scheduler", projector=True, ops_port=settings.metrics_port, freeze_heap=True
        ) as bg:
            sys.stderr.write(f"trigger service replica {service.holder} running\n")
            if bg.ops_port:
                sys.stderr.write(f"health and metrics on port {bg.ops_port}\n")
            async with service.running():
                await stopping.wait()
        sys.stderr.write("trigger service stopped\n")


def register(app: typer.Typer) -> None:
    """Add the trigger service's commands to the ``flowmill`` command."""
    app.command()(scheduler)

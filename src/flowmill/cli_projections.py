"""CLI commands of the read models: ``flowmill projections rebuild|status``. Thin."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from flowmill.config import Settings

projections_app = typer.Typer(
    help="Read models (analytics): rebuild them from the event store, show their lag.",
    no_args_is_help=True,
)
err = Console(stderr=True)


@projections_app.command("rebuild")
def rebuild(
    name: Annotated[
        str | None,
        typer.Argument(
            help="workflow_summary, node_performance, webhook_analytics or "
            "workflow_activity (default: all)."
        ),
    ] = None,
    batch: Annotated[int | None, typer.Option(help="Events per transaction.")] = None,
) -> None:
    """Empty read models and replay the event store into them from sequence 0.

    Safe while the service runs: the projector applies each event once whoever runs it;
    the analytics show partial figures until the replay ends. Stopped half-way, it goes
    on from where it was on the next start of any projector.
    """
    from flowmill.projections.projector import Projector, UnknownProjectionError, projections_named
    from flowmill.runtime import open_store

    settings = Settings()
    try:
        chosen = projections_named([name] if name else None)
    except UnknownProjectionError as e:
        err.print(f"[red]error:[/red] {e}")
        raise typer.Exit(2) from None

    async def _go() -> int:
        async with open_store(settings) as store:
            projector = Projector(store.db, chosen, batch_size=batch or settings.projector_batch)
            return await projector.rebuild()

    started = time.monotonic()
    events = asyncio.run(_go())
    took = time.monotonic() - started
    names = ", ".join(p.name for p in chosen)
    Console().print(f"rebuilt {names}: {events} events in {took:.2f} s")


@projections_app.command("status")
def status(
    tenant: Annotated[str | None, typer.Option(help="Only this tenant.")] = None,
) -> None:
    """Show each read model's position and lag behind each tenant's events."""
    from flowmill.projections.projector import Projector
    from flowmill.runtime import open_store

    async def _go() -> list[tuple[str, str, int, int, int, float]]:
        async with open_store(Settings()) as store:
            lags = await Projector(store.db).lag(tenant)
        return [(g.projection, g.tenant_id, g.position, g.head, g.events, g.seconds) for g in lags]

    table = Table(title="read models", title_justify="left")
    for column in ("projection", "tenant", "position", "head", "behind", "seconds"):
        table.add_column(column, justify="left" if column in ("projection", "tenant") else "right")
    for row in asyncio.run(_go()):
        table.add_row(*(str(v) for v in row))
    Console().print(table)


def register(app: typer.Typer) -> None:
    """Add the ``projections`` commands to the ``flowmill`` command."""
    app.add_typer(projections_app, name="projections")

"""``flowmill prune``: apply the retention policies now (docs/retention.md)."""

from __future__ import annotations

import asyncio
from dataclasses import fields
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from flowmill import jsonutil
from flowmill.blobs.build import build_blob_store
from flowmill.clock import SystemClock
from flowmill.config import Settings
from flowmill.retention.pruner import VACUUM_PAGES, PruneCounts, Pruner, PruneReport

SQLITE_SHARED_PAUSE_S = 0.15
"""Pause between batches of a prune sharing a SQLite file with a server process."""
SQLITE_SHARED_VACUUM_PAGES = 500
"""Pages given back per transaction then (2 MB: a short hold of the write lock)."""
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


async def _prune(
    settings: Settings, tenant: str | None, dry_run: bool, vacuum: bool, quiet: bool
) -> PruneReport:
    from flowmill.runtime import open_store
    from flowmill.store.database import SqliteDatabase

    def _progress(tenant_id: str, kind: str, counts: PruneCounts) -> None:
        if not quiet:
            verb = "would delete" if dry_run else "deleted"
            err.print(f"{tenant_id}: {kind} — {verb} {getattr(counts, kind)} so far")

    async with open_store(settings) as stores:
        pause_s = settings.retention_pause_s
        vacuum_pages = VACUUM_PAGES
        if isinstance(stores.db, SqliteDatabase):
            # A server may be writing to the same file from another process. A writer
            # kept waiting by SQLite's busy handler retries only every 100 ms: a shorter
            # pause between batches starves it (measured: ack p99 28x quiet with 10 ms,
            # bench/retention.py).
            pause_s = max(pause_s, SQLITE_SHARED_PAUSE_S)
            vacuum_pages = SQLITE_SHARED_VACUUM_PAGES
        blobs = build_blob_store(settings, stores.db, SystemClock())
        pruner = Pruner(
            stores.db,
            settings.retention(),
            batch=settings.retention_batch,
            pause_s=pause_s,
            vacuum_pages=vacuum_pages,
            blobs=blobs,
        )
        try:
            report = await pruner.prune(tenant_id=tenant, dry_run=dry_run, progress=_progress)
        finally:
            if blobs is not None:
                await blobs.close()
        if vacuum and not dry_run and isinstance(stores.db, SqliteDatabase):
            if not quiet:
                err.print("rewriting the SQLite file with incremental auto-vacuum (VACUUM)…")
            await stores.db.vacuum_incremental()
            report.free_pages_left = 0
        return report


def prune(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count what would be deleted; delete nothing.")
    ] = False,
    tenant: Annotated[str | None, typer.Option(help="Only this tenant.")] = None,
    vacuum: Annotated[
        bool,
        typer.Option(
            "--vacuum",
            help="SQLite: afterwards rewrite the file (VACUUM, exclusive lock) with "
            "incremental auto-vacuum, so later prunes shrink it as they go. Once, for "
            "files made before retention existed; best with the server stopped.",
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress lines.")] = False,
) -> None:
    """Delete finished executions (with node runs and logs), webhook events and bodies,
    and store events older than the retention policy (FLOWMILL_RETENTION_*), in small
    batches. Running and waiting executions and undispatched events are never deleted."""
    try:
        settings = Settings()
        settings.retention()
    except ValueError as e:
        err.print(f"[red]error:[/red] {e}")
        raise typer.Exit(2) from None
    report = asyncio.run(_prune(settings, tenant, dry_run, vacuum, quiet or as_json))
    kinds = [f.name for f in fields(PruneCounts)]
    if as_json:
        out.print_json(
            jsonutil.dumps(
                {
                    "dry_run": report.dry_run,
                    "tenants": {t: vars(c) for t, c in report.tenants.items()},
                    "total": vars(report.total),
                    "free_pages_left": report.free_pages_left,
                }
            )
        )
        return
    table = Table(title="would be deleted (dry run)" if dry_run else "deleted")
    table.add_column("tenant")
    for kind in kinds:
        table.add_column(kind.replace("_", " "), justify="right")
    for tenant_id, counts in report.tenants.items():
        table.add_row(tenant_id, *(str(getattr(counts, k)) for k in kinds))
    out.print(table)


def register(app: typer.Typer) -> None:
    """Add ``flowmill prune`` to the command line."""
    app.command("prune")(prune)

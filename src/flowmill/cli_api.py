"""CLI commands of the HTTP API: ``serve``, ``tenants ...``, ``keys ...``. Thin, like
``cli.py``, which adds them to the ``flowmill`` command."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from flowmill.config import Settings

if TYPE_CHECKING:
    from flowmill.store.api_keys import ApiKeyStore
    from flowmill.store.tenants import TenantStore

T = TypeVar("T")
tenants_app = typer.Typer(help="Manage tenants (each has its own workflows and keys).")
keys_app = typer.Typer(help="Manage API keys (sent as `Authorization: Bearer KEY`).")
err = Console(stderr=True)


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def serve(
    host: Annotated[
        str | None, typer.Option(help="Address to listen on (default FLOWMILL_HOST, 127.0.0.1).")
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="Port to listen on (default FLOWMILL_PORT, 3000).")
    ] = None,
    no_worker: Annotated[
        bool,
        typer.Option(
            "--no-worker",
            help="Serve the API only; steps run in `flowmill worker` processes "
            "(the distributed layout).",
        ),
    ] = False,
    no_scheduler: Annotated[
        bool,
        typer.Option(
            "--no-scheduler",
            help="Do not run a trigger-service replica (schedules, event triggers) here; "
            "run `flowmill scheduler` instead.",
        ),
    ] = False,
) -> None:
    """Serve the HTTP API, with the engine's worker in the same process.

    Applies database migrations first. On a database without API keys it creates the
    default tenant and prints its first key, once. Docs at /docs. Stops cleanly on
    SIGTERM or Ctrl-C.
    """
    from flowmill.api.server import serve as run_server

    settings = Settings()
    asyncio.run(
        run_server(
            settings,
            host=host or settings.host,
            port=port or settings.port,
            worker=not no_worker,
            scheduler=not no_scheduler,
            say=_say,
            freeze_heap=True,
        )
    )


@dataclass
class _Stores:
    tenants: TenantStore
    keys: ApiKeyStore


def _with_stores(fn: Callable[[_Stores], Awaitable[T]]) -> T:
    """Run ``fn`` with the tenant and key stores over the configured (migrated)
    database; no engine is assembled, so these commands start quickly."""
    from flowmill.store import migrate
    from flowmill.store.api_keys import ApiKeyStore
    from flowmill.store.database import connect
    from flowmill.store.tenants import TenantStore
    from flowmill.store.workflows import WorkflowRepository

    settings = Settings()

    async def _go() -> T:
        db = connect(settings.database, sqlite_synchronous=settings.sqlite_synchronous)
        try:
            if settings.auto_migrate:
                await migrate.upgrade(db)
            stores = _Stores(TenantStore(db, WorkflowRepository(db)), ApiKeyStore(db))
            return await fn(stores)
        finally:
            await db.close()

    return asyncio.run(_go())


@tenants_app.command("create")
def tenants_create(
    name: Annotated[str, typer.Argument(help="Display name, e.g. 'Acme Corp'.")],
    tenant_id: Annotated[
        str | None,
        typer.Option(
            "--id",
            help="Choose the id (default: the name as a slug plus a random suffix, "
            "acme-corp-3f9a1c2b, hard to guess since the seed webhook route carries it).",
        ),
    ] = None,
) -> None:
    """Create a tenant and print its id (the last line of the output).

    Running it again with the same name does not make a second tenant: it says which
    one exists (give --id to make another tenant of that name on purpose).
    """

    async def _go(ctx: _Stores) -> tuple[str, bool]:
        if tenant_id is None:
            same = [t for t in await ctx.tenants.all() if t.name.lower() == name.lower()]
            if same:
                return same[0].id, False
        return (await ctx.tenants.create(name, tenant_id)).id, True

    try:
        created, new = _with_stores(_go)
    except ValueError as e:
        err.print(f"[red]error:[/red] {e}")
        raise typer.Exit(2) from e
    if not new:
        err.print(
            f"[red]error:[/red] a tenant named {name!r} exists already: {created} "
            "(give --id to make another one of that name)"
        )
        raise typer.Exit(2)
    err.print(
        f"created tenant {name!r}; give it a key with: flowmill keys create --tenant {created}"
    )
    _say(created)


@tenants_app.command("list")
def tenants_list() -> None:
    """List tenants."""

    async def _go(ctx: _Stores) -> list[tuple[str, str, str]]:
        return [(t.id, t.name, t.created_at.isoformat()) for t in await ctx.tenants.all()]

    table = Table("id", "name", "created")
    for row in _with_stores(_go):
        table.add_row(*row)
    Console().print(table)


@keys_app.command("create")
def keys_create(
    tenant: Annotated[str, typer.Option(help="Tenant id the key acts for.")],
    name: Annotated[str, typer.Option(help="A label to recognise the key by.")] = "",
) -> None:
    """Create an API key and print it as the last line. It is not shown again."""

    async def _go(ctx: _Stores) -> str:
        return (await ctx.keys.create(tenant, name)).secret

    try:
        key = _with_stores(_go)
    except LookupError as e:
        err.print(f"[red]error:[/red] no tenant {tenant!r} (flowmill tenants list)")
        raise typer.Exit(2) from e
    err.print(f"API key for tenant {tenant!r} (store it now; it is shown only once):")
    _say(key)


@keys_app.command("list")
def keys_list(tenant: Annotated[str, typer.Option(help="Tenant id.")]) -> None:
    """List a tenant's keys (prefixes only; secrets are never stored)."""

    async def _go(ctx: _Stores) -> list[tuple[str, ...]]:
        return [
            (
                k.id,
                k.prefix,
                k.name,
                k.created_at.isoformat(timespec="seconds"),
                k.last_used_at.isoformat(timespec="seconds") if k.last_used_at else "",
                "revoked" if k.revoked_at else "active",
            )
            for k in await ctx.keys.for_tenant(tenant)
        ]

    table = Table("id", "prefix", "name", "created", "last used", "state")
    for row in _with_stores(_go):
        table.add_row(*row)
    Console().print(table)


@keys_app.command("revoke")
def keys_revoke(
    key: Annotated[str, typer.Argument(help="Key id or prefix (fm_xxxxxxxx).")],
) -> None:
    """Revoke a key: requests with it are refused from now on."""

    async def _go(ctx: _Stores) -> bool:
        return await ctx.keys.revoke(key) is not None

    if not _with_stores(_go):
        err.print(f"[red]error:[/red] no key {key!r} (flowmill keys list --tenant ID)")
        raise typer.Exit(2)
    _say(f"revoked {key}")


def register(app: typer.Typer) -> None:
    """Add the API's commands to the ``flowmill`` command."""
    app.command()(serve)
    app.add_typer(tenants_app, name="tenants")
    app.add_typer(keys_app, name="keys")

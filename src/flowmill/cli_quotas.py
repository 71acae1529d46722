"""``flowmill quotas``: show and change tenants' quotas in the local database."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from flowmill import jsonutil
from flowmill.config import Settings
from flowmill.quotas import QUOTA_FIELDS

quotas_app = typer.Typer(
    help="Show and change tenants' quotas (0 means unlimited; see docs/quotas.md).",
    no_args_is_help=True,
)
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


async def _overrides(tenant: str) -> dict[str, int] | None:
    from flowmill.runtime import open_store
    from flowmill.store.quotas import QuotaStore
    from flowmill.store.tables import tenants

    async with open_store() as stores:
        q = tenants.select().where(tenants.c.id == tenant)
        if await stores.db.read(lambda c: c.execute(q).first()) is None:
            return None
        return await QuotaStore(stores.db).overrides(tenant)


def _show(tenant: str, overrides: dict[str, int], as_json: bool) -> None:
    effective = Settings().quota_defaults().with_overrides(overrides)
    if as_json:
        out.print_json(jsonutil.dumps({"tenant_id": tenant, "overrides": overrides,
                                       "effective": effective.__dict__}))  # fmt: skip
        return
    table = Table(title=f"quotas of {tenant}")
    for column in ("quota", "in effect", "source"):
        table.add_column(column)
    for name in QUOTA_FIELDS:
        value = getattr(effective, name)
        source = "this tenant" if name in overrides else "default (FLOWMILL_TENANT_*)"
        table.add_row(name, "unlimited" if value == 0 else str(value), source)
    out.print(table)


@quotas_app.command("show")
def show(
    tenant: Annotated[str, typer.Argument(help="Tenant id.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show a tenant's quotas: each one in effect, and where it comes from."""
    overrides = asyncio.run(_overrides(tenant))
    if overrides is None:
        err.print(f"[red]error:[/red] no tenant {tenant!r} (flowmill tenants list)")
        raise typer.Exit(2)
    _show(tenant, overrides, as_json)


@quotas_app.command("set")
def set_quotas(
    tenant: Annotated[str, typer.Argument(help="Tenant id.")],
    assignments: Annotated[
        list[str],
        typer.Argument(
            help="NAME=VALUE pairs (0: unlimited) or NAME=default to clear, e.g. "
            "api_requests_per_minute=600 concurrent_steps=4."
        ),
    ],
) -> None:
    """Change a tenant's quotas; every process sees the change within seconds."""
    from flowmill.runtime import open_store
    from flowmill.store.quotas import QuotaStore

    changes: dict[str, int | None] = {}
    for item in assignments:
        name, sep, raw = item.partition("=")
        if not sep or name not in QUOTA_FIELDS:
            err.print(f"[red]error:[/red] {item!r}: write NAME=VALUE; names: "
                      f"{', '.join(QUOTA_FIELDS)}")  # fmt: skip
            raise typer.Exit(2)
        if raw == "default":
            changes[name] = None
        elif raw.isdigit():
            changes[name] = int(raw)
        else:
            err.print(f"[red]error:[/red] {item!r}: the value is a whole number >= 0 or "
                      "'default'")  # fmt: skip
            raise typer.Exit(2)

    async def _go() -> dict[str, int] | None:
        async with open_store() as stores:
            try:
                return await QuotaStore(stores.db).update(tenant, changes)
            except LookupError:
                return None

    overrides = asyncio.run(_go())
    if overrides is None:
        err.print(f"[red]error:[/red] no tenant {tenant!r} (flowmill tenants list)")
        raise typer.Exit(2)
    _show(tenant, overrides, as_json=False)


def register(app: typer.Typer) -> None:
    """Add ``flowmill quotas`` to the command line."""
    app.add_typer(quotas_app, name="quotas")

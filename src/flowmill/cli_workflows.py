"""``flowmill workflows list / export / import / push``: definitions in and out.

``list``, ``export`` and ``import`` work on the local database; ``push`` sends a file to
a running server through its HTTP API (``--url``, key from ``FLOWMILL_API_KEY``).
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from flowmill import jsonutil
from flowmill.cli_local import (
    JsonOption,
    Local,
    TenantOption,
    fail,
    open_local,
    styled,
    table_console,
    when,
)
from flowmill.constants import DEFAULT_TENANT
from flowmill.domain.errors import DefinitionError

app = typer.Typer(
    help="Workflows: list them, export one to a file, import or push a file.",
    no_args_is_help=True,
)
FileArg = Annotated[
    Path, typer.Argument(help="Workflow definition (.json, .yaml or .yml).", dir_okay=False)
]


@app.command("list")
def list_(
    tenant: Annotated[str | None, TenantOption] = None,
    as_json: Annotated[bool, JsonOption] = False,
) -> None:
    """List workflows: id, name, status, latest and active version, last change."""

    async def _go(local: Local) -> list[dict[str, Any]]:
        from flowmill.store.workflow_queries import WorkflowFilter

        rows = []
        for tenant_id in await local.tenants(tenant):
            items, _ = await local.workflow_queries.page(tenant_id, WorkflowFilter(), 200)
            rows += [
                {
                    "id": w.id,
                    "tenant_id": w.tenant_id,
                    "name": w.name,
                    "status": str(w.status),
                    "latest_version": w.latest_version,
                    "active_version": w.active_version,
                    "updated_at": w.updated_at,
                }
                for w in items
            ]
        return rows

    rows = _with_local(_go)
    if as_json:
        typer.echo(jsonutil.dumps(rows))
        return
    if not rows:
        Console(stderr=True, soft_wrap=True).print(
            "no workflows yet; add one with: flowmill workflows import FILE", highlight=False
        )
        return
    from rich.table import Table

    table = Table(box=None, pad_edge=False, show_edge=False)
    for col in ("id", "name", "tenant", "status", "latest", "active", "updated (UTC)"):
        table.add_column(col, no_wrap=col == "id")
    for r in rows:
        table.add_row(
            r["id"],
            r["name"],
            r["tenant_id"],
            styled(r["status"]),
            f"v{r['latest_version']}",
            f"v{r['active_version']}" if r["active_version"] else "",
            when(r["updated_at"]),
        )
    table_console().print(table)


@app.command()
def export(
    workflow: Annotated[str, typer.Argument(help="Workflow id, or its exact name.")],
    version: Annotated[
        int | None, typer.Option(help="Which version (default: the latest).")
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write to this file (default: print it)."),
    ] = None,
    tenant: Annotated[str | None, TenantOption] = None,
) -> None:
    """Export a workflow's definition as JSON, ready for `workflows import` or `push`."""

    async def _go(local: Local) -> dict[str, Any]:
        record = await _find(local, workflow, tenant)
        v = await local.workflow_queries.version(
            record.tenant_id, record.id, version or record.latest_version
        )
        if v is None or v.definition is None:
            raise fail(f"workflow {record.name!r} has no version {version}")
        document = {k: val for k, val in v.definition.items() if k != "tenant_id"}
        if record.active_version == v.version:
            document["status"] = "active"
        return document

    document = _with_local(_go)
    text = jsonutil.dumpb(document, indent=True).decode()
    if output is None:
        typer.echo(text)
        return
    output.write_text(text + "\n")
    Console(stderr=True, highlight=False, soft_wrap=True).print(f"wrote {output}")


@app.command("import")
def import_(
    file: FileArg,
    tenant: Annotated[
        str | None,
        typer.Option("--tenant", "-t", help="Owner (default: the file's tenant_id, or default)."),
    ] = None,
    publish: Annotated[
        bool, typer.Option("--publish", help="Make this version the active one.")
    ] = False,
) -> None:
    """Store a workflow file in the local database: a new workflow, or a new version of
    the tenant's workflow with the same name (none when nothing changed). The file is
    validated first; every problem is listed."""
    from flowmill.files import read_definition

    try:
        document = read_definition(file)
    except DefinitionError as e:
        raise fail(str(e), code=2) from None

    async def _go(local: Local) -> tuple[str, int, bool, str]:
        from flowmill.domain.definition import dump_definition, load_definition

        _check(document, file)
        workflow = load_definition(document)
        tenant_id = tenant or workflow.tenant_id or DEFAULT_TENANT
        await local.workflows.ensure_tenant(tenant_id)
        canonical = dump_definition(workflow)
        activate = publish or workflow.status == "active"
        existing = await local.workflows.find_by_name(tenant_id, workflow.name)
        if existing is None:
            record = await local.workflows.create(tenant_id, canonical, publish=activate)
            return record.id, record.latest_version, True, tenant_id
        record, added = await local.workflows.add_version(
            tenant_id, existing.id, canonical, publish=activate
        )
        return record.id, record.latest_version, added, tenant_id

    workflow_id, version, added, tenant_id = _with_local(_go)
    what = f"version {version}" if added else f"unchanged (version {version})"
    Console(stderr=True, highlight=False, soft_wrap=True).print(
        f"{escape(str(file))}: workflow {workflow_id} of tenant {escape(tenant_id)}, {what}"
        + (", published" if publish else "")
    )
    typer.echo(workflow_id)


@app.command()
def push(
    file: FileArg,
    url: Annotated[
        str,
        typer.Option(
            envvar="FLOWMILL_URL", help="The server (FLOWMILL_URL), e.g. http://host:3000."
        ),
    ] = "http://127.0.0.1:3000",
    key: Annotated[
        str | None,
        typer.Option(
            envvar="FLOWMILL_API_KEY", help="API key (FLOWMILL_API_KEY).", show_default=False
        ),
    ] = None,
    publish: Annotated[bool, typer.Option("--publish", help="Publish the pushed version.")] = False,
) -> None:
    """Send a workflow file to a running server: a new version of the workflow with the
    same name there, or a new workflow. The server validates it and lists every problem."""
    from flowmill.files import read_definition

    if not key:
        raise fail(
            "no API key: pass --key or set FLOWMILL_API_KEY",
            "serve printed one on its first start; make another with: "
            "flowmill keys create --tenant default",
            code=2,
        )
    try:
        document = read_definition(file)
    except DefinitionError as e:
        raise fail(str(e), code=2) from None
    result = asyncio.run(_push(url.rstrip("/"), key, document, publish=publish))
    Console(stderr=True, highlight=False, soft_wrap=True).print(
        f"{escape(str(file))}: workflow {result['id']} on {escape(url)}, "
        f"version {result.get('latest_version', '?')}" + (", published" if publish else "")
    )
    typer.echo(result["id"])


async def _push(url: str, key: str, document: dict[str, Any], *, publish: bool) -> Any:
    import httpx

    headers = {"Authorization": f"Bearer {key}"}
    try:
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as client:
            name = str(document.get("name", ""))
            found = await client.get("/api/workflows", params={"search": name, "limit": 200})
            _raise_for(found, url)
            same = [w for w in found.json()["items"] if w["name"] == name]
            if same:
                body = {k: v for k, v in document.items() if k not in ("id", "version", "active")}
                body.pop("status", None)
                sent = await client.put(f"/api/workflows/{same[0]['id']}", json=body)
            else:
                sent = await client.post("/api/workflows", json=document)
            _raise_for(sent, url)
            result = sent.json()
            if publish:
                published = await client.post(f"/api/workflows/{result['id']}/publish")
                _raise_for(published, url)
                result = published.json()
            return result
    except httpx.TransportError as e:
        raise fail(
            f"cannot reach {url}: {e or type(e).__name__}",
            "is `flowmill serve` running there? (--url or FLOWMILL_URL)",
        ) from None


def _raise_for(response: Any, url: str) -> None:
    if response.is_success:
        return
    if response.status_code == 401:
        raise fail(f"{url} refused the API key (401)", "check FLOWMILL_API_KEY")
    try:
        error = response.json()["error"]
    except (ValueError, KeyError, TypeError):
        raise fail(f"{url} answered {response.status_code}: {response.text[:200]}") from None
    err_console = Console(stderr=True, highlight=False, soft_wrap=True)
    err_console.print(f"[red]error:[/red] {escape(str(error.get('message')))}")
    for d in error.get("details") or []:
        if isinstance(d, dict):
            err_console.print(
                f"  [bold]{escape(str(d.get('field')))}[/bold]: {escape(str(d.get('message')))}"
            )
    raise typer.Exit(1)


# --- helpers --------------------------------------------------------------------------


def _check(document: dict[str, Any], file: Path) -> None:
    """Validate as ``flowmill validate`` does; print every problem and exit 2."""
    from flowmill.cli import print_issues
    from flowmill.config import Settings
    from flowmill.validation import check_document

    report = check_document(document, expressions_enabled=Settings().sandbox_enabled)
    if report.issues:
        print_issues(report.issues, file)
        raise typer.Exit(2)


async def _find(local: Local, ref: str, tenant: str | None) -> Any:
    if re.fullmatch(r"[0-9a-f-]{36}", ref):
        owner = tenant or await local.tenant_of_workflow(ref)
        if owner is not None:
            record = await local.workflows.get(owner, ref)
            if record is not None:
                return record
    for tenant_id in await local.tenants(tenant):
        record = await local.workflows.find_by_name(tenant_id, ref)
        if record is not None:
            return record
    raise fail(f"no workflow {ref!r} in this database", "list them with: flowmill workflows list")


def _with_local(fn: Any) -> Any:
    async def _go() -> Any:
        async with open_local() as local:
            return await fn(local)

    return asyncio.run(_go())

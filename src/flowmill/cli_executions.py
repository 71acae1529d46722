"""``flowmill executions list / show / follow / logs``: what ran, live or after the fact.

Thin, like ``cli.py``: reads through :mod:`flowmill.cli_local`. ``follow`` polls the
database, so it follows an execution that any process runs (``serve``, a worker, a
``run`` in another terminal).
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Annotated, Any

import typer
from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape

from flowmill import jsonutil
from flowmill.cli_local import (
    JsonOption,
    Local,
    TenantOption,
    fail,
    log_text,
    node_lines,
    nodes_table,
    open_local,
    print_logs,
    styled,
    table_console,
    took,
    when,
)
from flowmill.domain.execution import ExecutionRecord, NodeRun
from flowmill.store.queries import ExecutionFilter

app = typer.Typer(
    help="Executions in the local database: list them, show one, follow one live, read its logs.",
    no_args_is_help=True,
)
IdArg = Annotated[str, typer.Argument(help="Execution id (from `flowmill executions list`).")]
UrlOption = Annotated[
    str | None,
    typer.Option(
        "--url",
        envvar="FLOWMILL_URL",
        help="Read from this server's API instead of the local database (FLOWMILL_URL; "
        "the key in FLOWMILL_API_KEY).",
        show_default=False,
    ),
]
_POLL_S = 0.3


@app.command("list")
def list_(
    tenant: Annotated[str | None, TenantOption] = None,
    workflow: Annotated[
        str | None, typer.Option("--workflow", "-w", help="Only this workflow's (its id).")
    ] = None,
    status: Annotated[
        list[str] | None,
        typer.Option(
            "--status", "-s", help="Only in this status (repeat for several): succeeded, failed…"
        ),
    ] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", help="How many, newest first.")] = 20,
    as_json: Annotated[bool, JsonOption] = False,
    url: UrlOption = None,
) -> None:
    """List the newest executions: id, workflow, status, trigger, start, duration."""

    async def _go(local: Local) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        names: dict[tuple[str, str], str] = {}
        f = ExecutionFilter(workflow_id=workflow, statuses=tuple(status or ()))
        for tenant_id in await local.tenants(tenant):
            items, _ = await local.executions.page(tenant_id, f, limit)
            for x in items:
                key = (tenant_id, x.workflow_id)
                if key not in names:
                    record = await local.workflows.get(tenant_id, x.workflow_id)
                    names[key] = record.name if record is not None else x.workflow_id
                rows.append(
                    {
                        "id": x.id,
                        "tenant_id": tenant_id,
                        "workflow_id": x.workflow_id,
                        "workflow": names[key],
                        "version": x.version,
                        "status": x.status,
                        "trigger_type": x.trigger_type,
                        "created_at": x.created_at,
                        "started_at": x.started_at,
                        "completed_at": x.completed_at,
                    }
                )
        rows.sort(key=lambda r: r["id"], reverse=True)  # ids are time-ordered
        return rows[:limit]

    if url:
        rows = _with_remote(url, lambda remote: remote.executions(workflow, status or [], limit))
    else:
        rows = _with_local(_go)
    if as_json:
        typer.echo(jsonutil.dumps(rows))
        return
    if not rows:
        Console(stderr=True, soft_wrap=True).print(
            "no executions yet; run one with: flowmill run WORKFLOW.json", highlight=False
        )
        return
    from rich.table import Table

    table = Table(box=None, pad_edge=False, show_edge=False)
    for col in ("id", "workflow", "status", "trigger", "started (UTC)", "took"):
        table.add_column(col, no_wrap=col == "id")
    for r in rows:
        table.add_row(
            r["id"],
            f"{r['workflow']} v{r['version']}",
            styled(r["status"]),
            r["trigger_type"],
            when(r["started_at"] or r["created_at"]),
            took(r["started_at"], r["completed_at"]),
        )
    table_console().print(table)


@app.command()
def show(
    execution_id: IdArg, as_json: Annotated[bool, JsonOption] = False, url: UrlOption = None
) -> None:
    """Show one execution: status, timing, each node (with `not run` for those it never
    reached), the nodes' log lines, the output or the error."""

    async def _go(local: Local) -> _Snapshot:
        return await _snapshot(local, execution_id)

    if url:

        async def _remote(remote: Any) -> _Snapshot:
            execution, runs, definition = await remote.detail(execution_id)
            lines = await remote.logs(execution_id, None)
            logs_ = [{k: x[k] for k in ("node_id", "level", "message")} for x in lines]
            return _Snapshot(execution, runs, definition, logs_)

        snap = _with_remote(url, _remote)
    else:
        snap = _with_local(_go)
    if as_json:
        typer.echo(jsonutil.dumps(snap.as_json()))
        return
    console = table_console()
    console.print(snap.header())
    console.print(snap.table())
    print_logs(console, snap.logs)
    _print_end(console, snap.execution)


@app.command()
def follow(
    execution_id: IdArg,
    timeout: Annotated[
        float | None, typer.Option(help="Stop following after this many seconds.")
    ] = None,
) -> None:
    """Follow an execution live until it ends: each node's state and the log lines as
    they come. Exit status 0 when it succeeded, 1 when it failed or was cancelled, 3 when
    --timeout passed first."""
    code = asyncio.run(_follow(execution_id, timeout))
    raise typer.Exit(code)


@app.command()
def logs(
    execution_id: IdArg,
    node: Annotated[str | None, typer.Option("--node", help="Only this node's lines.")] = None,
    as_json: Annotated[bool, JsonOption] = False,
    url: UrlOption = None,
) -> None:
    """Print an execution's log lines (`console.log`, `print`, node messages), oldest
    first."""

    async def _go(local: Local) -> list[dict[str, Any]]:
        tenant_id = await _tenant(local, execution_id)
        out: list[dict[str, Any]] = []
        after = None
        while True:
            page, more = await local.executions.logs(
                tenant_id, execution_id, after, 1000, node_id=node
            )
            out += [
                {
                    "timestamp": x.timestamp,
                    "node_id": x.node_id,
                    "attempt": x.attempt,
                    "level": x.level,
                    "message": x.message,
                }
                for x in page
            ]
            if not more or not page:
                return out
            after = page[-1].id

    if url:
        lines = _with_remote(url, lambda remote: remote.logs(execution_id, node))
    else:
        lines = _with_local(_go)
    if as_json:
        typer.echo(jsonutil.dumps(lines))
        return
    if not lines:
        Console(stderr=True, soft_wrap=True).print("no log lines", highlight=False)
        return
    console = Console(highlight=False)
    width = max(len(str(x["node_id"] or "")) for x in lines)
    for x in lines:
        console.print(
            f"[dim]{x['timestamp'].strftime('%H:%M:%S')}[/dim]", log_text(x, width), sep=""
        )


# --- helpers --------------------------------------------------------------------------


def _with_local(fn: Any) -> Any:
    async def _go() -> Any:
        async with open_local() as local:
            return await fn(local)

    return asyncio.run(_go())


def _with_remote(url: str, fn: Any) -> Any:
    from flowmill.cli_remote import Remote

    async def _go() -> Any:
        remote = Remote(url)
        try:
            return await fn(remote)
        finally:
            await remote.close()

    return asyncio.run(_go())


async def _tenant(local: Local, execution_id: str) -> str:
    tenant_id = await local.tenant_of_execution(execution_id)
    if tenant_id is None:
        raise fail(
            f"no execution {execution_id} in this database",
            "list them with: flowmill executions list",
        )
    return tenant_id


class _Snapshot:
    """An execution, its node runs, its definition and its logs, read together."""

    def __init__(
        self,
        execution: ExecutionRecord,
        runs: list[NodeRun],
        definition: dict[str, Any],
        logs: list[dict[str, Any]],
    ) -> None:
        self.execution = execution
        self.runs = runs
        self.definition = definition
        self.logs = logs
        self.lines = node_lines(definition, execution, runs)

    def header(self) -> str:
        x = self.execution
        name = escape(str(self.definition.get("name", x.workflow_id)))
        color = {"succeeded": "green", "failed": "red", "cancelled": "red"}.get(
            x.status.value, "yellow"
        )
        took_ = took(x.started_at, x.completed_at)
        return (
            f"execution [bold]{x.id}[/bold] [{color}]{x.status.value}[/{color}]"
            + (f" in {took_}" if took_ else "")
            + f"\nworkflow  {name} v{x.version} ({x.workflow_id}), tenant {escape(x.tenant_id)}"
            + f"\ntrigger   {escape(x.trigger_type)}, started {when(x.started_at or x.created_at)}"
            " UTC"
        )

    def table(self) -> Any:
        return nodes_table(self.lines)

    def as_json(self) -> dict[str, Any]:
        x = self.execution
        return {
            "execution_id": x.id,
            "tenant_id": x.tenant_id,
            "workflow_id": x.workflow_id,
            "version": x.version,
            "status": x.status.value,
            "trigger_type": x.trigger_type,
            "created_at": x.created_at,
            "started_at": x.started_at,
            "completed_at": x.completed_at,
            "output": x.output,
            "error": x.error,
            "nodes": {
                line.node_id: {
                    "type": line.type,
                    "status": line.status,
                    "attempts": line.attempts,
                    "time": line.time,
                }
                for line in self.lines
            },
            "logs": self.logs,
        }


async def _snapshot(local: Local, execution_id: str) -> _Snapshot:
    tenant_id = await _tenant(local, execution_id)
    detail = await local.executions.detail(tenant_id, execution_id)
    if detail is None:  # pragma: no cover - deleted between the two reads
        raise fail(f"no execution {execution_id} in this database")
    execution, runs = detail
    definition = await local.workflows.get_definition(execution.workflow_id, execution.version)
    lines, _ = await local.executions.logs(tenant_id, execution_id, None, 10_000)
    logs_ = [{"node_id": x.node_id, "level": x.level, "message": x.message} for x in lines]
    return _Snapshot(execution, runs, definition, logs_)


def _print_end(console: Console, x: ExecutionRecord) -> None:
    if x.error:
        console.print(
            f"[red]{escape(str(x.error.get('type')))}: {escape(str(x.error.get('message')))}"
            + (f" (node {escape(str(x.error['node_id']))})" if x.error.get("node_id") else "")
            + "[/red]"
        )
    if x.output is not None:
        console.print_json(jsonutil.dumps(x.output))


async def _follow(execution_id: str, timeout_s: float | None) -> int:
    console = Console(highlight=False)
    tty = sys.stdout.isatty()
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    async with open_local() as local:
        snap = await _snapshot(local, execution_id)
        shown_logs = 0
        seen: dict[str, str] = {}
        live = Live(console=console, refresh_per_second=8, transient=False) if tty else None
        if live is not None:
            live.start()
        try:
            while True:
                for line in snap.logs[shown_logs:]:
                    console.print(log_text(line))
                shown_logs = len(snap.logs)
                if live is not None:
                    live.update(Group(snap.header(), snap.table()))
                else:
                    for node in snap.lines:  # a line per change, for pipes and CI logs
                        if seen.get(node.node_id) != node.status and node.status != "pending":
                            seen[node.node_id] = node.status
                            console.print(
                                f"{node.node_id}  {node.status}"
                                + (f"  {node.time}" if node.time else "")
                            )
                if snap.execution.status.terminal:
                    break
                if deadline is not None and time.monotonic() > deadline:
                    if live is not None:
                        live.stop()
                        live = None
                    console.print(
                        f"still {snap.execution.status.value} after {timeout_s} s; "
                        f"follow again with: flowmill executions follow {execution_id}"
                    )
                    return 3
                await asyncio.sleep(_POLL_S)  # not a wait: polling the database
                snap = await _snapshot(local, execution_id)
        finally:
            if live is not None:
                live.stop()
    if not tty:
        console.print(snap.header())
    _print_end(console, snap.execution)
    return 0 if snap.execution.status.value == "succeeded" else 1

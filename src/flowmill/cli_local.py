"""What the daily CLI commands share: the local database, tenant lookup, rendering.

The commands read the configured database directly (``FLOWMILL_DATABASE_URL``, or the
embedded SQLite file) as its administrator: without ``--tenant`` a list covers every
tenant and an execution is found by its id whatever its tenant.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from flowmill.config import Settings
from flowmill.domain.execution import ExecutionRecord, NodeRun
from flowmill.progress import human_duration
from flowmill.store.database import Database
from flowmill.store.queries import ExecutionQueries
from flowmill.store.tables import workflow_executions, workflows
from flowmill.store.workflow_queries import WorkflowQueries
from flowmill.store.workflows import WorkflowRepository

err = Console(stderr=True, soft_wrap=True, highlight=False)

STATUS_STYLE = {
    "succeeded": "green",
    "failed": "red",
    "cancelled": "red",
    "timed_out": "red",
    "running": "yellow",
    "retrying": "yellow",
    "waiting": "magenta",
    "queued": "cyan",
    "pending": "dim",
    "skipped": "dim",
    "not run": "dim",
}

TenantOption = typer.Option(
    "--tenant", "-t", help="Only this tenant's (default: every tenant in the database)."
)
JsonOption = typer.Option("--json", help="Print JSON instead of a table.")


def fail(message: str, hint: str | None = None, code: int = 1) -> typer.Exit:
    """Print ``error: message`` (and a hint) on stderr; the exit to raise."""
    err.print(f"[red]error:[/red] {escape(message)}")
    if hint:
        err.print(f"[dim]{escape(hint)}[/dim]")
    return typer.Exit(code)


@dataclass
class Local:
    """The local database's read side and workflow repository."""

    db: Database
    workflows: WorkflowRepository
    executions: ExecutionQueries
    workflow_queries: WorkflowQueries

    async def tenants(self, only: str | None) -> list[str]:
        """``[only]``, or every tenant id."""
        if only is not None:
            return [only]
        from flowmill.store.tenants import TenantStore

        return [t.id for t in await TenantStore(self.db, self.workflows).all()]

    async def tenant_of_execution(self, execution_id: str) -> str | None:
        """The tenant owning ``execution_id`` (the CLI is the database's administrator)."""
        we = workflow_executions
        q = sa.select(we.c.tenant_id).where(we.c.id == execution_id)
        try:
            return await self.db.read(lambda c: c.execute(q).scalar())
        except sa.exc.StatementError:  # not an id at all (PostgreSQL's uuid type)
            return None

    async def tenant_of_workflow(self, workflow_id: str) -> str | None:
        """The tenant owning ``workflow_id``."""
        q = sa.select(workflows.c.tenant_id).where(workflows.c.id == workflow_id)
        try:
            return await self.db.read(lambda c: c.execute(q).scalar())
        except sa.exc.StatementError:
            return None


@contextlib.asynccontextmanager
async def open_local(settings: Settings | None = None) -> AsyncIterator[Local]:
    """The configured database, migrated (as every command does on first use)."""
    from flowmill.runtime import open_store

    async with open_store(settings or Settings()) as stores:
        yield Local(
            stores.db,
            stores.workflows,
            ExecutionQueries(stores.db),
            WorkflowQueries(stores.db),
        )


def table_console() -> Console:
    """stdout for tables: a pipe gets 80 columns, too few for ids and timestamps."""
    console = Console(highlight=False)
    if not console.is_terminal:
        console.width = max(console.width, 160)
    return console


def styled(status: str) -> Text:
    """A status word in its colour."""
    return Text(status, style=STATUS_STYLE.get(status, ""))


def when(t: datetime | None) -> str:
    """A timestamp to the second, UTC."""
    return t.strftime("%Y-%m-%d %H:%M:%S") if t is not None else ""


def took(start: datetime | None, end: datetime | None) -> str:
    """Human duration between two instants (``""`` when one is missing)."""
    if start is None or end is None:
        return ""
    return human_duration(max(0.0, (end - start).total_seconds()))


@dataclass
class NodeLine:
    """One node of an execution as shown: its latest attempt and its whole time."""

    node_id: str
    type: str
    status: str
    attempts: int
    time: str
    note: str


def node_lines(
    definition: dict[str, Any], execution: ExecutionRecord, runs: list[NodeRun]
) -> list[NodeLine]:
    """Every node of the definition, in its order, with what its runs say.

    A node's time runs from its first attempt's creation to its last attempt's end, so a
    durable 2 s delay shows 2 s and retries count their backoff. A node without a run
    is ``not run`` once the execution ended (``pending`` while it goes on).
    """
    by_node: dict[str, list[NodeRun]] = {}
    for r in runs:
        by_node.setdefault(r.node_id, []).append(r)
    lines = []
    for node in definition.get("nodes", []):
        node_id = str(node.get("id"))
        mine = by_node.pop(node_id, [])
        lines.append(_line(node_id, str(node.get("type", "")), mine, execution))
    for node_id, mine in by_node.items():  # runs of nodes the definition lacks
        lines.append(_line(node_id, "", mine, execution))
    return lines


def _line(node_id: str, type_: str, runs: list[NodeRun], execution: ExecutionRecord) -> NodeLine:
    if not runs:
        status = "not run" if execution.status.terminal else "pending"
        return NodeLine(node_id, type_, status, 0, "", "")
    last = runs[-1]
    first_at = runs[0].created_at or runs[0].started_at
    note = ""
    if last.error:
        note = str(last.error.get("message", ""))[:80]
    elif last.status.value == "waiting" and last.not_before is not None:
        note = f"until {last.not_before.strftime('%H:%M:%S')} UTC"
    return NodeLine(
        node_id,
        type_,
        last.status.value,
        max(r.attempt for r in runs),
        took(first_at, last.completed_at),
        note,
    )


def nodes_table(lines: list[NodeLine]) -> Table:
    """The nodes as a borderless table."""
    t = Table(box=None, pad_edge=False, show_edge=False)
    for col in ("node", "type", "status", "attempt", "time", ""):
        t.add_column(col)
    for line in lines:
        t.add_row(
            line.node_id,
            line.type,
            styled(line.status),
            str(line.attempts or ""),
            line.time,
            Text(line.note, style="dim"),
        )
    return t


def print_logs(console: Console, logs: list[dict[str, Any]]) -> None:
    """Node log lines (``console.log``, ``print``) under a heading, one per line."""
    if not logs:
        return
    console.print("[bold]logs[/bold]")
    width = max(len(str(line["node_id"] or "")) for line in logs)
    for line in logs:
        console.print(log_text(line, width))


def log_text(line: dict[str, Any], width: int = 0) -> Text:
    """One log line: node id, then the message in the colour of its level."""
    style = {"error": "red", "warn": "yellow", "warning": "yellow"}.get(line["level"], "")
    text = Text("  ")
    text.append(str(line["node_id"] or "").ljust(width), style="dim")
    text.append("  ")
    text.append(str(line["message"]), style=style)
    return text

"""A live per-node progress table for ``flowmill run``, fed by committed events."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from rich.table import Table
from rich.text import Text

from flowmill.domain.execution import Effects
from flowmill.engine.compiled import CompiledWorkflow

_STYLE = {
    "pending": "dim",
    "queued": "cyan",
    "running": "yellow",
    "waiting": "magenta",
    "retrying": "yellow",
    "succeeded": "green",
    "failed": "red",
    "skipped": "dim",
    "cancelled": "red",
}


@dataclass
class _Row:
    status: str = "pending"
    attempt: int = 0
    duration_ms: int | None = None
    note: str = ""
    started: float | None = None


@dataclass
class RunProgress:
    """Keeps each node's latest state for one execution and renders it as a table."""

    workflow: CompiledWorkflow
    execution_id: str | None = None
    rows: dict[str, _Row] = field(default_factory=dict)
    _pending: dict[str, list[Effects]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.rows = {n: _Row() for n in self.workflow.graph.nodes}

    def watch(self, execution_id: str) -> None:
        """Follow ``execution_id`` (effects seen before it was known are replayed)."""
        self.execution_id = execution_id
        for fx in self._pending.pop(execution_id, []):
            self._apply(fx)
        self._pending.clear()

    def listener(self, fx: Effects) -> None:
        """Hub listener: take in the events of the followed execution."""
        if self.execution_id is None:
            self._pending.setdefault(fx.execution_id, []).append(fx)
        elif fx.execution_id == self.execution_id:
            self._apply(fx)

    def _apply(self, fx: Effects) -> None:
        for e in fx.events:
            node_id = e.payload.get("node_id")
            if node_id is None or node_id not in self.rows:
                continue
            row = self.rows[node_id]
            kind = e.type.split(".", 1)[1]
            attempt = e.payload.get("attempt", row.attempt)
            if kind == "started":
                row.status, row.attempt, row.started = "running", attempt, time.monotonic()
            elif kind == "completed":
                row.status, row.attempt = "succeeded", attempt
                row.duration_ms = e.payload.get("duration_ms")
            elif kind == "failed":
                row.attempt = attempt
                row.duration_ms = e.payload.get("duration_ms")
                row.note = e.payload.get("error", {}).get("message", "")[:60]
                row.status = "retrying" if e.payload.get("will_retry") else "failed"
            elif kind == "retry_scheduled":
                row.note = f"retry in {e.payload.get('delay_ms', 0)} ms"
            elif kind in ("skipped", "waiting", "cancelled"):
                row.status = kind
                if kind == "waiting":
                    row.note = f"until {e.payload.get('until', '')}"
        for r in fx.new_runs:
            queued = self.rows.get(r.node_id)
            if queued is not None and r.status.value == "queued" and queued.status == "pending":
                queued.status = "queued"

    def table(self) -> Table:
        """The current state as a rich table."""
        t = Table(box=None, pad_edge=False, show_edge=False)
        for col in ("node", "type", "status", "attempt", "time", ""):
            t.add_column(col)
        for node_id, row in self.rows.items():
            ms = row.duration_ms
            if ms is None and row.status == "running" and row.started is not None:
                ms = int((time.monotonic() - row.started) * 1000)
            t.add_row(
                node_id,
                self.workflow.graph.nodes[node_id].type,
                Text(row.status, style=_STYLE.get(row.status, "")),
                str(row.attempt or ""),
                f"{ms} ms" if ms is not None else "",
                Text(row.note, style="dim"),
            )
        return t

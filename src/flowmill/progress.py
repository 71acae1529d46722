"""A live per-node progress table for ``flowmill run``, fed by committed events.

A node's time is the wall time from its first start to its end, as the user waited for
it: a durable delay of 2 s shows "2.0 s" (its own execution took a millisecond), and
retries count their backoff. Nodes the execution ended without reaching show
``not run``.
"""

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
    "not run": "dim",
}
_UNREACHED = ("pending", "queued")


def human_duration(seconds: float) -> str:
    """``0.0042`` -> ``"4 ms"``, ``2.04`` -> ``"2.0 s"``, ``65`` -> ``"1 min 5 s"``."""
    if seconds < 1:
        return f"{round(seconds * 1000)} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


@dataclass
class _Row:
    status: str = "pending"
    attempt: int = 0
    note: str = ""
    started: float | None = None  # monotonic, at the first start
    elapsed_s: float | None = None  # first start to end


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
                row.status, row.attempt = "running", attempt
                if row.started is None:
                    row.started = time.monotonic()
            elif kind == "completed":
                row.status, row.attempt, row.note = "succeeded", attempt, ""
                row.elapsed_s = self._since(row, e.payload.get("duration_ms"))
            elif kind == "failed":
                row.attempt = attempt
                row.note = e.payload.get("error", {}).get("message", "")[:60]
                row.status = "retrying" if e.payload.get("will_retry") else "failed"
                if row.status == "failed":
                    row.elapsed_s = self._since(row, e.payload.get("duration_ms"))
            elif kind == "retry_scheduled":
                row.note = f"retry in {human_duration(e.payload.get('delay_ms', 0) / 1000)}"
            elif kind in ("skipped", "waiting", "cancelled"):
                row.status = kind
                if kind == "waiting":
                    # the time of day is enough beside a clock; the date is in the events
                    until = str(e.payload.get("until", ""))
                    row.note = f"until {until[11:19]} UTC" if len(until) >= 19 else until
        for r in fx.new_runs:
            queued = self.rows.get(r.node_id)
            if queued is not None and r.status.value == "queued" and queued.status == "pending":
                queued.status = "queued"

    @staticmethod
    def _since(row: _Row, duration_ms: int | None) -> float | None:
        # A step's start and end may be committed (and heard) together: then the
        # node's own measured duration is the better figure.
        own = duration_ms / 1000 if duration_ms is not None else None
        if row.started is None:
            return own
        waited = time.monotonic() - row.started
        return max(waited, own) if own is not None else waited

    def finish(self) -> None:
        """The execution ended: nodes it never reached are ``not run``."""
        for row in self.rows.values():
            if row.status in _UNREACHED:
                row.status = "not run"

    def table(self) -> Table:
        """The current state as a rich table."""
        t = Table(box=None, pad_edge=False, show_edge=False)
        for col in ("node", "type", "status", "attempt", "time", ""):
            t.add_column(col)
        for node_id, row in self.rows.items():
            elapsed = row.elapsed_s
            if elapsed is None and row.started is not None:
                elapsed = time.monotonic() - row.started  # still going (or waiting)
            t.add_row(
                node_id,
                self.workflow.graph.nodes[node_id].type,
                Text(row.status, style=_STYLE.get(row.status, "")),
                str(row.attempt or ""),
                human_duration(elapsed) if elapsed is not None else "",
                Text(row.note, style="dim"),
            )
        return t

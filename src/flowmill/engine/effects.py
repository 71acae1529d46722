"""Building the effects of a transaction: the pieces every transition shares.

An :class:`EffectsBuilder` collects the rows and events one transaction writes;
:func:`advance` plans what follows a node resolving (ready runs, skips, the end of the
execution). Pure, given a :class:`StateReader`.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime, timedelta
from typing import Any, Protocol

from flowmill.domain.events import DomainEvent, EventType
from flowmill.domain.execution import (
    Effects,
    ExecutionRecord,
    ExecutionUpdate,
    NodeRun,
    NodeState,
)
from flowmill.domain.states import (
    LIVE_NODE_STATUSES,
    ExecutionStatus,
    NodeRunStatus,
)
from flowmill.engine import planner
from flowmill.engine.compiled import CompiledWorkflow
from flowmill.ids import uuid7

LIVE = frozenset(LIVE_NODE_STATUSES)


class StateReader(Protocol):
    """Reads an execution's node runs inside the checkpoint transaction."""

    def states(self, node_ids: Collection[str]) -> Mapping[str, NodeState]:
        """Latest attempt's state of each node that has a run."""
        ...

    def outputs(self, node_ids: Collection[str]) -> Mapping[str, Any]:
        """Output of each node whose latest attempt succeeded or failed and went on."""
        ...

    def has_live_runs(self, exclude: Collection[str]) -> bool:
        """Whether a run other than those in ``exclude`` (run ids) is not finished."""
        ...


class EffectsBuilder:
    """Accumulates effects and events for one transaction."""

    def __init__(self, ex: ExecutionRecord, now: datetime) -> None:
        self.ex = ex
        self.now = now
        self.fx = Effects(
            execution_id=ex.id, tenant_id=ex.tenant_id, parent_execution_id=ex.parent_execution_id
        )

    def event(self, type_: EventType, **payload: Any) -> None:
        payload.setdefault("execution_id", self.ex.id)
        # Every execution event names its workflow, so consumers of the feed (read
        # models, workflow:{id} rooms) need no lookup to place it.
        payload.setdefault("workflow_id", self.ex.workflow_id)
        self.fx.events.append(
            DomainEvent(uuid7(), self.ex.tenant_id, self.ex.id, type_.value, payload, self.now)
        )


class EmptyReader:
    """A new execution has no rows yet."""

    def states(self, node_ids: Collection[str]) -> Mapping[str, NodeState]:
        return {}

    def outputs(self, node_ids: Collection[str]) -> Mapping[str, Any]:
        return {}

    def has_live_runs(self, exclude: Collection[str]) -> bool:
        return False


class MapReader(EmptyReader):
    """Reads the outputs copied into a retried execution (nothing is live yet)."""

    def __init__(self, outputs: Mapping[str, Any]) -> None:
        self._outputs = outputs

    def outputs(self, node_ids: Collection[str]) -> Mapping[str, Any]:
        return {n: self._outputs[n] for n in node_ids if n in self._outputs}


def advance(
    wf: CompiledWorkflow,
    b: EffectsBuilder,
    run: NodeRun,
    output: Any,
    resolved: Mapping[str, NodeState],
    reader: StateReader,
    *,
    owner: str | None,
    inline_owner: str | None,
) -> None:
    graph = wf.graph
    result = planner.plan(graph, resolved, reader.states)
    for node_id in result.skipped:
        skip(b, node_id)
    need = {s for r in result.ready for s in r.sources if s != run.node_id}
    outputs: dict[str, Any] = dict(reader.outputs(need)) if need else {}
    outputs[run.node_id] = output
    queue_ready(wf, b, result.ready, outputs, owner=owner, inline_owner=inline_owner)
    if result.ready:
        return
    finished = {r.id for r in b.fx.new_runs} | {run.id}
    if not wf.linear and reader.has_live_runs(exclude=finished):
        return
    complete(wf, b, run.node_id, output, reader)


def queue_ready(
    wf: CompiledWorkflow,
    b: EffectsBuilder,
    ready: list[planner.ReadyNode],
    outputs: Mapping[str, Any],
    *,
    owner: str | None,
    inline_owner: str | None,
) -> None:
    """Queue runs for ready nodes; the first goes to ``inline_owner`` if given.

    A node's input is its predecessor's output; with several predecessors in the graph,
    an object keyed by the ids of those that reached it.
    """
    for i, node in enumerate(ready):
        preds = wf.graph.predecessors[node.node_id]
        if len(preds) == 1:
            node_input = outputs.get(preds[0])
        else:
            node_input = {s: outputs.get(s) for s in node.sources}
        b.fx.new_runs.append(
            NodeRun(
                id=uuid7(),
                execution_id=b.ex.id,
                tenant_id=b.ex.tenant_id,
                node_id=node.node_id,
                attempt=1,
                status=NodeRunStatus.QUEUED,
                input=node_input,
                created_at=b.now,
                owner=inline_owner if (i == 0 and inline_owner) else owner,
            )
        )


def complete(
    wf: CompiledWorkflow, b: EffectsBuilder, last_node: str, last_output: Any, reader: StateReader
) -> None:
    graph = wf.graph
    responses = [n for n, c in wf.nodes.items() if c.node.type == "response"]
    wanted = set(responses) | set(graph.sinks)
    outputs = dict(reader.outputs(wanted - {last_node}))
    if last_node in wanted:
        outputs[last_node] = last_output
    chosen = [n for n in responses if n in outputs] or [n for n in graph.sinks if n in outputs]
    value: Any
    if len(chosen) == 1:
        value = outputs[chosen[0]]
    else:
        value = {n: outputs[n] for n in chosen} if chosen else None
    b.fx.execution_update = ExecutionUpdate(
        status=ExecutionStatus.SUCCEEDED, output=value, completed_at=b.now
    )
    b.event(
        EventType.EXECUTION_COMPLETED,
        workflow_id=b.ex.workflow_id,
        duration_ms=ms(b.now - (b.ex.started_at or b.ex.created_at)),
    )


def skip(b: EffectsBuilder, node_id: str) -> None:
    b.fx.new_runs.append(
        NodeRun(
            id=uuid7(),
            execution_id=b.ex.id,
            tenant_id=b.ex.tenant_id,
            node_id=node_id,
            attempt=1,
            status=NodeRunStatus.SKIPPED,
            created_at=b.now,
            completed_at=b.now,
        )
    )
    b.event(EventType.NODE_SKIPPED, node_id=node_id)


def fail(b: EffectsBuilder, error: dict[str, Any]) -> None:
    b.fx.execution_update = ExecutionUpdate(
        status=ExecutionStatus.FAILED, error=error, completed_at=b.now
    )
    b.fx.cancel_live_runs = True
    b.event(
        EventType.EXECUTION_FAILED,
        workflow_id=b.ex.workflow_id,
        error=error,
        duration_ms=ms(b.now - (b.ex.started_at or b.ex.created_at)),
    )


def ms(delta: timedelta) -> int:
    return max(0, int(delta.total_seconds() * 1000))

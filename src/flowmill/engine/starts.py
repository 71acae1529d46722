"""How executions start: from a trigger, from a concurrency queue, or as a retry.

Pure: each function returns the effects the store writes in the start's transaction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flowmill.domain.events import EventType
from flowmill.domain.execution import (
    Effects,
    ExecutionRecord,
    ExecutionUpdate,
    NodeRun,
    NodeState,
)
from flowmill.domain.states import (
    ExecutionStatus,
    NodeRunStatus,
)
from flowmill.engine import planner
from flowmill.engine.compiled import CompiledWorkflow
from flowmill.engine.effects import (
    EffectsBuilder,
    EmptyReader,
    MapReader,
    advance,
    complete,
    queue_ready,
    skip,
)
from flowmill.ids import uuid7


def start_execution(
    wf: CompiledWorkflow,
    ex: ExecutionRecord,
    trigger_node: str,
    trigger_input: Any,
    now: datetime,
    *,
    owner: str | None = None,
    inline_owner: str | None = None,
) -> Effects:
    """Effects of creating ``ex``: the trigger's run, the first ready steps, events.

    ``ex.status`` decides: ``queued`` (held by a limit) writes only the execution; any
    other value starts it now.
    """
    b = EffectsBuilder(ex, now)
    b.fx.new_execution = ex
    if ex.status is ExecutionStatus.QUEUED:
        b.event(EventType.EXECUTION_QUEUED, workflow_id=ex.workflow_id, version=ex.version)
        return b.fx
    ex.status = ExecutionStatus.RUNNING
    ex.started_at = now
    _begin(wf, b, trigger_node, trigger_input, owner=owner, inline_owner=inline_owner)
    return b.fx


def promote_execution(
    wf: CompiledWorkflow,
    ex: ExecutionRecord,
    now: datetime,
    *,
    owner: str | None = None,
) -> Effects:
    """Effects of starting an execution that waited for a concurrency slot."""
    b = EffectsBuilder(ex, now)
    b.fx.execution_update = ExecutionUpdate(status=ExecutionStatus.RUNNING, started_at=now)
    ex.status = ExecutionStatus.RUNNING
    ex.started_at = now
    trigger_node = ex.trigger.get("node_id") or wf.default_trigger()
    _begin(wf, b, trigger_node, ex.trigger.get("data"), owner=owner, inline_owner=None)
    return b.fx


def _begin(
    wf: CompiledWorkflow,
    b: EffectsBuilder,
    trigger_node: str,
    trigger_input: Any,
    *,
    owner: str | None,
    inline_owner: str | None,
) -> None:
    ex = b.ex
    b.event(
        EventType.EXECUTION_STARTED,
        workflow_id=ex.workflow_id,
        version=ex.version,
        trigger_type=ex.trigger_type,
    )
    run = NodeRun(
        id=uuid7(),
        execution_id=ex.id,
        tenant_id=ex.tenant_id,
        node_id=trigger_node,
        attempt=1,
        status=NodeRunStatus.SUCCEEDED,
        input=trigger_input,
        output=ex.trigger,
        created_at=b.now,
        started_at=b.now,
        completed_at=b.now,
    )
    b.fx.new_runs.append(run)
    b.event(EventType.NODE_STARTED, node_id=trigger_node, attempt=1)
    b.event(EventType.NODE_COMPLETED, node_id=trigger_node, attempt=1, duration_ms=0)
    others = [t for t in wf.graph.triggers if t != trigger_node]
    for t in others:
        skip(b, t)
    resolved = {trigger_node: NodeState(NodeRunStatus.SUCCEEDED)}
    resolved.update({t: NodeState(NodeRunStatus.SKIPPED) for t in others})
    reader = EmptyReader()
    advance(wf, b, run, ex.trigger, resolved, reader, owner=owner, inline_owner=inline_owner)


def retry_from_failure(
    wf: CompiledWorkflow,
    old_runs: list[NodeRun],
    ex: ExecutionRecord,
    now: datetime,
    *,
    owner: str | None = None,
) -> Effects:
    """Effects of a new execution ``ex`` that re-runs an old one from where it failed.

    Nodes that succeeded in the old execution keep their outputs (copied, not run);
    the planner then readies what follows them, so the failed node and everything
    after it run again on the same inputs.
    """
    kept = {
        n: _Kept(r.input, r.output, r.handles, {"copied_from": r.id})
        for n, r in _latest(old_runs).items()
        if r.status is NodeRunStatus.SUCCEEDED and n in wf.graph.nodes
    }
    return _resume(wf, kept, ex, now, owner)


def rerun_from_node(
    wf: CompiledWorkflow,
    old_runs: list[NodeRun],
    ex: ExecutionRecord,
    now: datetime,
    node_id: str,
    pinned: dict[str, Any],
    *,
    owner: str | None = None,
) -> Effects:
    """Effects of a new execution ``ex`` that runs ``node_id`` and everything after it
    again, the nodes before it keeping their outputs from the old execution.

    ``pinned`` outputs (test data, by node id) replace the old ones; a pinned node keeps
    the outputs (handles) its old run took. ``wf`` may be a newer version than the old
    execution's (a draft edited since): only nodes it still has are kept.
    """
    after = downstream(wf.graph.successors, node_id)
    latest = _latest(old_runs)
    kept = {
        n: _Kept(r.input, r.output, r.handles, {"copied_from": r.id})
        for n, r in latest.items()
        if r.status is NodeRunStatus.SUCCEEDED and n in wf.graph.nodes and n not in after
    }
    for n, output in pinned.items():
        old = latest.get(n)
        kept[n] = _Kept(None, output, old.handles if old else None, {"pinned": True})
    return _resume(wf, kept, ex, now, owner)


def downstream(successors: Mapping[str, Sequence[str]], node_id: str) -> set[str]:
    """``node_id`` and every node reachable from it."""
    seen = {node_id}
    todo = [node_id]
    while todo:
        for nxt in successors.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


@dataclass(frozen=True)
class _Kept:
    """A node's result carried into a new execution instead of running it."""

    input: Any
    output: Any
    handles: list[str] | None
    state: dict[str, Any]


def _latest(runs: list[NodeRun]) -> dict[str, NodeRun]:
    latest: dict[str, NodeRun] = {}
    for r in runs:
        if r.node_id not in latest or r.attempt > latest[r.node_id].attempt:
            latest[r.node_id] = r
    return latest


def _resume(
    wf: CompiledWorkflow,
    kept: dict[str, _Kept],
    ex: ExecutionRecord,
    now: datetime,
    owner: str | None,
) -> Effects:
    """Start ``ex`` with the ``kept`` nodes succeeded as given; the planner readies
    what follows them."""
    b = EffectsBuilder(ex, now)
    b.fx.new_execution = ex
    ex.status = ExecutionStatus.RUNNING
    ex.started_at = now
    b.event(
        EventType.EXECUTION_STARTED,
        workflow_id=ex.workflow_id,
        version=ex.version,
        trigger_type=ex.trigger_type,
        retry_of=ex.retry_of,
    )
    for node_id, k in kept.items():
        b.fx.new_runs.append(
            NodeRun(
                id=uuid7(),
                execution_id=ex.id,
                tenant_id=ex.tenant_id,
                node_id=node_id,
                attempt=1,
                status=NodeRunStatus.SUCCEEDED,
                input=k.input,
                output=k.output,
                handles=k.handles,
                created_at=now,
                started_at=now,
                completed_at=now,
                state=k.state,
            )
        )
    resolved = {
        n: NodeState(NodeRunStatus.SUCCEEDED, tuple(k.handles) if k.handles is not None else None)
        for n, k in kept.items()
    }
    result = planner.plan(
        wf.graph, resolved, lambda ids: {i: resolved[i] for i in ids if i in resolved}
    )
    outputs = {n: k.output for n, k in kept.items()}
    for node_id in result.skipped:
        if node_id not in kept:
            skip(b, node_id)
    ready = [r for r in result.ready if r.node_id not in kept]
    queue_ready(wf, b, ready, outputs, owner=owner, inline_owner=None)
    if not ready:
        last = next(iter(kept)) if kept else wf.graph.triggers[0]
        complete(wf, b, last, outputs.get(last), MapReader(outputs))
    return b.fx

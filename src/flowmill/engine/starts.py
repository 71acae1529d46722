"""How executions start: from a trigger, from a concurrency queue, or as a retry.

Pure: each function returns the effects the store writes in the start's transaction.
"""

from __future__ import annotations

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
    latest: dict[str, NodeRun] = {}
    for r in old_runs:
        if r.node_id not in latest or r.attempt > latest[r.node_id].attempt:
            latest[r.node_id] = r
    copied = {
        n: r
        for n, r in latest.items()
        if r.status is NodeRunStatus.SUCCEEDED and n in wf.graph.nodes
    }
    for node_id, old in copied.items():
        b.fx.new_runs.append(
            NodeRun(
                id=uuid7(),
                execution_id=ex.id,
                tenant_id=ex.tenant_id,
                node_id=node_id,
                attempt=1,
                status=NodeRunStatus.SUCCEEDED,
                input=old.input,
                output=old.output,
                handles=old.handles,
                created_at=now,
                started_at=now,
                completed_at=now,
                state={"copied_from": old.id},
            )
        )
    resolved = {
        n: NodeState(NodeRunStatus.SUCCEEDED, tuple(r.handles) if r.handles is not None else None)
        for n, r in copied.items()
    }
    result = planner.plan(
        wf.graph, resolved, lambda ids: {i: resolved[i] for i in ids if i in resolved}
    )
    outputs = {n: r.output for n, r in copied.items()}
    for node_id in result.skipped:
        if node_id not in copied:
            skip(b, node_id)
    ready = [r for r in result.ready if r.node_id not in copied]
    queue_ready(wf, b, ready, outputs, owner=owner, inline_owner=None)
    if not ready:
        last = next(iter(copied)) if copied else wf.graph.triggers[0]
        complete(wf, b, last, outputs.get(last), MapReader(outputs))
    return b.fx

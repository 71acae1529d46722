"""From what happened to what must be written. Pure, given a :class:`StateReader`.

Every function returns :class:`~flowmill.domain.execution.Effects` that a store applies
in one transaction: the step's result, its events, the rows of the steps it makes ready
(or skips), and the execution's end. The store calls these inside its transaction with
the execution row locked, so two steps of one execution never plan from stale states.
"""

from __future__ import annotations

import random
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from flowmill.domain.errors import NodeError
from flowmill.domain.events import DomainEvent, EventType
from flowmill.domain.execution import (
    Effects,
    ExecutionRecord,
    ExecutionUpdate,
    LogLine,
    NodeRun,
    NodeState,
    RunUpdate,
)
from flowmill.domain.states import (
    LIVE_NODE_STATUSES,
    ExecutionStatus,
    NodeRunStatus,
    OnError,
)
from flowmill.domain.workflow import ERROR_HANDLE
from flowmill.engine import planner
from flowmill.engine.compiled import CompiledWorkflow
from flowmill.engine.retry import backoff_ms, should_retry
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


@dataclass
class Succeeded:
    """The attempt returned an output."""

    output: Any
    handles: list[str] | None = None
    started_at: datetime | None = None
    logs: list[LogLine] = field(default_factory=list)
    announced: bool = False  # node.started was already recorded (slow step)


@dataclass
class Failed:
    """The attempt raised."""

    error: NodeError
    started_at: datetime | None = None
    logs: list[LogLine] = field(default_factory=list)
    announced: bool = False


@dataclass
class Suspended:
    """The node parks until ``until``."""

    until: datetime
    state: dict[str, Any]
    started_at: datetime | None = None
    logs: list[LogLine] = field(default_factory=list)
    announced: bool = False


Outcome = Succeeded | Failed | Suspended


class _Builder:
    """Accumulates effects and events for one transaction."""

    def __init__(self, ex: ExecutionRecord, now: datetime) -> None:
        self.ex = ex
        self.now = now
        self.fx = Effects(execution_id=ex.id, tenant_id=ex.tenant_id)

    def event(self, type_: EventType, **payload: Any) -> None:
        payload.setdefault("execution_id", self.ex.id)
        self.fx.events.append(
            DomainEvent(uuid7(), self.ex.tenant_id, self.ex.id, type_.value, payload, self.now)
        )


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
    b = _Builder(ex, now)
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
    b = _Builder(ex, now)
    b.fx.execution_update = ExecutionUpdate(status=ExecutionStatus.RUNNING, started_at=now)
    ex.status = ExecutionStatus.RUNNING
    ex.started_at = now
    trigger_node = ex.trigger.get("node_id") or wf.default_trigger()
    _begin(wf, b, trigger_node, ex.trigger.get("data"), owner=owner, inline_owner=None)
    return b.fx


def _begin(
    wf: CompiledWorkflow,
    b: _Builder,
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
        _skip(b, t)
    resolved = {trigger_node: NodeState(NodeRunStatus.SUCCEEDED)}
    resolved.update({t: NodeState(NodeRunStatus.SKIPPED) for t in others})
    reader = _EmptyReader()
    _advance(wf, b, run, ex.trigger, resolved, reader, owner=owner, inline_owner=inline_owner)


class _EmptyReader:
    """A new execution has no rows yet."""

    def states(self, node_ids: Collection[str]) -> Mapping[str, NodeState]:
        return {}

    def outputs(self, node_ids: Collection[str]) -> Mapping[str, Any]:
        return {}

    def has_live_runs(self, exclude: Collection[str]) -> bool:
        return False


def after_step(
    wf: CompiledWorkflow,
    ex: ExecutionRecord,
    run: NodeRun,
    outcome: Outcome,
    reader: StateReader,
    now: datetime,
    *,
    owner: str | None = None,
    inline_owner: str | None = None,
    rng: random.Random | None = None,
) -> Effects:
    """Effects of one attempt of ``run`` ending with ``outcome``.

    Args:
        wf: The compiled workflow version of ``ex``.
        ex: The execution, as locked by the store.
        run: The node run that was executed (as loaded before running it).
        outcome: What happened.
        reader: Reads other runs of ``ex`` in the same transaction.
        now: Commit time.
        owner: Owner recorded on new ready runs (a worker id for in-process queues).
        inline_owner: Owner of the first immediately ready run, which the caller will
            run itself without a queue round trip.
        rng: Randomness for retry jitter.
    """
    if ex.status.terminal:
        # The execution ended (cancelled, failed elsewhere, timed out) while this ran.
        fx = abandon_run(ex, run, now, started_at=outcome.started_at)
        fx.logs.extend(outcome.logs)
        return fx
    b = _Builder(ex, now)
    started = outcome.started_at or now
    b.fx.logs.extend(outcome.logs)
    if ex.status is ExecutionStatus.WAITING:
        b.fx.execution_update = ExecutionUpdate(status=ExecutionStatus.RUNNING)
    if not outcome.announced and run.status is not NodeRunStatus.WAITING:
        b.event(EventType.NODE_STARTED, node_id=run.node_id, attempt=run.attempt)
    node = wf.node(run.node_id)
    duration_ms = _ms(now - started)

    if isinstance(outcome, Suspended):
        b.fx.run_updates.append(
            RunUpdate(
                run.id,
                LIVE,
                NodeRunStatus.WAITING,
                started_at=started,
                not_before=outcome.until,
                state=outcome.state,
                owner=owner,
            )
        )
        b.event(
            EventType.NODE_WAITING,
            node_id=run.node_id,
            attempt=run.attempt,
            until=outcome.until.isoformat(),
        )
        if not reader.has_live_runs(exclude={run.id}):
            b.fx.execution_update = ExecutionUpdate(status=ExecutionStatus.WAITING)
            b.event(EventType.EXECUTION_WAITING, until=outcome.until.isoformat())
        return b.fx

    if isinstance(outcome, Succeeded):
        b.fx.run_updates.append(
            RunUpdate(
                run.id,
                LIVE,
                NodeRunStatus.SUCCEEDED,
                output=outcome.output,
                handles=outcome.handles,
                started_at=started,
                completed_at=now,
            )
        )
        b.event(
            EventType.NODE_COMPLETED,
            node_id=run.node_id,
            attempt=run.attempt,
            duration_ms=duration_ms,
            handles=outcome.handles,
        )
        state = NodeState(
            NodeRunStatus.SUCCEEDED, tuple(outcome.handles) if outcome.handles is not None else None
        )
        _advance(
            wf,
            b,
            run,
            outcome.output,
            {run.node_id: state},
            reader,
            owner=owner,
            inline_owner=inline_owner,
        )
        return b.fx

    err = outcome.error
    error = err.to_dict(run.attempt)
    if should_retry(node.retry, run.attempt, err.retriable):
        delay = backoff_ms(node.retry, run.attempt, rng)
        b.fx.run_updates.append(
            RunUpdate(
                run.id,
                LIVE,
                NodeRunStatus.FAILED,
                error=error,
                started_at=started,
                completed_at=now,
            )
        )
        b.event(
            EventType.NODE_FAILED,
            node_id=run.node_id,
            attempt=run.attempt,
            error=error,
            will_retry=True,
            duration_ms=duration_ms,
        )
        b.fx.new_runs.append(
            NodeRun(
                id=uuid7(),
                execution_id=ex.id,
                tenant_id=ex.tenant_id,
                node_id=run.node_id,
                attempt=run.attempt + 1,
                status=NodeRunStatus.QUEUED,
                input=run.input,
                created_at=now,
                not_before=now + timedelta(milliseconds=delay) if delay else None,
                owner=owner,
            )
        )
        b.event(
            EventType.NODE_RETRY_SCHEDULED,
            node_id=run.node_id,
            attempt=run.attempt + 1,
            delay_ms=delay,
        )
        return b.fx

    b.event(
        EventType.NODE_FAILED,
        node_id=run.node_id,
        attempt=run.attempt,
        error=error,
        will_retry=False,
        duration_ms=duration_ms,
    )
    on_error = node.node.on_error
    if on_error is OnError.FAIL:
        b.fx.run_updates.append(
            RunUpdate(
                run.id,
                LIVE,
                NodeRunStatus.FAILED,
                error=error,
                started_at=started,
                completed_at=now,
            )
        )
        _fail(b, {**error, "node_id": run.node_id})
        return b.fx
    output = {"error": {**error, "node_id": run.node_id}}
    handles = [ERROR_HANDLE] if on_error is OnError.ROUTE else None
    b.fx.run_updates.append(
        RunUpdate(
            run.id,
            LIVE,
            NodeRunStatus.FAILED,
            output=output,
            error=error,
            handles=handles,
            started_at=started,
            completed_at=now,
        )
    )
    state = NodeState(NodeRunStatus.FAILED, tuple(handles) if handles else None)
    _advance(
        wf, b, run, output, {run.node_id: state}, reader, owner=owner, inline_owner=inline_owner
    )
    return b.fx


def _advance(
    wf: CompiledWorkflow,
    b: _Builder,
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
        _skip(b, node_id)
    need = {s for r in result.ready for s in r.sources if s != run.node_id}
    outputs: dict[str, Any] = dict(reader.outputs(need)) if need else {}
    outputs[run.node_id] = output
    _queue_ready(wf, b, result.ready, outputs, owner=owner, inline_owner=inline_owner)
    if result.ready:
        return
    finished = {r.id for r in b.fx.new_runs} | {run.id}
    if reader.has_live_runs(exclude=finished):
        return
    _complete(wf, b, run.node_id, output, reader)


def _queue_ready(
    wf: CompiledWorkflow,
    b: _Builder,
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


def _complete(
    wf: CompiledWorkflow, b: _Builder, last_node: str, last_output: Any, reader: StateReader
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
        duration_ms=_ms(b.now - (b.ex.started_at or b.ex.created_at)),
    )


def _skip(b: _Builder, node_id: str) -> None:
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


def _fail(b: _Builder, error: dict[str, Any]) -> None:
    b.fx.execution_update = ExecutionUpdate(
        status=ExecutionStatus.FAILED, error=error, completed_at=b.now
    )
    b.fx.cancel_live_runs = True
    b.event(
        EventType.EXECUTION_FAILED,
        workflow_id=b.ex.workflow_id,
        error=error,
        duration_ms=_ms(b.now - (b.ex.started_at or b.ex.created_at)),
    )


def abandon_run(
    ex: ExecutionRecord, run: NodeRun, now: datetime, *, started_at: datetime | None = None
) -> Effects:
    """Effects of a live run whose execution already ended: the run is cancelled."""
    b = _Builder(ex, now)
    b.fx.run_updates.append(
        RunUpdate(
            run.id,
            LIVE,
            NodeRunStatus.CANCELLED,
            started_at=started_at,
            completed_at=now,
            error={"type": "ExecutionEnded", "message": f"execution is {ex.status.value}"},
        )
    )
    return b.fx


def mark_running(ex: ExecutionRecord, run: NodeRun, now: datetime) -> Effects:
    """Effects of announcing that a slow step has started (visible while it runs)."""
    b = _Builder(ex, now)
    b.fx.run_updates.append(
        RunUpdate(
            run.id,
            frozenset({NodeRunStatus.QUEUED, NodeRunStatus.WAITING}),
            NodeRunStatus.RUNNING,
            started_at=now,
        )
    )
    b.event(EventType.NODE_STARTED, node_id=run.node_id, attempt=run.attempt)
    return b.fx


def cancel_execution(ex: ExecutionRecord, now: datetime, reason: str = "cancelled") -> Effects:
    """Effects of cancelling ``ex``: it ends now; its live runs are cancelled."""
    b = _Builder(ex, now)
    if ex.status.terminal:
        return b.fx
    b.fx.execution_update = ExecutionUpdate(
        status=ExecutionStatus.CANCELLED,
        completed_at=now,
        error={"type": "Cancelled", "message": reason},
    )
    b.fx.cancel_live_runs = True
    b.event(EventType.EXECUTION_CANCELLED, workflow_id=ex.workflow_id, reason=reason)
    return b.fx


def time_out_execution(ex: ExecutionRecord, now: datetime) -> Effects:
    """Effects of ``ex`` passing its deadline: it fails with ``ExecutionTimeout``."""
    b = _Builder(ex, now)
    if ex.status.terminal:
        return b.fx
    _fail(
        b,
        {
            "type": "ExecutionTimeout",
            "message": "the execution ran past its timeout_s",
            "retriable": False,
        },
    )
    return b.fx


def _ms(delta: timedelta) -> int:
    return max(0, int(delta.total_seconds() * 1000))


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
    b = _Builder(ex, now)
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
            _skip(b, node_id)
    ready = [r for r in result.ready if r.node_id not in copied]
    _queue_ready(wf, b, ready, outputs, owner=owner, inline_owner=None)
    if not ready:
        last = next(iter(copied)) if copied else wf.graph.triggers[0]
        _complete(wf, b, last, outputs.get(last), _MapReader(outputs))
    return b.fx


class _MapReader(_EmptyReader):
    """Reads the outputs copied into a retried execution (nothing is live yet)."""

    def __init__(self, outputs: Mapping[str, Any]) -> None:
        self._outputs = outputs

    def outputs(self, node_ids: Collection[str]) -> Mapping[str, Any]:
        return {n: self._outputs[n] for n in node_ids if n in self._outputs}

"""From what happened to a step to what must be written. Pure, given a StateReader.

Every function returns :class:`~flowmill.domain.execution.Effects` that a store applies
in one transaction: the step's result, its events, the rows of the steps it makes ready
(or skips), and the execution's end. The store calls these inside its transaction with
the execution row locked, so two steps of one execution never plan from stale states.
How executions start is in :mod:`flowmill.engine.starts`.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from flowmill.domain.errors import NodeError
from flowmill.domain.events import EventType
from flowmill.domain.execution import (
    ConversationTurn,
    Effects,
    ExecutionRecord,
    ExecutionUpdate,
    LogLine,
    NodeRun,
    NodeState,
    RunUpdate,
)
from flowmill.domain.states import (
    ExecutionStatus,
    NodeRunStatus,
    OnError,
)
from flowmill.domain.workflow import ERROR_HANDLE
from flowmill.engine.compiled import CompiledWorkflow
from flowmill.engine.effects import (
    LIVE,
    EffectsBuilder,
    StateReader,
    advance,
    fail,
    ms,
)
from flowmill.engine.retry import backoff_ms, should_retry
from flowmill.ids import uuid7

#: What a suspension may be written over: a run its copy announced or claimed, or a
#: first run not announced yet; never a parked one.
RUNNING_ONLY = frozenset({NodeRunStatus.RUNNING})
FIRST_RUN = frozenset({NodeRunStatus.PENDING, NodeRunStatus.QUEUED})


@dataclass
class Succeeded:
    """The attempt returned an output."""

    output: Any
    handles: list[str] | None = None
    started_at: datetime | None = None
    logs: list[LogLine] = field(default_factory=list)
    announced: bool = False  # node.started was already recorded (slow step)
    turns: list[ConversationTurn] = field(default_factory=list)


@dataclass
class Failed:
    """The attempt raised."""

    error: NodeError
    started_at: datetime | None = None
    logs: list[LogLine] = field(default_factory=list)
    announced: bool = False


@dataclass
class Suspended:
    """The node parks until ``until`` (or a wake of kind ``wake_on``)."""

    until: datetime
    state: dict[str, Any]
    started_at: datetime | None = None
    logs: list[LogLine] = field(default_factory=list)
    announced: bool = False
    wake_on: str | None = None
    recheck: Callable[[], Awaitable[bool]] | None = None


Outcome = Succeeded | Failed | Suspended


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
    b = EffectsBuilder(ex, now)
    started = outcome.started_at or now
    b.fx.logs.extend(outcome.logs)
    if ex.status is ExecutionStatus.WAITING:
        b.fx.execution_update = ExecutionUpdate(status=ExecutionStatus.RUNNING)
    if not outcome.announced and run.status is not NodeRunStatus.WAITING:
        b.event(EventType.NODE_STARTED, node_id=run.node_id, attempt=run.attempt)
    node = wf.node(run.node_id)
    duration_ms = ms(now - started)

    if isinstance(outcome, Suspended):
        b.fx.run_updates.append(
            RunUpdate(
                run.id,
                # Only over the run as this copy holds it: running if announced or
                # claimed (claim_resumed), else queued. Never over a parked run: that
                # one was parked, and maybe woken since, by another copy, and writing
                # it would push a wake's due time later.
                RUNNING_ONLY if outcome.announced else FIRST_RUN,
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
        if outcome.turns:
            # In this transaction, behind the run update's guard: if a duplicate of the
            # step finished first, the update fails and the turns roll back with it.
            b.fx.turns.extend(outcome.turns)
            b.fx.turns_of = run.key
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
        advance(
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
        asked = err.details.get("retry_after_s") if err.details else None
        if isinstance(asked, int | float) and not isinstance(asked, bool) and asked > 0:
            # The service said when to come back (Retry-After): never sooner.
            delay = max(delay, int(asked * 1000))
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
        fail(b, {**error, "node_id": run.node_id})
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
    advance(
        wf, b, run, output, {run.node_id: state}, reader, owner=owner, inline_owner=inline_owner
    )
    return b.fx


def abandon_run(
    ex: ExecutionRecord, run: NodeRun, now: datetime, *, started_at: datetime | None = None
) -> Effects:
    """Effects of a live run whose execution already ended: the run is cancelled."""
    b = EffectsBuilder(ex, now)
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


def claim_resumed(
    ex: ExecutionRecord, run: NodeRun, now: datetime, *, owner: str | None = None
) -> Effects:
    """Effects of taking a parked (``waiting``) run to run it again: it becomes
    ``running``, keeping its state, only if it is still parked.

    Two wakes of one parked step are two jobs; the claim makes their copies run one at
    a time across workers: the second finds the run taken and drops its job (the first
    copy's re-check after it parks again sees whatever the second wake was for). While
    the run is taken, wakes leave it alone, so nothing moves its due time behind the
    copy's back. No event: the node started when it first ran.
    """
    b = EffectsBuilder(ex, now)
    if ex.status.terminal:
        return b.fx
    b.fx.run_updates.append(
        RunUpdate(
            run.id,
            frozenset({NodeRunStatus.WAITING}),
            NodeRunStatus.RUNNING,
            state=run.state,
            owner=owner,
        )
    )
    if ex.status is ExecutionStatus.WAITING:
        b.fx.execution_update = ExecutionUpdate(status=ExecutionStatus.RUNNING)
    return b.fx


def mark_running(ex: ExecutionRecord, run: NodeRun, now: datetime) -> Effects:
    """Effects of announcing that a slow step has started (visible while it runs)."""
    b = EffectsBuilder(ex, now)
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
    b = EffectsBuilder(ex, now)
    if ex.status.terminal:
        return b.fx
    b.fx.execution_update = ExecutionUpdate(
        status=ExecutionStatus.CANCELLED,
        completed_at=now,
        error={"type": "Cancelled", "message": reason},
    )
    b.fx.cancel_live_runs = True
    b.event(EventType.EXECUTION_CANCELLED, reason=reason)  # the builder adds workflow_id
    return b.fx


def time_out_execution(ex: ExecutionRecord, now: datetime) -> Effects:
    """Effects of ``ex`` passing its deadline: it fails with ``ExecutionTimeout``."""
    b = EffectsBuilder(ex, now)
    if ex.status.terminal:
        return b.fx
    fail(
        b,
        {
            "type": "ExecutionTimeout",
            "message": "the execution ran past its timeout_s",
            "retriable": False,
        },
    )
    return b.fx


__all__ = [
    "Failed",
    "Outcome",
    "StateReader",
    "Succeeded",
    "Suspended",
    "abandon_run",
    "after_step",
    "cancel_execution",
    "claim_resumed",
    "mark_running",
    "time_out_execution",
]

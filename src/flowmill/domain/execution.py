"""Records of executions and node runs, and the effects a step has on them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from flowmill.domain.errors import FlowmillError
from flowmill.domain.events import DomainEvent
from flowmill.domain.states import ExecutionStatus, NodeRunStatus


@dataclass
class ExecutionRecord:
    """One execution of a pinned workflow version.

    Attributes:
        trigger: The trigger's output ``{"type", "data", ...}``; templates see it as
            ``trigger``.
        deadline_at: When the execution times out (``settings.timeout_s``), if ever.
        metadata: What the execution is about (``{"customerId", "clientId"}`` of a
            channel message); listed and filtered on.
        parent_execution_id: The execution whose loop or sub_workflow node started this
            one (a child), if any.
        parent_node_id: That node's id.
        iteration: The loop item's index, for a loop iteration.
    """

    id: str
    tenant_id: str
    workflow_id: str
    version: int
    status: ExecutionStatus
    trigger: dict[str, Any]
    trigger_type: str
    created_at: datetime
    started_at: datetime | None = None
    completed_at: datetime | None = None
    deadline_at: datetime | None = None
    output: Any = None
    error: dict[str, Any] | None = None
    parent_execution_id: str | None = None
    retry_of: str | None = None
    metadata: dict[str, Any] | None = None
    parent_node_id: str | None = None
    iteration: int | None = None


@dataclass
class NodeRun:
    """One attempt of one node. Retries are new rows with ``attempt + 1``.

    Attributes:
        handles: Outputs the node chose (``["true"]``, ``["error"]``); ``None`` means
            its default output.
        not_before: Earliest time the attempt may run (backoff, durable delay).
        owner: Worker id running it inline, or ``None`` when a queue holds its job.
        state: Private state a suspended node keeps between its first and resumed run.
    """

    id: str
    execution_id: str
    tenant_id: str
    node_id: str
    attempt: int
    status: NodeRunStatus
    input: Any = None
    output: Any = None
    error: dict[str, Any] | None = None
    handles: list[str] | None = None
    not_before: datetime | None = None
    created_at: datetime | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    owner: str | None = None
    state: dict[str, Any] | None = None

    @property
    def key(self) -> StepKey:
        """The identity of the step, shared by its job and idempotency key."""
        return StepKey(self.execution_id, self.node_id, self.attempt)


@dataclass(frozen=True)
class StepKey:
    """Names one attempt of one node; the job id and idempotency key derive from it."""

    execution_id: str
    node_id: str
    attempt: int

    @property
    def idempotency_key(self) -> str:
        """Handed to nodes so their side effects can be deduplicated downstream."""
        return f"{self.execution_id}:{self.node_id}:{self.attempt}"


@dataclass(frozen=True)
class NodeState:
    """What the planner needs to know of a node's latest attempt."""

    status: NodeRunStatus
    handles: tuple[str, ...] | None = None

    @property
    def resolved(self) -> bool:
        """Finished for good: its outgoing edges are decided."""
        return self.status in (
            NodeRunStatus.SUCCEEDED,
            NodeRunStatus.FAILED,
            NodeRunStatus.SKIPPED,
            NodeRunStatus.CANCELLED,
        )


@dataclass
class RunUpdate:
    """Change to an existing node run, applied only if its status is still ``expect``.

    ``started_at``, ``not_before`` and ``owner`` left ``None`` keep their stored value.
    """

    run_id: str
    expect: frozenset[NodeRunStatus]
    status: NodeRunStatus
    output: Any = None
    error: dict[str, Any] | None = None
    handles: list[str] | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    not_before: datetime | None = None
    state: dict[str, Any] | None = None
    owner: str | None = None


@dataclass
class ExecutionUpdate:
    """Change to the execution row."""

    status: ExecutionStatus
    output: Any = None
    error: dict[str, Any] | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None


@dataclass
class LogLine:
    """One line of an execution's log."""

    level: str
    message: str
    node_id: str | None = None
    attempt: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    timestamp: datetime | None = None


@dataclass(frozen=True)
class ConversationTurn:
    """A turn of a conversation that a step adds (the ``agent`` node's user message and
    reply). Written with the step's checkpoint, in its transaction, so a step retried or
    recovered after a crash never stores a turn twice (DESIGN §11).

    Attributes:
        conversation_id: The conversation (a channel and customer, by default).
        client_id: Whose conversation (the channel), as in the seed's table.
        role: ``user`` or ``assistant``.
        content: The text.
        seq: Position among the step's turns (unique per execution and node).
        metadata: Model and token usage of a reply.
    """

    conversation_id: str
    client_id: str
    role: str
    content: str
    timestamp: datetime
    seq: int
    metadata: dict[str, Any] | None = None


@dataclass
class FollowingStart:
    """A start that a checkpoint carries: written in the same transaction, after the
    checkpoint's own effects (a sequential loop's next iteration, started by the
    commit that ends the one before, instead of by a commit of its own).

    Attributes:
        effects: The start's effects, as a start's builder gives them.
        dedupe_key: Its key; if another execution of the tenant holds it, nothing of
            the start is written and the store sets ``taken_by`` to that execution.
        taken_by: Set by the store when the key was taken.
    """

    effects: Effects
    dedupe_key: str | None = None
    taken_by: str | None = None


@dataclass
class Effects:
    """Everything one transaction writes; the store applies it atomically.

    Jobs for ``new_runs`` that are queued are dispatched only after the commit.
    """

    execution_id: str
    tenant_id: str
    new_execution: ExecutionRecord | None = None
    run_updates: list[RunUpdate] = field(default_factory=list)
    new_runs: list[NodeRun] = field(default_factory=list)
    execution_update: ExecutionUpdate | None = None
    events: list[DomainEvent] = field(default_factory=list)
    logs: list[LogLine] = field(default_factory=list)
    cancel_live_runs: bool = False
    # turns of the run being checkpointed (``run_updates[0]``) as it succeeds
    turns: list[ConversationTurn] = field(default_factory=list)
    turns_of: StepKey | None = None
    # not written: tells whoever hears of the commit that a child ended (wake its parent)
    parent_execution_id: str | None = None
    # another execution's start, written after these effects in their transaction
    follow: FollowingStart | None = None

    @property
    def ready(self) -> list[NodeRun]:
        """New runs to dispatch once committed."""
        return [r for r in self.new_runs if r.status is NodeRunStatus.QUEUED]


class StaleStepError(FlowmillError):
    """The step was already finished by someone else; its result must not be recorded."""

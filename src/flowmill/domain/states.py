"""Execution and node-run states, and which moves between them are legal."""

from __future__ import annotations

from enum import StrEnum


class ExecutionStatus(StrEnum):
    """Lifecycle of one execution of a workflow version."""

    PENDING = "pending"  # created; its start nodes are being dispatched
    QUEUED = "queued"  # held back by the workflow's max_concurrent or per_minute limit
    RUNNING = "running"  # at least one step is queued or running
    WAITING = "waiting"  # every live step is parked until a time or an outside event
    SUCCEEDED = "succeeded"  # every node finished or was skipped, none failed the run
    FAILED = "failed"  # a node failed with on_error=fail, or the execution timed out
    CANCELLED = "cancelled"  # stopped on request; live steps were cancelled

    @property
    def terminal(self) -> bool:
        """Whether the execution can no longer change."""
        return self in _TERMINAL_EXECUTION


_TERMINAL_EXECUTION = frozenset(
    {ExecutionStatus.SUCCEEDED, ExecutionStatus.FAILED, ExecutionStatus.CANCELLED}
)


class NodeRunStatus(StrEnum):
    """Lifecycle of one attempt of one node within an execution."""

    PENDING = "pending"  # known to the planner, not yet handed to a queue
    QUEUED = "queued"  # committed as ready; a job for it is (or will be) on a queue
    RUNNING = "running"  # a worker has started it and said so (slow steps only)
    WAITING = "waiting"  # parked until not_before (durable delay) or an outside event
    SUCCEEDED = "succeeded"  # finished with an output
    FAILED = "failed"  # this attempt raised; a retry may follow as a new attempt
    SKIPPED = "skipped"  # on a branch that was not taken (dead-path elimination)
    CANCELLED = "cancelled"  # the execution ended before this attempt finished

    @property
    def terminal(self) -> bool:
        """Whether this attempt is finished for good."""
        return self in TERMINAL_NODE_STATUSES


TERMINAL_NODE_STATUSES = frozenset(
    {
        NodeRunStatus.SUCCEEDED,
        NodeRunStatus.FAILED,
        NodeRunStatus.SKIPPED,
        NodeRunStatus.CANCELLED,
    }
)
LIVE_NODE_STATUSES = frozenset(
    {NodeRunStatus.PENDING, NodeRunStatus.QUEUED, NodeRunStatus.RUNNING, NodeRunStatus.WAITING}
)


class WorkflowStatus(StrEnum):
    """Whether a workflow accepts new executions from its triggers."""

    DRAFT = "draft"  # never published; runs only when asked explicitly
    ACTIVE = "active"  # a version is published and triggers start it
    INACTIVE = "inactive"  # published before, triggers switched off
    ARCHIVED = "archived"  # deleted by the user; kept for its execution history


class OnError(StrEnum):
    """What happens after a node's last attempt fails."""

    FAIL = "fail"  # the execution fails
    CONTINUE = "continue"  # successors run with {"error": ...} as this node's output
    ROUTE = "route"  # only edges with sourceHandle "error" are followed


class JoinMode(StrEnum):
    """When a node with several incoming edges may start."""

    ALL = "all"  # after every predecessor finished or was skipped
    ANY = "any"  # on the first predecessor that reaches it

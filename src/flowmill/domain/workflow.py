"""The workflow model: nodes, edges, policies. Immutable plain data."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from flowmill.domain.states import JoinMode, OnError

BackoffStrategy = Literal["fixed", "exponential"]


@dataclass(frozen=True)
class RetryPolicy:
    """How a failing node is tried again.

    Attributes:
        max_attempts: Total attempts including the first; 1 means no retry.
        backoff_ms: Delay before the second attempt.
        strategy: ``fixed`` keeps ``backoff_ms``; ``exponential`` doubles it per attempt.
        jitter: Fraction (0..1) of each delay that is randomised, to spread retry storms.
        max_backoff_ms: Upper bound of any single delay.
    """

    max_attempts: int = 1
    backoff_ms: int = 1000
    strategy: BackoffStrategy = "exponential"
    jitter: float = 0.0
    max_backoff_ms: int = 300_000


NO_RETRY = RetryPolicy()


@dataclass(frozen=True)
class Node:
    """One node of a workflow graph.

    Attributes:
        id: Unique within the workflow; edges and templates refer to it.
        type: Name of a registered node type (``http_request``, ``transform``...).
        name: Label for people; defaults to the id.
        config: Type-specific configuration, validated by the node type's schema.
        retry: Retry policy; ``None`` inherits the workflow default.
        timeout_s: Wall-clock limit of one attempt; ``None`` inherits the type default.
        on_error: What happens after the last attempt fails.
        join: When a node with several inputs may start.
        extra: Presentation data kept for round trips (``position``, ``notes``).
    """

    id: str
    type: str
    name: str = ""
    config: Mapping[str, Any] = field(default_factory=dict)
    retry: RetryPolicy | None = None
    timeout_s: float | None = None
    on_error: OnError = OnError.FAIL
    join: JoinMode = JoinMode.ALL
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Edge:
    """A directed connection; ``source_handle`` selects a branch output (or ``error``)."""

    source: str
    target: str
    source_handle: str | None = None


ERROR_HANDLE = "error"


@dataclass(frozen=True)
class WorkflowSettings:
    """Workflow-wide defaults and limits.

    Attributes:
        retry: Default retry policy of nodes that set none.
        timeout_s: Wall-clock limit of a whole execution.
        max_concurrent: Executions of this workflow allowed to run at once.
        per_minute: Executions of this workflow allowed to start per minute.
        timezone: IANA zone for schedules and date helpers.
        error_workflow_id: Workflow started with the failure when an execution fails.
        variables: Constants available to templates as ``vars``.
        priority: Queue priority of its executions' steps (higher runs first); a start
            may override it.
    """

    retry: RetryPolicy | None = None
    timeout_s: float | None = None
    max_concurrent: int | None = None
    per_minute: int | None = None
    timezone: str = "UTC"
    error_workflow_id: str | None = None
    variables: Mapping[str, Any] = field(default_factory=dict)
    priority: int = 0


@dataclass(frozen=True)
class Workflow:
    """A workflow definition: what a version stores and an execution runs."""

    name: str
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]
    description: str = ""
    settings: WorkflowSettings = field(default_factory=WorkflowSettings)
    tags: tuple[str, ...] = ()
    tenant_id: str | None = None
    status: str | None = None

    def node(self, node_id: str) -> Node:
        """Return the node with this id.

        Raises:
            KeyError: No such node.
        """
        for n in self.nodes:
            if n.id == node_id:
                return n
        raise KeyError(node_id)

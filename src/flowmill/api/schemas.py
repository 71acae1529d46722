"""Request and response bodies of the HTTP API (pydantic), one model per shape.

Request models forbid unknown fields and bound every number and string, so a body
either validates into something the store can hold or is refused with a 422 that names
the field. The workflow definition's graph rules (edges, cycles, node configs) are
checked afterwards by the engine's own loader, whose issues name their place too.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from flowmill.api.jsonvalue import JsonObject, JsonValue, SafeStr

_INT32 = 2**31 - 1


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- errors ---------------------------------------------------------------------------


class ErrorDetail(_Out):
    """One problem, with where it is."""

    field: str | None = Field(
        None, description="Where: `body.nodes[0].type`, `query.limit`, `cursor`..."
    )
    message: str
    code: str


class ErrorBody(_Out):
    """What went wrong."""

    code: str = Field(description="Stable machine-readable code, e.g. `not_found`.")
    message: str
    details: list[ErrorDetail] = Field(default_factory=list)


class ErrorResponse(_Out):
    """Every 4xx/5xx answer has this shape."""

    error: ErrorBody


# --- workflow definitions (the seed format) --------------------------------------------

NodeId = Annotated[SafeStr, Field(min_length=1, max_length=200)]


class RetryIn(_In):
    """A node's (or the workflow's default) retry policy."""

    max_attempts: int | None = Field(None, ge=1, le=100)
    backoff_ms: int | None = Field(None, ge=0, le=86_400_000)
    strategy: Literal["fixed", "exponential"] | None = None
    jitter: float | bool | None = Field(None, ge=0, le=1)
    max_backoff_ms: int | None = Field(None, ge=0, le=86_400_000)


class NodeIn(_In):
    """One node of the graph."""

    id: NodeId
    type: Annotated[SafeStr, Field(min_length=1, max_length=64)]
    name: Annotated[SafeStr, Field(max_length=300)] | None = None
    config: JsonObject | None = None
    retry: RetryIn | None = None
    timeout_s: float | None = Field(None, gt=0, le=86_400 * 366)
    on_error: Literal["fail", "continue", "route"] | None = None
    join: Literal["all", "any"] | None = None
    position: JsonValue = None
    notes: Annotated[SafeStr, Field(max_length=10_000)] | None = None
    description: Annotated[SafeStr, Field(max_length=10_000)] | None = None


class EdgeIn(_In):
    """A directed connection; ``sourceHandle`` picks a branch output (or ``error``)."""

    source: NodeId
    target: NodeId
    sourceHandle: Annotated[SafeStr, Field(max_length=200)] | bool | None = None
    source_handle: Annotated[SafeStr, Field(max_length=200)] | bool | None = None
    targetHandle: Annotated[SafeStr, Field(max_length=200)] | None = None
    id: Annotated[SafeStr, Field(max_length=200)] | None = None
    label: Annotated[SafeStr, Field(max_length=300)] | None = None


class SettingsIn(_In):
    """Workflow-wide defaults and limits."""

    retry: RetryIn | None = None
    timeout_s: float | None = Field(None, gt=0, le=86_400 * 366)
    max_concurrent: int | None = Field(None, ge=1, le=100_000)
    per_minute: int | None = Field(None, ge=1, le=1_000_000)
    timezone: Annotated[SafeStr, Field(max_length=64)] | None = None
    error_workflow_id: Annotated[SafeStr, Field(max_length=64)] | None = None
    variables: JsonObject | None = None
    vars: JsonObject | None = None


class WorkflowDefinitionIn(_In):
    """A workflow in the seed format: ``nodes`` + ``edges``, or an ordered ``steps`` list.

    ``tenant_id`` is accepted and ignored: the tenant is always the caller's. ``id``,
    ``version`` and ``active`` are accepted so that an export imports unchanged. With
    neither ``nodes`` nor ``steps`` the workflow starts with one manual trigger node.
    """

    name: Annotated[SafeStr, Field(min_length=1, max_length=300)]
    description: Annotated[SafeStr, Field(max_length=10_000)] | None = None
    tenant_id: Annotated[SafeStr, Field(max_length=64)] | None = None
    status: Literal["draft", "active", "inactive"] | None = Field(
        None, description="`active` on create or import publishes version 1 at once."
    )
    nodes: Annotated[list[NodeIn], Field(max_length=1000)] | None = None
    edges: Annotated[list[EdgeIn], Field(max_length=5000)] | None = None
    steps: Annotated[list[NodeIn], Field(max_length=1000)] | None = None
    trigger: JsonObject | None = None
    settings: SettingsIn | None = None
    tags: (
        Annotated[list[Annotated[SafeStr, Field(max_length=100)]], Field(max_length=50)] | None
    ) = None
    id: Annotated[SafeStr, Field(max_length=64)] | None = None
    version: int | None = Field(None, ge=1, le=_INT32)
    active: bool | None = None


class WorkflowPatchIn(_In):
    """Top-level fields to replace in the latest definition; absent ones are kept."""

    name: Annotated[SafeStr, Field(min_length=1, max_length=300)] | None = None
    description: Annotated[SafeStr, Field(max_length=10_000)] | None = None
    nodes: Annotated[list[NodeIn], Field(max_length=1000)] | None = None
    edges: Annotated[list[EdgeIn], Field(max_length=5000)] | None = None
    steps: Annotated[list[NodeIn], Field(max_length=1000)] | None = None
    trigger: JsonObject | None = None
    settings: SettingsIn | None = None
    tags: (
        Annotated[list[Annotated[SafeStr, Field(max_length=100)]], Field(max_length=50)] | None
    ) = None


class VersionIn(_In):
    """A new version of a workflow."""

    definition: WorkflowDefinitionIn
    note: Annotated[SafeStr, Field(max_length=2000)] = ""
    publish: bool = Field(False, description="Make it the active version at once.")


# --- workflows ------------------------------------------------------------------------


class WorkflowSummary(_Out):
    """A workflow in a list."""

    id: str
    name: str
    description: str
    status: Literal["draft", "active", "inactive", "archived"]
    tags: list[str]
    latest_version: int = Field(description="Newest version (what an update created).")
    active_version: int | None = Field(description="Published version that triggers run.")
    created_at: datetime
    updated_at: datetime


class Workflow(WorkflowSummary):
    """A workflow with the definition of its latest version."""

    definition: dict[str, Any]


class WorkflowPage(_Out):
    """A page of workflows, newest first."""

    items: list[WorkflowSummary]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page.")


class VersionSummary(_Out):
    """One version of a workflow."""

    workflow_id: str
    version: int
    definition_hash: str
    note: str
    created_at: datetime
    published_at: datetime | None
    active: bool
    latest: bool


class Version(VersionSummary):
    """One version with its definition."""

    definition: dict[str, Any]


class VersionCreated(Version):
    """The result of adding a version."""

    created: bool = Field(description="False when the definition equals the latest version.")


class VersionPage(_Out):
    """A page of versions, newest first."""

    items: list[VersionSummary]
    next_cursor: str | None


class FieldChangeOut(_Out):
    """A value that differs between two versions."""

    path: str
    before: Any
    after: Any


class NodeChangeOut(_Out):
    """A node present in both versions with different fields."""

    id: str
    changes: list[FieldChangeOut]


class EdgeOut(_Out):
    """An edge's identity."""

    source: str
    target: str
    sourceHandle: str | None


class VersionDiff(_Out):
    """What changed from version ``from_version`` to ``to_version``."""

    workflow_id: str
    from_version: int
    to_version: int
    identical: bool
    fields: list[FieldChangeOut]
    nodes_added: list[str]
    nodes_removed: list[str]
    nodes_changed: list[NodeChangeOut]
    edges_added: list[EdgeOut]
    edges_removed: list[EdgeOut]


# --- executions -----------------------------------------------------------------------

ExecutionStatusName = Literal[
    "pending", "queued", "running", "waiting", "succeeded", "failed", "cancelled"
]
NodeStatusName = Literal[
    "pending", "queued", "running", "waiting", "succeeded", "failed", "skipped", "cancelled"
]


class ExecuteIn(_In):
    """Start an execution."""

    input: JsonValue = Field(None, description="Trigger data; nodes see it as `input.data`.")
    version: int | None = Field(
        None, ge=1, le=_INT32, description="Run this version instead of the published one."
    )


class ExecutionAccepted(_Out):
    """An execution was started (and has not ended yet, if you waited)."""

    execution_id: str
    workflow_id: str
    version: int
    status: ExecutionStatusName


class ExecutionSummaryOut(_Out):
    """An execution in a list."""

    id: str
    workflow_id: str
    version: int
    status: ExecutionStatusName
    trigger_type: str
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    duration_ms: float | None
    retry_of: str | None
    parent_execution_id: str | None
    metadata: dict[str, Any] | None = Field(
        None, description="What it is about: `customerId`, `clientId` of a channel message."
    )


class ExecutionPage(_Out):
    """A page of executions, newest first."""

    items: list[ExecutionSummaryOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page.")


class NodeRunOut(_Out):
    """One attempt of one node."""

    node_id: str
    status: NodeStatusName
    attempt: int
    input: Any
    output: Any
    error: dict[str, Any] | None
    started_at: datetime | None
    completed_at: datetime | None
    duration_ms: float | None


class ExecutionDetail(_Out):
    """An execution with every attempt of every node, oldest first."""

    id: str
    workflow_id: str
    version: int
    status: ExecutionStatusName
    trigger_type: str
    input: Any = Field(description="The trigger data the execution started with.")
    output: Any
    error: dict[str, Any] | None
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    duration_ms: float | None
    retry_of: str | None
    parent_execution_id: str | None
    metadata: dict[str, Any] | None = Field(
        None, description="What it is about: `customerId`, `clientId` of a channel message."
    )
    nodes: list[NodeRunOut]


class LogLineOut(_Out):
    """One line of an execution's log."""

    id: str
    node_id: str | None
    attempt: int | None
    level: str
    message: str
    metadata: dict[str, Any]
    timestamp: datetime


class LogPage(_Out):
    """A page of log lines, oldest first."""

    items: list[LogLineOut]
    next_cursor: str | None


class RetryExecutionIn(_In):
    """How to retry an execution."""

    from_start: bool = Field(
        False,
        description="Run every node again; otherwise reuse the outputs of nodes that "
        "succeeded and resume from the failed ones.",
    )


class CancelResult(_Out):
    """The execution after a cancel request."""

    execution_id: str
    status: ExecutionStatusName


# --- keys, tenant, health -------------------------------------------------------------


class ApiKeyIn(_In):
    """A new API key for the caller's tenant."""

    name: Annotated[SafeStr, Field(max_length=200)] = ""


class ApiKeyOut(_Out):
    """An API key (never its secret)."""

    id: str
    name: str
    prefix: str = Field(description="Shown to tell keys apart; the key starts with it.")
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class ApiKeyCreated(ApiKeyOut):
    """A new key. ``key`` is shown this once and cannot be read again."""

    key: str


class ApiKeyList(_Out):
    """The tenant's keys, newest first."""

    items: list[ApiKeyOut]


class TenantOut(_Out):
    """The caller's tenant."""

    id: str
    name: str
    created_at: datetime
    auth: Literal["api_key", "jwt"] = Field(description="How this request authenticated.")


class Health(_Out):
    """The process is alive."""

    status: Literal["ok"]


class Check(_Out):
    """One readiness check."""

    ok: bool
    detail: str = ""


class Ready(_Out):
    """Whether the service can take traffic, with each dependency's state."""

    status: Literal["ready", "not_ready"]
    checks: dict[str, Check]

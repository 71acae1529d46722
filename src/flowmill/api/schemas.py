"""Request and response bodies of the HTTP API (pydantic), one model per shape.

Request models forbid unknown fields and bound every number and string, so a body
either validates into something the store can hold or is refused with a 422 that names
the field. The workflow definition's graph rules (edges, cycles, node configs) are
checked afterwards by the engine's own loader, whose issues name their place too.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, model_validator

from flowmill import jsonutil
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


class BackoffIn(_In):
    """BullMQ's backoff option (seeds 003, 004)."""

    type: Literal["fixed", "exponential"] = "fixed"
    delay: int | None = Field(None, ge=0, le=86_400_000, description="Milliseconds.")


class RetryIn(_In):
    """A node's (or the workflow's default) retry policy.

    BullMQ's job options ``{"attempts": 3, "backoff": {"type": "exponential", "delay":
    2000}}`` (the seeds' shape) are read as ``max_attempts``, ``backoff_ms``, ``strategy``.
    """

    max_attempts: int | None = Field(None, ge=1, le=100)
    backoff_ms: int | None = Field(None, ge=0, le=86_400_000)
    strategy: Literal["fixed", "exponential"] | None = None
    jitter: float | bool | None = Field(None, ge=0, le=1)
    max_backoff_ms: int | None = Field(None, ge=0, le=86_400_000)
    attempts: int | None = Field(None, ge=1, le=100, description="BullMQ's `max_attempts`.")
    backoff: BackoffIn | Annotated[int, Field(ge=0, le=86_400_000)] | None = Field(
        None, description="BullMQ's backoff; a number is a fixed delay in ms."
    )


class _NodeFields(_In):
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
    attempts: int | None = Field(
        None, ge=1, le=100, description="BullMQ-style retry on the node (`retry.attempts`)."
    )
    backoff: BackoffIn | Annotated[int, Field(ge=0, le=86_400_000)] | None = None


class NodeIn(_NodeFields):
    """One node of the graph."""

    id: NodeId


class StepIn(_NodeFields):
    """One step of an ordered list (seed 002). Without an ``id`` it gets ``step-{i}``.

    A ``conditional`` step may carry ``trueSteps`` / ``falseSteps`` (the two branches,
    both joining the next step), a ``loop`` step nested ``steps`` (its body).
    """

    id: NodeId | None = None
    trueSteps: Annotated[list[StepIn], Field(max_length=1000)] | None = None
    falseSteps: Annotated[list[StepIn], Field(max_length=1000)] | None = None
    steps: Annotated[list[StepIn], Field(max_length=1000)] | None = None


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


Name = Annotated[SafeStr, Field(min_length=1, max_length=300)]


class _DefinitionFields(_In):
    description: Annotated[SafeStr, Field(max_length=10_000)] | None = None
    tenant_id: Annotated[SafeStr, Field(max_length=64)] | None = None
    tenantId: Annotated[SafeStr, Field(max_length=64)] | None = Field(
        None, description="Seed 004's `tenant_id` (ignored alike: the tenant is the caller's)."
    )
    status: Literal["draft", "active", "inactive"] | None = Field(
        None, description="`active` on create or import publishes version 1 at once."
    )
    nodes: Annotated[list[NodeIn], Field(max_length=1000)] | None = None
    edges: Annotated[list[EdgeIn], Field(max_length=5000)] | None = None
    steps: Annotated[list[StepIn], Field(max_length=1000)] | None = None
    actions: Annotated[list[StepIn], Field(max_length=1000)] | None = Field(
        None, description="Seed 003's name for `steps`."
    )
    trigger: JsonObject | None = None
    settings: SettingsIn | None = None
    tags: (
        Annotated[list[Annotated[SafeStr, Field(max_length=100)]], Field(max_length=50)] | None
    ) = None
    id: Annotated[SafeStr, Field(max_length=64)] | None = None
    version: int | None = Field(None, ge=1, le=_INT32)
    active: StrictBool | None = None
    enabled: StrictBool | None = Field(
        None, description="Seed 003's `enabled`: `true` publishes, like `status: active`."
    )
    rateLimitMaxConcurrent: int | None = Field(
        None, ge=1, le=100_000, description="Seed 002's name for `settings.max_concurrent`."
    )
    rateLimitPerMinute: int | None = Field(
        None, ge=1, le=1_000_000, description="Seed 002's name for `settings.per_minute`."
    )
    retryMaxAttempts: int | None = Field(
        None, ge=1, le=100, description="Seed 002's `settings.retry.max_attempts`."
    )
    retryBackoffMs: int | None = Field(
        None, ge=0, le=86_400_000, description="Seed 002's `settings.retry.backoff_ms`."
    )


class WorkflowDefinitionIn(_DefinitionFields):
    """A workflow in the seed format: ``nodes`` + ``edges``, or an ordered ``steps`` list
    (and every other shape of the seed documents: see docs/workflows.md).

    ``tenant_id`` is accepted and ignored: the tenant is always the caller's. ``id``,
    ``version`` and ``active`` are accepted so that an export imports unchanged. With
    neither ``nodes`` nor ``steps`` the workflow starts with one manual trigger node.
    """

    name: Name


class VersionDefinitionIn(_DefinitionFields):
    """A definition for an existing workflow: without a ``name`` it keeps the workflow's."""

    name: Name | None = None


class WorkflowPatchIn(_In):
    """Top-level fields to replace in the latest definition; absent ones are kept.

    ``enabled`` (seed 003) publishes the result (``true``) or deactivates the workflow
    (``false``); a seed 002 rate-limit or retry field replaces its setting alone.
    """

    name: Name | None = None
    description: Annotated[SafeStr, Field(max_length=10_000)] | None = None
    nodes: Annotated[list[NodeIn], Field(max_length=1000)] | None = None
    edges: Annotated[list[EdgeIn], Field(max_length=5000)] | None = None
    steps: Annotated[list[StepIn], Field(max_length=1000)] | None = None
    actions: Annotated[list[StepIn], Field(max_length=1000)] | None = None
    trigger: JsonObject | None = None
    settings: SettingsIn | None = None
    tags: (
        Annotated[list[Annotated[SafeStr, Field(max_length=100)]], Field(max_length=50)] | None
    ) = None
    enabled: bool | None = None
    rateLimitMaxConcurrent: int | None = Field(None, ge=1, le=100_000)
    rateLimitPerMinute: int | None = Field(None, ge=1, le=1_000_000)
    retryMaxAttempts: int | None = Field(None, ge=1, le=100)
    retryBackoffMs: int | None = Field(None, ge=0, le=86_400_000)


class VersionIn(_In):
    """A new version of a workflow (seed 002: ``{"definition": {...}}``)."""

    definition: VersionDefinitionIn
    note: Annotated[SafeStr, Field(max_length=2000)] = ""
    publish: StrictBool = Field(False, description="Make it the active version at once.")
    base_version: int | None = Field(
        None,
        ge=1,
        le=_INT32,
        description=(
            "The version this change was made from. When another version was saved since, "
            "nothing is saved and the answer is 409 `version_conflict` (optimistic "
            "concurrency: two editors never overwrite each other)."
        ),
    )


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


class PublishWarning(_Out):
    """Something a publish opened that the caller should know about."""

    code: Literal["unverified_webhook"]
    node_id: str = Field(description="The trigger node concerned.")
    path: str = Field(description="The URL path that now starts the workflow.")
    message: str


class Workflow(WorkflowSummary):
    """A workflow with the definition of its latest version."""

    definition: dict[str, Any]
    warnings: list[PublishWarning] = Field(
        default_factory=list,
        description="Set by a publish: e.g. webhook routes anyone may call unverified.",
    )


class WorkflowPage(_Out):
    """A page of workflows, newest first."""

    items: list[WorkflowSummary]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page.")


class VersionSummary(_Out):
    """One version of a workflow."""

    id: str = Field(description="The version's id; paths take it or the `version` number.")
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
# Filters also take the seeds' name for a success (seeds 002 and 003 say "completed").
ExecutionStatusFilter = Literal[
    "pending", "queued", "running", "waiting", "succeeded", "failed", "cancelled", "completed"
]
STATUS_ALIASES = {"completed": "succeeded"}
NodeStatusName = Literal[
    "pending", "queued", "running", "waiting", "succeeded", "failed", "skipped", "cancelled"
]


class ExecuteIn(_In):
    """Start an execution.

    ``data`` and ``triggerData`` (the seeds' names) are accepted for ``input``, and
    ``nodeId`` (seed 004's ``triggerWorkflowNode(nodeId)``) for ``trigger_node_id``.
    """

    input: JsonValue = Field(None, description="Trigger data; nodes see it as `input.data`.")
    version: int | None = Field(
        None, ge=1, le=_INT32, description="Run this version instead of the published one."
    )
    trigger_node_id: NodeId | None = Field(
        None,
        description="Start at this trigger node (a workflow may have several); default: "
        "the first trigger for a manual start.",
    )
    metadata: JsonObject | None = Field(
        None, description="Extra fields of the trigger output (`trigger.<key>`)."
    )
    priority: int | None = Field(
        None,
        ge=-100,
        le=100,
        description="Queue priority of this execution's steps, higher first (default: the "
        "workflow's `settings.priority`, else 0).",
    )
    data: JsonValue = Field(None, description="Seed name of `input`.")
    triggerData: JsonValue = Field(None, description="Seed name of `input`.")
    nodeId: NodeId | None = Field(None, description="Seed name of `trigger_node_id`.")

    @model_validator(mode="after")
    def _one_of_each(self) -> ExecuteIn:
        for canonical, aliases in (
            ("input", ("data", "triggerData")),
            ("trigger_node_id", ("nodeId",)),
        ):
            given = [n for n in (canonical, *aliases) if n in self.model_fields_set]
            values = {jsonutil.dumps(getattr(self, n)) for n in given}
            if len(values) > 1:
                raise ValueError(f"{' and '.join(given)} are the same field and disagree")
            if given and canonical not in self.model_fields_set:
                setattr(self, canonical, getattr(self, given[0]))
        return self


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
    parent_node_id: str | None = Field(
        None, description="The parent's loop or sub_workflow node that started it."
    )
    iteration: int | None = Field(None, description="The loop item's index (loop children).")
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
    parent_node_id: str | None = Field(
        None, description="The parent's loop or sub_workflow node that started it."
    )
    iteration: int | None = Field(None, description="The loop item's index (loop children).")
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

    from_start: StrictBool = Field(
        False,
        description="Run every node again; otherwise reuse the outputs of nodes that "
        "succeeded and resume from the failed ones.",
    )
    from_node: NodeId | None = Field(
        None,
        description="Run this node and every node after it again; the nodes before it "
        "keep their outputs from this execution (a test run from one node onward). "
        "Allowed on a succeeded execution.",
    )
    version: int | None = Field(
        None,
        ge=1,
        le=_INT32,
        description="With `from_node`: the workflow version to run (a draft saved since "
        "this execution); default this execution's.",
    )
    pinned: Annotated[dict[NodeId, JsonValue], Field(max_length=1000)] | None = Field(
        None,
        description="With `from_node`: outputs to use instead of this execution's, by node "
        "id (test data); only for nodes before `from_node`. A pinned trigger's output "
        "is also the new execution's `trigger`.",
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


class SignalAccepted(_Out):
    """A signal kept for the execution (delivered to its wait, now or when it gets there)."""

    execution_id: str
    signal: str
    status: Literal["accepted"] = "accepted"


class ResumeResult(_Out):
    """What a resume URL's use did."""

    execution_id: str
    status: Literal["resumed"] = "resumed"


# --- editor ---------------------------------------------------------------------------


class NodeHandlesOut(_Out):
    """Where edges attach to nodes of a type."""

    input: bool = Field(description="Whether edges may enter (not for triggers).")
    outputs: list[str] = Field(
        description="Named outputs known without a config; empty: one default output."
    )
    outputs_from: str | None = Field(
        description="Config path naming more outputs, e.g. `cases[].handle` (switch)."
    )
    error: bool = Field(description="Whether an `error` output exists with `on_error: route`.")


class NodeTypeOut(_Out):
    """A node type an editor can offer, with the JSON Schema of its config."""

    type: str = Field(description="The `type` of nodes in definitions.")
    label: str
    description: str
    category: str = Field(description="Palette group: triggers, flow, data, code, plugins...")
    icon: str = Field(description="Icon hint (a name, e.g. `bolt`, `globe`).")
    is_trigger: bool
    plugin: bool = Field(description="Installed by a plugin rather than built in.")
    handles: NodeHandlesOut
    code_fields: list[str] = Field(description="Config fields holding code, not templates.")
    config_schema: dict[str, Any] = Field(
        description="JSON Schema of `config` (from the type's pydantic model, by alias)."
    )


class NodeTypeList(_Out):
    """Every node type registered in this server, built-in and plugin."""

    items: list[NodeTypeOut]


class ValidationProblem(_Out):
    """One problem of a definition, naming the node or edge it is on."""

    path: str = Field(description="Where: `nodes[process-1].config.code`, `edges[2].target`...")
    node_id: str | None = Field(description="The node it is on, if it is on one.")
    edge_index: int | None = Field(description="The edge (index in `edges`) it is on, if any.")
    code: str = Field(description="Stable machine-readable code, e.g. `unreachable`.")
    message: str


class ValidationOut(_Out):
    """Every problem found at once; ``valid`` when there is none."""

    valid: bool
    problems: list[ValidationProblem]

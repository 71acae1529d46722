"""The data of jobs on the BullMQ queues: the wire schema shared with other producers.

Node.js services add trigger jobs to ``flowmill-trigger`` with this schema, so it is
documented in ``docs/queues.md``; change both together. They may also add to the node
queue what seed 004's webhook handler adds to ``workflow-node-execution``: a job naming
a trigger node (``nodeId``, ``payload``, ``metadata``), which starts executions as the
seed webhook route would. Incoming data is validated here and refused with a message
naming the field: a bad job fails alone, never the worker.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Annotated, Any, TypeVar

from pydantic import (
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)

from flowmill import jsonutil
from flowmill.domain.errors import Invalid
from flowmill.engine.ports import StepJob, TriggerJob
from flowmill.triggers.definitions import route_of

STEP_JOB_NAME = "step"
TRIGGER_JOB_NAME = "trigger"

# BullMQ priorities run from 1 (first) to 2**21 (last); 0 means "no priority". Every
# job of ours is prioritized, around the middle of that range, so both directions of
# the engine's priority (higher runs first, like the local queue) keep their order.
_BULLMQ_MAX_PRIORITY = 2**21
_PRIORITY_ORIGIN = 2**20


class JobDataError(Invalid):
    """Job data that does not follow the schema; the message names the fields."""


def _id_text(value: Any) -> Any:
    # Ids from Node.js producers may be numbers (Prisma int keys); bools are not ids.
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


Id = Annotated[
    str,
    StringConstraints(strict=True, min_length=1, max_length=255),
    BeforeValidator(_id_text),
]


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, validate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _one_spelling(cls, data: Any) -> Any:
        """Refuse a field given under two spellings with different values."""
        if not isinstance(data, dict):
            raise ValueError(f"job data must be a JSON object, not {type(data).__name__}")
        for name, field in cls.model_fields.items():
            alias = field.validation_alias
            names = alias.choices if isinstance(alias, AliasChoices) else [name]
            given = {str(n): data[n] for n in names if isinstance(n, str) and n in data}
            if len(given) > 1 and len({jsonutil.dumps(v) for v in given.values()}) > 1:
                raise ValueError(f"{' and '.join(given)} disagree")
        return data


W = TypeVar("W", bound=_Wire)


def _either(snake: str, camel: str) -> Any:
    return AliasChoices(snake, camel)


class StepData(_Wire):
    """Data of a ``flowmill-node`` job."""

    execution_id: Id = Field(validation_alias=_either("execution_id", "executionId"))
    node_id: Id = Field(validation_alias=_either("node_id", "nodeId"))
    attempt: int = Field(ge=1, strict=True)
    tenant_id: str = Field(default="", validation_alias=_either("tenant_id", "tenantId"))
    wake: int = Field(default=0, ge=0, strict=True)


class TriggerData(_Wire):
    """Data of a ``flowmill-trigger`` job (camelCase as in the seed documents works too)."""

    tenant_id: Id = Field(validation_alias=_either("tenant_id", "tenantId"))
    workflow_id: Id | None = Field(
        default=None, validation_alias=_either("workflow_id", "workflowId")
    )
    trigger_type: Annotated[str, StringConstraints(strict=True, min_length=1, max_length=255)] = (
        Field(validation_alias=_either("trigger_type", "triggerType"))
    )
    data: Any = Field(default=None, validation_alias=_either("data", "triggerData"))
    version: int | None = Field(default=None, ge=1, strict=True)
    node_id: Id | None = Field(default=None, validation_alias=_either("node_id", "nodeId"))
    dedupe_key: Annotated[str, StringConstraints(strict=True, max_length=512)] | None = Field(
        default=None, validation_alias=_either("dedupe_key", "dedupeKey")
    )
    metadata: dict[str, Any] | None = None
    webhook_event_id: Id | None = Field(
        default=None, validation_alias=_either("webhook_event_id", "webhookEventId")
    )

    @model_validator(mode="after")
    def _has_target(self) -> TriggerData:
        if self.workflow_id is None and self.webhook_event_id is None:
            raise ValueError("workflow_id: Field required")
        return self


class NodeTriggerData(_Wire):
    """A job on the node queue that starts a workflow at a trigger node (seed 004's
    ``createExecutionTask``): ``{nodeId, payload, metadata: {clientId, sourceType,
    actionType, ...}}``. Its ``credentials`` are ignored: nodes use the credential store.
    """

    node_id: Id = Field(validation_alias=_either("node_id", "nodeId"))
    tenant_id: Id | None = Field(default=None, validation_alias=_either("tenant_id", "tenantId"))
    workflow_id: Id | None = Field(
        default=None, validation_alias=_either("workflow_id", "workflowId")
    )
    trigger_type: Annotated[str, StringConstraints(strict=True, min_length=1, max_length=255)] = (
        Field(default="webhook", validation_alias=_either("trigger_type", "triggerType"))
    )
    payload: Any = Field(default=None, validation_alias=AliasChoices("payload", "data"))
    metadata: dict[str, Any] | None = None
    version: int | None = Field(default=None, ge=1, strict=True)
    dedupe_key: Annotated[str, StringConstraints(strict=True, max_length=512)] | None = Field(
        default=None, validation_alias=_either("dedupe_key", "dedupeKey")
    )


def _validate(model: type[W], data: Any) -> W:
    try:
        return model.model_validate(data)
    except ValidationError as err:
        parts = []
        for e in err.errors(include_url=False):
            where = ".".join(str(p) for p in e["loc"])
            parts.append(f"{where}: {e['msg']}" if where else str(e["msg"]))
        raise JobDataError("; ".join(parts)) from None


def encode_step(job: StepJob) -> dict[str, Any]:
    """The data of a step job (its scheduling lives in the job options)."""
    return {
        "execution_id": job.execution_id,
        "node_id": job.node_id,
        "attempt": job.attempt,
        "tenant_id": job.tenant_id,
        "wake": job.wake,
    }


def decode_step(data: Any, priority: int = 0) -> StepJob:
    """Parse the data of a ``flowmill-node`` job.

    Raises:
        JobDataError: It does not follow the schema.
    """
    d = _validate(StepData, data)
    return StepJob(
        d.execution_id,
        d.node_id,
        d.attempt,
        tenant_id=d.tenant_id,
        wake=d.wake,
        priority=from_bullmq_priority(priority),
    )


def decode_node_job(data: Any, priority: int = 0) -> StepJob | TriggerJob:
    """Parse the data of a job on the node queue: a step job, or a trigger-node job.

    A trigger-node job names its workflow (``workflowId``; ``nodeId`` is then the
    trigger node to start at), or else the seed route its metadata describes
    (``metadata.sourceType``/``actionType``, or the ``{clientId}-{triggerType}-
    {actionType}`` form of its ``nodeId``): every active webhook trigger of the tenant
    (``tenantId`` or ``metadata.clientId``) on that route starts.

    Raises:
        JobDataError: It is neither.
    """
    if not isinstance(data, dict) or any(k in data for k in ("execution_id", "executionId")):
        return decode_step(data, priority)
    d = _validate(NodeTriggerData, data)
    meta = d.metadata or {}
    tenant = d.tenant_id or _id_text(meta.get("clientId"))
    if not isinstance(tenant, str) or not tenant:
        raise JobDataError("tenant_id: Field required (or metadata.clientId)")
    common: dict[str, Any] = {
        "tenant_id": tenant,
        "data": d.payload,
        "metadata": meta,
        "dedupe_key": d.dedupe_key,
        "priority": from_bullmq_priority(priority),
    }
    if d.workflow_id is not None:
        return TriggerJob(
            workflow_id=d.workflow_id,
            trigger_type=d.trigger_type,
            node_id=d.node_id,
            version=d.version,
            **common,
        )
    source, action = meta.get("sourceType"), meta.get("actionType")
    if not (isinstance(source, str) and isinstance(action, str) and source and action):
        rest = d.node_id.removeprefix(f"{tenant}-")
        parts = rest.split("-")
        if rest == d.node_id or len(parts) != 2 or not all(parts):
            raise JobDataError(
                "workflow_id: Field required (or metadata.sourceType and metadata.actionType, "
                "or a node_id of the form {clientId}-{triggerType}-{actionType})"
            )
        source, action = parts
    return TriggerJob(
        workflow_id="", trigger_type=d.trigger_type, route=route_of(source, action), **common
    )


def encode_trigger(job: TriggerJob) -> dict[str, Any]:
    """The data of a trigger job; optional fields only when set."""
    out: dict[str, Any] = {
        "tenant_id": job.tenant_id,
        "trigger_type": job.trigger_type,
        # Round trip through the house JSON helper: the payload may hold values (sets,
        # bytes) the bullmq package's json.dumps refuses.
        "data": jsonutil.loads(jsonutil.dumps(job.data)),
    }
    if job.workflow_id:
        out["workflow_id"] = job.workflow_id
    if job.webhook_event_id is not None:
        out["webhook_event_id"] = job.webhook_event_id
    if job.version is not None:
        out["version"] = job.version
    if job.node_id is not None:
        out["node_id"] = job.node_id
    if job.dedupe_key is not None:
        out["dedupe_key"] = job.dedupe_key
    if job.metadata:
        out["metadata"] = jsonutil.loads(jsonutil.dumps(job.metadata))
    return out


def decode_trigger(data: Any, priority: int = 0) -> TriggerJob:
    """Parse the data of a ``flowmill-trigger`` job.

    Raises:
        JobDataError: It does not follow the schema.
    """
    d = _validate(TriggerData, data)
    return TriggerJob(
        tenant_id=d.tenant_id,
        workflow_id=d.workflow_id or "",
        trigger_type=d.trigger_type,
        data=d.data,
        version=d.version,
        node_id=d.node_id,
        dedupe_key=d.dedupe_key,
        metadata=d.metadata or {},
        priority=from_bullmq_priority(priority),
        webhook_event_id=d.webhook_event_id,
    )


def to_bullmq_priority(priority: int) -> int:
    """BullMQ's priority for the engine's (higher runs first, 0 is normal)."""
    return min(_BULLMQ_MAX_PRIORITY, max(1, _PRIORITY_ORIGIN - priority))


def from_bullmq_priority(priority: int) -> int:
    """The engine's priority of a BullMQ job (0 for jobs added without one)."""
    return _PRIORITY_ORIGIN - priority if priority > 0 else 0


def delay_ms(not_before: datetime | None, now_ms: int) -> int:
    """Milliseconds from ``now_ms`` to ``not_before``, rounded up.

    Rounding down would let the job fire a fraction of a millisecond early; the
    runner then parks it again under the same job id, which is still active.
    """
    if not_before is None:
        return 0
    return max(0, math.ceil(not_before.timestamp() * 1000) - now_ms)

"""Request and response bodies of webhooks, triggers and custom events."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, StrictBool

from flowmill.api.jsonvalue import JsonObject, JsonValue, SafeStr

ProviderName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,31}$", description="Provider.")]
RespondModeName = Literal["immediate", "last_node", "response_node"]
WebhookEventStatusName = Literal[
    "received", "processed", "duplicate", "rejected", "no_match", "failed"
]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RespondIn(_In):
    """When the webhook answers its caller."""

    mode: RespondModeName = Field(
        "immediate",
        description="`immediate`: once recorded. `last_node`: with the execution's "
        "output when it ends. `response_node`: with the `response` node's output, "
        "status and headers.",
    )
    timeout_s: float = Field(
        10.0, gt=0, le=300, description="Longest wait of the late modes; then 202."
    )


class WebhookIn(_In):
    """A webhook to register for a workflow's trigger node.

    Seed 004's ``WebhookRegistrationCommand`` spelling works too: ``workflowId``,
    ``nodeId``, and ``tenantId`` (ignored: the tenant is the caller's).
    """

    name: Annotated[SafeStr, Field(max_length=200)] = ""
    workflow_id: uuid.UUID = Field(validation_alias=AliasChoices("workflow_id", "workflowId"))
    node_id: Annotated[SafeStr, Field(min_length=1, max_length=200)] = Field(
        validation_alias=AliasChoices("node_id", "nodeId")
    )
    tenantId: Annotated[SafeStr, Field(max_length=64)] | None = Field(
        None, description="Seed 004's tenantId; ignored (the tenant is the caller's)."
    )
    provider: ProviderName
    secret: Annotated[str, Field(min_length=1, max_length=4096)] | None = Field(
        None, description="Signing secret (stored encrypted, never shown again)."
    )
    previous_secret: Annotated[str, Field(min_length=1, max_length=4096)] | None = Field(
        None, description="Also accepted while senders rotate to `secret`."
    )
    config: JsonObject | None = Field(None, description="The provider's config.")
    respond: RespondIn | None = None


class RespondOut(_Out):
    """A webhook's respond mode."""

    mode: RespondModeName
    timeout_s: float


class WebhookOut(_Out):
    """A registered webhook (never its secret)."""

    id: str
    name: str
    workflow_id: str
    node_id: str
    provider: str
    origin: Literal["api", "definition"]
    status: Literal["active", "inactive"]
    urls: list[str] = Field(description="Where senders POST (and Meta sends its GET).")
    config: dict[str, Any] = Field(description="The provider's config.")
    respond: RespondOut
    secret_hint: str | None = Field(description="Last characters of the secret, if any.")
    created_at: datetime
    updated_at: datetime


class WebhookPage(_Out):
    """A page of webhooks, newest first."""

    items: list[WebhookOut]
    next_cursor: str | None


class WebhookEventOut(_Out):
    """One request a webhook received, and what became of it."""

    id: str
    webhook_id: str | None
    status: WebhookEventStatusName
    verified: bool
    verification_error: str | None = Field(description="Why verification failed.")
    event_type: str | None
    dedupe_key: str | None
    method: str
    path: str
    execution_ids: list[str]
    error: str | None
    received_at: datetime
    processed_at: datetime | None


class WebhookEventPage(_Out):
    """A page of webhook events, newest first."""

    items: list[WebhookEventOut]
    next_cursor: str | None


class WebhookAck(_Out):
    """The acknowledgement of a webhook request."""

    event_id: str
    status: WebhookEventStatusName
    execution_id: str | None = None


class TriggerOut(_Out):
    """A trigger: a webhook, a schedule or an event trigger."""

    id: str
    workflow_id: str
    node_id: str
    kind: Literal["webhook", "schedule", "event"]
    name: str
    origin: Literal["api", "definition"]
    enabled: bool
    provider: str | None
    config: dict[str, Any]
    last_run_at: datetime | None
    next_run_at: datetime | None
    created_at: datetime
    updated_at: datetime


class TriggerPage(_Out):
    """A page of triggers, newest first."""

    items: list[TriggerOut]
    next_cursor: str | None


class TriggerPatchIn(_In):
    """Switch a trigger on or off."""

    enabled: StrictBool


class NextRunsOut(_Out):
    """The next fire times of a schedule."""

    trigger_id: str
    timezone: str
    next_runs: list[datetime]


class EventIn(_In):
    """A custom event for event triggers."""

    type: Annotated[
        str,
        Field(
            pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$",
            description="Event type, e.g. `order.created`. Domain prefixes "
            "(`execution.`, `node.`, `workflow.`, `webhook.`, `tenant.`, `credential.`) "
            "are reserved.",
        ),
    ]
    data: JsonValue = None


class EventOut(_Out):
    """A stored custom event."""

    id: str
    type: str
    sequence: int
    timestamp: datetime

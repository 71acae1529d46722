"""Domain events: every state change is recorded as one (DESIGN §6)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class EventType(StrEnum):
    """Names of the domain events written to the event store."""

    TENANT_CREATED = "tenant.created"
    WORKFLOW_CREATED = "workflow.created"
    WORKFLOW_UPDATED = "workflow.updated"
    WORKFLOW_PUBLISHED = "workflow.published"
    WORKFLOW_DELETED = "workflow.deleted"
    VERSION_CREATED = "workflow.version_created"
    WEBHOOK_RECEIVED = "webhook.received"
    CREDENTIAL_CREATED = "credential.created"
    CREDENTIAL_UPDATED = "credential.updated"
    CREDENTIAL_DELETED = "credential.deleted"
    CREDENTIAL_ROTATED = "credential.rotated"
    CREDENTIAL_USED = "credential.used"  # a decryption: who, which node, which execution
    CREDENTIAL_REFRESHED = "credential.refreshed"  # an OAuth2 token renewed and sealed back
    AGENT_CREATED = "agent.created"
    AGENT_UPDATED = "agent.updated"
    AGENT_DELETED = "agent.deleted"
    CHANNEL_CREATED = "channel.created"
    CHANNEL_UPDATED = "channel.updated"
    CHANNEL_DELETED = "channel.deleted"
    EXECUTION_QUEUED = "execution.queued"
    EXECUTION_STARTED = "execution.started"
    EXECUTION_WAITING = "execution.waiting"
    EXECUTION_COMPLETED = "execution.completed"
    EXECUTION_FAILED = "execution.failed"
    EXECUTION_CANCELLED = "execution.cancelled"
    NODE_STARTED = "node.started"
    NODE_COMPLETED = "node.completed"
    NODE_FAILED = "node.failed"
    NODE_RETRY_SCHEDULED = "node.retry_scheduled"
    NODE_WAITING = "node.waiting"
    NODE_SKIPPED = "node.skipped"
    NODE_CANCELLED = "node.cancelled"


@dataclass(frozen=True)
class DomainEvent:
    """One recorded fact. The store gives it a per-tenant ``sequence`` when it commits.

    Attributes:
        id: Time-ordered UUID.
        tenant_id: Owner; sequences count per tenant.
        stream_id: The aggregate it belongs to (an execution id, a workflow id...).
        type: What happened.
        payload: JSON-able details.
        timestamp: When it happened (UTC).
        sequence: Position in the tenant's stream; 0 until stored.
    """

    id: str
    tenant_id: str
    stream_id: str
    type: str
    payload: dict[str, Any] = field(default_factory=dict)
    timestamp: datetime | None = None
    sequence: int = 0

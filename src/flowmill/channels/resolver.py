"""From a webhook payload to its channel, its customer and the execution's metadata.

The dispatcher asks before starting each target workflow of a delivery:

- a payload no channel kind recognises starts as before, without metadata;
- an Instagram message becomes ``{"source": "instagram", "customerId", "clientId",
  "channelId", "conversationId", "accountId", "agentId", "replyCredential", "text",
  "messageId"}`` when a channel of the tenant has the account in the payload;
  ``clientId`` is the channel (seed 004), the conversation is channel + customer;
- an echo (the business's own message) starts nothing: answering it would loop;
- a channel that names a workflow starts only that one among the route's targets
  (several accounts can share one route, each with its own workflow).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flowmill.channels import instagram
from flowmill.channels.store import ChannelRepository


@dataclass(frozen=True)
class ChannelMatch:
    """What a delivery means for one target workflow.

    Attributes:
        metadata: The execution's metadata (``None``: none).
        skip: Why this workflow must not start (``None``: start it).
    """

    metadata: dict[str, Any] | None = None
    skip: str | None = None


def conversation_of(channel_id: str, customer_id: str) -> str:
    """The default conversation of a customer on a channel."""
    return f"{channel_id}:{customer_id}"


class ChannelResolver:
    """Matches deliveries to the tenant's channels."""

    def __init__(self, channels: ChannelRepository) -> None:
        self.channels = channels

    async def match(self, tenant_id: str, workflow_id: str, payload: Any) -> ChannelMatch:
        """The match of ``payload`` for ``workflow_id`` (one of the route's targets)."""
        message = instagram.read(payload)
        if message is None:
            return ChannelMatch()
        if message.echo:
            return ChannelMatch(skip="an echo of the account's own message")
        metadata: dict[str, Any] = {
            "source": instagram.KIND,
            "customerId": message.customer_id,
            "accountId": message.account_id,
            "text": message.text,
            "messageId": message.message_id,
        }
        channel = await self.channels.by_account(tenant_id, instagram.KIND, message.account_id)
        if channel is None:
            return ChannelMatch(metadata)
        if channel.workflow_id is not None and channel.workflow_id != workflow_id:
            return ChannelMatch(skip=f"channel {channel.id} answers with another workflow")
        metadata.update(
            {
                "clientId": channel.id,
                "channelId": channel.id,
                "conversationId": conversation_of(channel.id, message.customer_id),
                "agentId": channel.agent_id,
                "replyCredential": channel.credential,
            }
        )
        return ChannelMatch({k: v for k, v in metadata.items() if v is not None})

"""``instagram_send``: send a message to an Instagram user through the Graph API.

``POST {base_url}/{api_version}/{account_id}/messages`` with ``{"recipient": {"id"},
"message": {"text"}}`` and the account's access token; the answer is ``{"recipient_id",
"message_id"}``. Graph errors are ``{"error": {"message", "type", "code",
"error_subcode", "fbtrace_id"}}``: throttling codes (4, 17, 32, 613) and transient ones
(1, 2) are retried, an expired or revoked token (190) is not.

Inside a channel's workflow the recipient, account and credential default to the
trigger's metadata (the customer who wrote, the channel's account and reply
credential). Graph accepts no idempotency key: a send repeated after a crash between
the call and the checkpoint reaches the customer twice (docs/agents.md).
"""

from __future__ import annotations

from typing import Any, ClassVar
from urllib.parse import quote

from pydantic import Field

from flowmill.engine.templates import stringify
from flowmill.nodes.base import NodeConfig, NodeContext, NodeType
from flowmill.nodes.connectors._service import (
    call,
    http_failure,
    open_credential,
    parse,
    required,
)
from flowmill.nodes.fields import credential_field

#: Graph error codes that a later attempt may get past.
TRANSIENT_CODES = frozenset({1, 2, 4, 17, 32, 613})
MAX_TEXT = 1000  # Instagram's limit on a text message


class InstagramSendConfig(NodeConfig):
    """Config of ``instagram_send``; strings are templates."""

    text: str = Field(min_length=1)
    recipient_id: str = Field("{{trigger.metadata.customerId}}", min_length=1)
    account_id: str = Field("{{trigger.metadata.accountId}}", min_length=1)
    credential: str = credential_field(
        "bearer", "oauth2", default="{{trigger.metadata.replyCredential}}", min_length=1
    )
    base_url: str = Field("https://graph.facebook.com", pattern=r"^(https?://|\{\{)")
    api_version: str = Field("v21.0", pattern=r"^v\d+\.\d+$")
    timeout_s: float = Field(30.0, gt=0, le=300)


def _describe(body: Any) -> tuple[str | None, Any]:
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return None, None
    return error.get("message"), error.get("code")


class InstagramSendNode(NodeType[InstagramSendConfig]):
    """Sends a text message to an Instagram user (a reply to a DM)."""

    type_name = "instagram_send"
    Config = InstagramSendConfig
    description: ClassVar[str] = "Send an Instagram direct message (Graph API)."

    async def execute(self, ctx: NodeContext, config: InstagramSendConfig) -> Any:
        r = await ctx.render(
            {
                "text": config.text,
                "recipient_id": config.recipient_id,
                "account_id": config.account_id,
                "credential": config.credential,
                "base_url": config.base_url,
            }
        )
        required(r, "text", "recipient_id", "account_id", "credential", "base_url")
        cred = await open_credential(ctx, stringify(r["credential"]))
        url = (
            f"{stringify(r['base_url']).rstrip('/')}/{config.api_version}/"
            f"{quote(stringify(r['account_id']), safe='')}/messages"
        )
        recipient = stringify(r["recipient_id"])
        body: dict[str, Any] = {
            "recipient": {"id": recipient},
            "messaging_type": "RESPONSE",
            "message": {"text": stringify(r["text"])[:MAX_TEXT]},
        }
        response = await call(ctx, cred, "POST", url, json_body=body, timeout_s=config.timeout_s)
        if response.status >= 400:
            raise http_failure(
                "the Graph API", response, cred, _describe, retriable_codes=TRANSIENT_CODES
            )
        answer = parse(response) or {}
        ctx.log.info("Instagram message sent", recipient_id=recipient)
        return {
            "recipient_id": answer.get("recipient_id", recipient),
            "message_id": answer.get("message_id"),
        }

"""``gmail_send``: send an e-mail through the Gmail API with an OAuth2 credential.

``POST {base_url}/gmail/v1/users/me/messages/send`` with ``{"raw": <base64url of the
RFC 5322 message>}`` and a fresh access token (refreshed before it expires, and once
after a 401); the answer is ``{"id", "threadId", "labelIds"}``. Errors are ``{"error":
{"code", "message", "status", "errors": [{"reason"}]}}``: 429, 5xx and the rate-limit
reasons of a 403 are retried. The message's ``Message-ID`` is made from the step's
idempotency key, so a send repeated after a crash carries the same id (Gmail accepts
no idempotency key; mail clients collapse messages with one Message-ID).
"""

from __future__ import annotations

import base64
from typing import Any, ClassVar

from pydantic import Field

from flowmill.engine.templates import stringify
from flowmill.nodes.base import NodeConfig, NodeContext, NodeType
from flowmill.nodes.connectors._mail import build_message
from flowmill.nodes.connectors._service import (
    call,
    http_failure,
    open_credential,
    parse,
    required,
)
from flowmill.nodes.fields import credential_field

RATE_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded", "backendError"})


class GmailSendConfig(NodeConfig):
    """Config of ``gmail_send``; strings are templates. ``to``/``cc``/``bcc`` take an
    address, a comma-separated list or a list."""

    credential: str = credential_field("oauth2", min_length=1)
    to: Any
    subject: str = ""
    text: str | None = None
    html: str | None = None
    cc: Any = None
    bcc: Any = None
    reply_to: str | None = None
    sender: str | None = Field(None, alias="from")
    base_url: str = Field("https://gmail.googleapis.com", pattern=r"^(https?://|\{\{)")
    timeout_s: float = Field(30.0, gt=0, le=300)


def _describe(body: Any) -> tuple[str | None, Any]:
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return None, None
    reasons = [e.get("reason") for e in error.get("errors") or () if isinstance(e, dict)]
    reason = next((r for r in reasons if r in RATE_REASONS), reasons[0] if reasons else None)
    return error.get("message"), reason or error.get("status")


class GmailSendNode(NodeType[GmailSendConfig]):
    """Sends an e-mail from the credential's Gmail account."""

    type_name = "gmail_send"
    Config = GmailSendConfig
    description: ClassVar[str] = "Send an e-mail with the Gmail API (OAuth2)."

    async def execute(self, ctx: NodeContext, config: GmailSendConfig) -> Any:
        r = await ctx.render(
            {
                "credential": config.credential,
                "to": config.to,
                "cc": config.cc,
                "bcc": config.bcc,
                "subject": config.subject,
                "text": config.text,
                "html": config.html,
                "reply_to": config.reply_to,
                "from": config.sender,
                "base_url": config.base_url,
            }
        )
        required(r, "credential", "base_url")
        msg = build_message(ctx, r)
        cred = await open_credential(ctx, stringify(r["credential"]))
        raw = base64.urlsafe_b64encode(msg.as_bytes()).decode("ascii")
        url = f"{stringify(r['base_url']).rstrip('/')}/gmail/v1/users/me/messages/send"
        response = await call(
            ctx, cred, "POST", url, json_body={"raw": raw}, timeout_s=config.timeout_s
        )
        if response.status >= 400:
            raise http_failure("Gmail", response, cred, _describe, retriable_codes=RATE_REASONS)
        answer = parse(response) or {}
        ctx.log.info("e-mail sent with Gmail", message_id=answer.get("id"))
        return {
            "id": answer.get("id"),
            "thread_id": answer.get("threadId"),
            "message_id": msg["Message-ID"],
        }

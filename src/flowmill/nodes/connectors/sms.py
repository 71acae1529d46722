"""``sms_send``: send an SMS with Twilio's Messages API.

``POST {base_url}/2010-04-01/Accounts/{AccountSid}/Messages.json`` with a form
``To``, ``From`` (or ``MessagingServiceSid``) and ``Body``, authenticated by HTTP Basic
with the account SID as user name and the auth token as password (a ``basic``
credential). The answer (201) is the message resource ``{"sid", "status", ...}``;
errors are ``{"code", "message", "more_info", "status"}``: 429 and 5xx are retried,
other refusals (an invalid number, 21211...) are not. Twilio accepts no idempotency key
for this call.
"""

from __future__ import annotations

from typing import Any, ClassVar
from urllib.parse import quote

from pydantic import Field, model_validator

from flowmill.engine.templates import stringify
from flowmill.nodes.base import NodeConfig, NodeContext, NodeType
from flowmill.nodes.connectors._service import (
    call,
    config_error,
    http_failure,
    open_credential,
    parse,
    required,
)
from flowmill.nodes.fields import credential_field


class SmsSendConfig(NodeConfig):
    """Config of ``sms_send``; strings are templates."""

    credential: str = credential_field("basic", min_length=1)
    to: str = Field(min_length=1)
    body: str = Field(min_length=1)
    sender: str | None = Field(None, alias="from")
    messaging_service_sid: str | None = None
    base_url: str = Field("https://api.twilio.com", pattern=r"^(https?://|\{\{)")
    timeout_s: float = Field(30.0, gt=0, le=300)

    @model_validator(mode="after")
    def _one_sender(self) -> SmsSendConfig:
        if (self.sender is None) == (self.messaging_service_sid is None):
            raise ValueError("give exactly one of from or messaging_service_sid")
        return self


def _describe(body: Any) -> tuple[str | None, Any]:
    if isinstance(body, dict):
        return body.get("message"), body.get("code")
    return None, None


class SmsSendNode(NodeType[SmsSendConfig]):
    """Sends a text message through Twilio."""

    type_name = "sms_send"
    Config = SmsSendConfig
    description: ClassVar[str] = "Send an SMS (Twilio Messages API)."

    async def execute(self, ctx: NodeContext, config: SmsSendConfig) -> Any:
        r = await ctx.render(
            {
                "credential": config.credential,
                "to": config.to,
                "body": config.body,
                "from": config.sender,
                "messaging_service_sid": config.messaging_service_sid,
                "base_url": config.base_url,
            }
        )
        required(r, "credential", "to", "body", "base_url")
        cred = await open_credential(ctx, stringify(r["credential"]))
        if cred.kind != "basic":
            raise config_error(f"credential {cred.ref!r} must be basic: account SID and auth token")
        sid = str(cred.data["username"])
        form = {"To": stringify(r["to"]), "Body": stringify(r["body"])}
        if r["from"]:
            form["From"] = stringify(r["from"])
        else:
            form["MessagingServiceSid"] = stringify(r["messaging_service_sid"])
        url = (
            f"{stringify(r['base_url']).rstrip('/')}/2010-04-01/Accounts/"
            f"{quote(sid, safe='')}/Messages.json"
        )
        response = await call(ctx, cred, "POST", url, form=form, timeout_s=config.timeout_s)
        if response.status >= 400:
            raise http_failure("Twilio", response, cred, _describe)
        answer = parse(response) or {}
        ctx.log.info("SMS queued with Twilio", status=answer.get("status"))
        return {"sid": answer.get("sid"), "status": answer.get("status"), "to": answer.get("to")}

"""``slack_message``: post a message with Slack's ``chat.postMessage``.

``POST {base_url}/api/chat.postMessage`` with a bot token; Slack answers HTTP 200 with
``{"ok": true, "channel", "ts"}``, or HTTP 200 with ``{"ok": false, "error": "..."}``
for a refusal (``channel_not_found``, ``not_in_channel``, ``invalid_auth``...: not
retried; ``ratelimited``, ``internal_error``, ``service_unavailable``... retried), or
HTTP 429 with ``Retry-After`` when rate limited (retried no sooner). Slack accepts no
idempotency key for this method.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from flowmill.engine.templates import stringify
from flowmill.net.retry_after import retry_after_s
from flowmill.nodes.base import NodeConfig, NodeContext, NodeType
from flowmill.nodes.connectors._service import (
    ServiceError,
    call,
    http_failure,
    open_credential,
    parse,
    required,
)
from flowmill.nodes.fields import credential_field

#: ``error`` values of an ``ok: false`` answer that a later attempt may get past.
TRANSIENT_ERRORS = frozenset(
    {"ratelimited", "internal_error", "service_unavailable", "fatal_error", "request_timeout"}
)


class SlackMessageConfig(NodeConfig):
    """Config of ``slack_message``; strings are templates."""

    credential: str = credential_field("bearer", "oauth2", min_length=1)
    channel: str = Field(min_length=1)
    text: str = Field(min_length=1)
    blocks: Any = None
    thread_ts: str | None = None
    base_url: str = Field("https://slack.com", pattern=r"^(https?://|\{\{)")
    timeout_s: float = Field(30.0, gt=0, le=300)


def _describe(body: Any) -> tuple[str | None, Any]:
    if isinstance(body, dict):
        return body.get("error"), body.get("error")
    return None, None


class SlackMessageNode(NodeType[SlackMessageConfig]):
    """Posts a message to a Slack channel."""

    type_name = "slack_message"
    Config = SlackMessageConfig
    description: ClassVar[str] = "Post a Slack message (chat.postMessage)."

    async def execute(self, ctx: NodeContext, config: SlackMessageConfig) -> Any:
        r = await ctx.render(
            {
                "channel": config.channel,
                "text": config.text,
                "blocks": config.blocks,
                "thread_ts": config.thread_ts,
                "credential": config.credential,
                "base_url": config.base_url,
            }
        )
        required(r, "channel", "text", "credential", "base_url")
        cred = await open_credential(ctx, stringify(r["credential"]))
        body: dict[str, Any] = {"channel": stringify(r["channel"]), "text": stringify(r["text"])}
        if r["blocks"] is not None:
            body["blocks"] = r["blocks"]
        if r["thread_ts"]:
            body["thread_ts"] = stringify(r["thread_ts"])
        url = f"{stringify(r['base_url']).rstrip('/')}/api/chat.postMessage"
        response = await call(ctx, cred, "POST", url, json_body=body, timeout_s=config.timeout_s)
        if response.status >= 400:
            raise http_failure("Slack", response, cred, _describe)
        answer = parse(response)
        if not isinstance(answer, dict) or answer.get("ok") is not True:
            error = answer.get("error") if isinstance(answer, dict) else "not JSON"
            retriable = error in TRANSIENT_ERRORS
            raise ServiceError(
                f"Slack refused the message: {stringify(error)[:100]}",
                retriable=retriable,
                status=response.status,
                code=error,
                retry_after=retry_after_s(response.headers) if retriable else None,
            )
        ctx.log.info("Slack message posted", channel=answer.get("channel"))
        return {"channel": answer.get("channel"), "ts": answer.get("ts")}

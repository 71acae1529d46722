"""Slack: ``X-Slack-Signature: v0=<hex>`` over ``v0:{X-Slack-Request-Timestamp}:{body}``.

Covers the Events API (JSON), slash commands (form) and interactivity (a form whose
``payload`` field is JSON). The Events API's ``url_verification`` request is signed
like any other and, once verified, is answered with its ``challenge``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from flowmill import jsonutil
from flowmill.triggers.providers.base import (
    FailureReason,
    Signing,
    TimedConfig,
    VerificationFailed,
    WebhookProvider,
    WebhookResponse,
    check_timestamp,
    decode_hex,
    single_header,
)
from flowmill.triggers.providers.payload import PayloadError, parse_body
from flowmill.triggers.providers.request import IncomingWebhook

SIGNATURE_HEADER = "X-Slack-Signature"
TIMESTAMP_HEADER = "X-Slack-Request-Timestamp"
MAX_CHALLENGE_LENGTH = 512


class SlackConfig(TimedConfig):
    """Config of the ``slack`` provider (``tolerance_s``, ``event_id_path``)."""


class SlackProvider(WebhookProvider[SlackConfig]):
    """Slack apps: Events API, slash commands, interactivity."""

    name = "slack"
    Config = SlackConfig
    description: ClassVar[str] = "Slack (v0 signing secret)"

    def signing(
        self, request: IncomingWebhook, secrets: tuple[str, ...], config: SlackConfig, now: datetime
    ) -> Signing:
        timestamp = single_header(request, TIMESTAMP_HEADER)
        version, equals, digest = single_header(request, SIGNATURE_HEADER).partition("=")
        if not equals:
            raise VerificationFailed(FailureReason.MALFORMED_SIGNATURE, "expected v0=<hex>")
        if version != "v0":
            raise VerificationFailed(FailureReason.UNSUPPORTED_SIGNATURE, f"version {version[:8]}")
        received = decode_hex(digest, 32)
        if received is None:
            raise VerificationFailed(FailureReason.MALFORMED_SIGNATURE, "expected 64 hex digits")
        if not (timestamp.isascii() and timestamp.isdigit()):
            raise VerificationFailed(FailureReason.MALFORMED_TIMESTAMP)
        return Signing(
            tuple(s.encode() for s in secrets),
            (received,),
            prefix=b"v0:" + timestamp.encode() + b":",
            then=lambda: check_timestamp(timestamp, now, config.tolerance_s),
        )

    def parse_payload(self, request: IncomingWebhook, config: SlackConfig) -> Any:
        data = parse_body(request)
        # Interactivity posts a form with one field, "payload", holding the JSON.
        if isinstance(data, dict) and set(data) == {"payload"} and isinstance(data["payload"], str):
            try:
                return jsonutil.loads(data["payload"])
            except ValueError as e:
                raise PayloadError("interactivity payload is not valid JSON") from e
        return data

    def handshake(
        self, request: IncomingWebhook, payload: Any, config: SlackConfig
    ) -> WebhookResponse | None:
        if not (isinstance(payload, dict) and payload.get("type") == "url_verification"):
            return None
        challenge = payload.get("challenge")
        if not isinstance(challenge, str) or len(challenge) > MAX_CHALLENGE_LENGTH:
            return None  # not a challenge we answer; recorded as an ordinary event
        return WebhookResponse(
            200, jsonutil.dumpb({"challenge": challenge}), content_type="application/json"
        )

    def default_event_id(self, request: IncomingWebhook, payload: Any, config: SlackConfig) -> Any:
        if not isinstance(payload, dict):
            return None
        # Events API retries (X-Slack-Retry-Num) repeat event_id; commands and
        # interactions carry a one-time trigger_id instead.
        return payload.get("event_id") or payload.get("trigger_id")

    def event_type(self, request: IncomingWebhook, payload: Any, config: SlackConfig) -> str | None:
        if not isinstance(payload, dict):
            return None
        event = payload.get("event")
        if payload.get("type") == "event_callback" and isinstance(event, dict):
            kind = event.get("type")
        elif "command" in payload:
            kind = "slash_command"
        else:
            kind = payload.get("type")
        return kind if isinstance(kind, str) else None

"""Meta (Instagram, Facebook Pages, Messenger, WhatsApp Business): one scheme for all.

- Subscription handshake: ``GET ?hub.mode=subscribe&hub.verify_token=...&hub.challenge=...``
  is verified by comparing ``hub.verify_token`` with the token typed into Meta's app
  dashboard, and answered with the bare challenge.
- Events: ``POST`` with ``X-Hub-Signature-256: sha256=<hex>``, HMAC-SHA256 of the raw
  body under the app secret. Meta signs the body as sent, with non-ASCII escaped
  (``\\u00e9``) and ``/`` as ``\\/``: JSON parsed and serialised again never matches.

Meta sends no event id and no timestamp. Retries resend the same bytes, so the
default dedupe key is a hash of the body; ``event_id_path`` can name a real id,
e.g. ``entry[0].messaging[0].message.mid`` for Instagram messages.
"""

from __future__ import annotations

import hmac
from datetime import datetime
from typing import Any, ClassVar

from pydantic import Field

from flowmill.triggers.providers.base import (
    FailureReason,
    ProviderConfig,
    Signing,
    VerificationFailed,
    WebhookProvider,
    WebhookResponse,
    body_digest,
)
from flowmill.triggers.providers.github import sha256_body_signing
from flowmill.triggers.providers.request import IncomingWebhook

MAX_CHALLENGE_LENGTH = 256


class MetaConfig(ProviderConfig):
    """Config of the ``meta`` provider. The app secret is the trigger's secret.

    Attributes:
        verify_token: The "Verify token" entered in Meta's dashboard; without it the
            GET handshake is refused. It only gates the handshake (it cannot sign
            events), so it is config, not secret.
        dedupe_on_body: Use a hash of the body as the dedupe key when no
            ``event_id_path`` is set.
    """

    verify_token: str | None = Field(None, min_length=1, max_length=256)
    dedupe_on_body: bool = True


def _challenge_ok(challenge: str) -> bool:
    # The challenge is echoed back verbatim; only accept the short printable token
    # Meta sends, so the endpoint cannot be used to reflect arbitrary content.
    return (
        0 < len(challenge) <= MAX_CHALLENGE_LENGTH
        and challenge.isascii()
        and challenge.isprintable()
    )


class MetaProvider(WebhookProvider[MetaConfig]):
    """Meta Graph API webhooks (Instagram, Facebook, WhatsApp)."""

    name = "meta"
    Config = MetaConfig
    description: ClassVar[str] = "Meta / Instagram / WhatsApp (X-Hub-Signature-256, hub.challenge)"

    def signing(
        self, request: IncomingWebhook, secrets: tuple[str, ...], config: MetaConfig, now: datetime
    ) -> Signing | None:
        if request.method in ("GET", "HEAD"):
            self._check_subscription(request, config)
            return None  # a handshake signs nothing: the token was the check
        return sha256_body_signing(request, secrets)

    def _check_subscription(self, request: IncomingWebhook, config: MetaConfig) -> None:
        query = request.query
        for name in ("hub.mode", "hub.verify_token", "hub.challenge"):
            if len(query.get_all(name)) != 1:
                raise VerificationFailed(FailureReason.MISSING_PARAMETER, name)
        if config.verify_token is None:
            raise VerificationFailed(FailureReason.NO_SECRET, "no verify_token configured")
        token_ok = hmac.compare_digest(
            query["hub.verify_token"].encode(), config.verify_token.encode()
        )
        if not token_ok or query["hub.mode"] != "subscribe":
            raise VerificationFailed(FailureReason.VERIFY_TOKEN_MISMATCH)
        if not _challenge_ok(query["hub.challenge"]):
            raise VerificationFailed(FailureReason.MISSING_PARAMETER, "hub.challenge unusable")

    def handshake(
        self, request: IncomingWebhook, payload: Any, config: MetaConfig
    ) -> WebhookResponse | None:
        if request.method not in ("GET", "HEAD"):
            return None
        # Only reached after check() accepted the token and the challenge.
        return WebhookResponse(
            200,
            request.query["hub.challenge"].encode(),
            headers={"X-Content-Type-Options": "nosniff"},
        )

    def default_event_id(self, request: IncomingWebhook, payload: Any, config: MetaConfig) -> Any:
        return body_digest(request) if config.dedupe_on_body else None

    def event_type(self, request: IncomingWebhook, payload: Any, config: MetaConfig) -> str | None:
        # "instagram", "page", "whatsapp_business_account"...
        kind = payload.get("object") if isinstance(payload, dict) else None
        return kind if isinstance(kind, str) else None

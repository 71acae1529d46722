"""GitHub webhooks: ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>``.

GitHub signs only the body: no timestamp, and ``X-GitHub-Delivery`` (the dedupe key)
is outside the signature. A captured delivery can therefore be replayed under a new
delivery id; ``dedupe_on: body`` dedupes on the signed body instead, at the price of
treating two byte-identical deliveries as one.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar, Literal

from flowmill.triggers.providers.base import (
    FailureReason,
    ProviderConfig,
    Signing,
    VerificationFailed,
    WebhookProvider,
    WebhookResponse,
    body_digest,
    decode_hex,
    single_header,
)
from flowmill.triggers.providers.request import IncomingWebhook

SIGNATURE_HEADER = "X-Hub-Signature-256"
LEGACY_HEADER = "X-Hub-Signature"  # SHA-1; GitHub still sends it, we never trust it
DELIVERY_HEADER = "X-GitHub-Delivery"
EVENT_HEADER = "X-GitHub-Event"


class GitHubConfig(ProviderConfig):
    """Config of the ``github`` provider.

    Attributes:
        dedupe_on: ``delivery`` (``X-GitHub-Delivery``, what GitHub's own retries
            keep) or ``body`` (a hash of the signed body, which a replayer cannot vary).
    """

    dedupe_on: Literal["delivery", "body"] = "delivery"


def parse_sha256_header(value: str) -> bytes:
    """The digest of a ``sha256=<64 hex>`` header (GitHub and Meta share the format).

    Raises:
        VerificationFailed: Another prefix or not 32 bytes of hex.
    """
    scheme, equals, digest = value.partition("=")
    if not equals or scheme.strip().lower() != "sha256":
        raise VerificationFailed(FailureReason.MALFORMED_SIGNATURE, "expected sha256=<hex>")
    decoded = decode_hex(digest.strip(), 32)
    if decoded is None:
        raise VerificationFailed(FailureReason.MALFORMED_SIGNATURE, "expected 64 hex digits")
    return decoded


def sha256_body_signing(request: IncomingWebhook, secrets: tuple[str, ...]) -> Signing:
    """``X-Hub-Signature-256``: HMAC-SHA256 of the raw body alone, under any secret.

    Raises:
        VerificationFailed: Missing or malformed signature header.
    """
    if SIGNATURE_HEADER not in request.headers and LEGACY_HEADER in request.headers:
        raise VerificationFailed(FailureReason.UNSUPPORTED_SIGNATURE, "only SHA-1 signature")
    received = parse_sha256_header(single_header(request, SIGNATURE_HEADER))
    return Signing(tuple(s.encode() for s in secrets), (received,))


class GitHubProvider(WebhookProvider[GitHubConfig]):
    """GitHub repository, organisation and App webhooks."""

    name = "github"
    Config = GitHubConfig
    description: ClassVar[str] = "GitHub (X-Hub-Signature-256)"

    def signing(
        self,
        request: IncomingWebhook,
        secrets: tuple[str, ...],
        config: GitHubConfig,
        now: datetime,
    ) -> Signing:
        return sha256_body_signing(request, secrets)

    def handshake(
        self, request: IncomingWebhook, payload: Any, config: GitHubConfig
    ) -> WebhookResponse | None:
        # GitHub sends "ping" once when the hook is created; it is not an event to run.
        if request.headers.get(EVENT_HEADER, "").strip() == "ping":
            return WebhookResponse(204)
        return None

    def default_event_id(self, request: IncomingWebhook, payload: Any, config: GitHubConfig) -> Any:
        if config.dedupe_on == "body":
            return body_digest(request)
        return request.headers.get(DELIVERY_HEADER)

    def event_type(
        self, request: IncomingWebhook, payload: Any, config: GitHubConfig
    ) -> str | None:
        return request.headers.get(EVENT_HEADER) or None

"""Stripe: ``Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>...][,v0=<hex>]``.

Signed content: ``{t}.{raw body}``, HMAC-SHA256 keyed with the endpoint secret
*as text*: unlike Standard Webhooks, Stripe's ``whsec_...`` secret is not base64
decoded, the whole string (prefix included) is the key. Several ``v1`` entries come
while Stripe rolls an endpoint secret; any may match. Other schemes (``v0``) are
ignored, as Stripe advises, so a forger cannot downgrade to them.

Stripe's libraries only refuse old timestamps; we refuse both directions.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from flowmill.triggers.providers.base import (
    FailureReason,
    Signing,
    TimedConfig,
    VerificationFailed,
    WebhookProvider,
    check_timestamp,
    decode_hex,
    single_header,
)
from flowmill.triggers.providers.request import IncomingWebhook

SIGNATURE_HEADER = "Stripe-Signature"


class StripeConfig(TimedConfig):
    """Config of the ``stripe`` provider (``tolerance_s``, ``event_id_path``)."""


def parse_signature_header(header: str) -> tuple[str, list[str], set[str]]:
    """The ``t`` value, the ``v1`` signatures, and every scheme seen.

    Raises:
        VerificationFailed: No ``t``, or more than one.
    """
    timestamps: list[str] = []
    v1: list[str] = []
    schemes: set[str] = set()
    for item in header.split(","):
        key, equals, value = item.strip().partition("=")
        if not equals:
            continue
        if key == "t":
            timestamps.append(value.strip())
        else:
            schemes.add(key)
            if key == "v1":
                v1.append(value.strip())
    if len(timestamps) != 1:
        raise VerificationFailed(FailureReason.MALFORMED_SIGNATURE, "expected one t=")
    return timestamps[0], v1, schemes


class StripeProvider(WebhookProvider[StripeConfig]):
    """Stripe webhook endpoints (snapshot and thin events)."""

    name = "stripe"
    Config = StripeConfig
    description: ClassVar[str] = "Stripe (Stripe-Signature t=, v1=)"

    def signing(
        self,
        request: IncomingWebhook,
        secrets: tuple[str, ...],
        config: StripeConfig,
        now: datetime,
    ) -> Signing:
        timestamp, v1, schemes = parse_signature_header(single_header(request, SIGNATURE_HEADER))
        if not v1:
            if schemes:
                detail = "schemes " + ",".join(sorted(schemes))
                raise VerificationFailed(FailureReason.UNSUPPORTED_SIGNATURE, detail)
            raise VerificationFailed(FailureReason.MALFORMED_SIGNATURE, "no v1=")
        if not (timestamp.isascii() and timestamp.isdigit()):
            raise VerificationFailed(FailureReason.MALFORMED_TIMESTAMP)
        received = [d for d in (decode_hex(s, 32) for s in v1) if d is not None]
        if not received:
            raise VerificationFailed(FailureReason.MALFORMED_SIGNATURE, "v1 is not 64 hex digits")
        return Signing(
            tuple(s.encode() for s in secrets),
            tuple(received),
            prefix=timestamp.encode() + b".",
            then=lambda: check_timestamp(timestamp, now, config.tolerance_s),
        )

    def default_event_id(self, request: IncomingWebhook, payload: Any, config: StripeConfig) -> Any:
        # The event id ("evt_...") is in the signed body; retries resend the same event.
        return payload.get("id") if isinstance(payload, dict) else None

    def event_type(
        self, request: IncomingWebhook, payload: Any, config: StripeConfig
    ) -> str | None:
        kind = payload.get("type") if isinstance(payload, dict) else None
        return kind if isinstance(kind, str) else None

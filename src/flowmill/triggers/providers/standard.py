"""Standard Webhooks (standardwebhooks.com; Svix, Resend, Clerk and others).

Signed content: ``{webhook-id}.{webhook-timestamp}.{raw body}``, HMAC-SHA256 under
the secret's bytes (``whsec_`` + base64). ``webhook-signature`` is a space-separated
list of ``v1,<base64>`` entries (several during the sender's key rotation); one
match is enough. ``v1a`` (ed25519) entries are not verified here and are skipped.
"""

from __future__ import annotations

import base64
import binascii
import re
from datetime import datetime
from typing import Any, ClassVar

from pydantic import Field

from flowmill.triggers.providers.base import (
    FailureReason,
    Signing,
    TimedConfig,
    VerificationFailed,
    WebhookProvider,
    check_timestamp,
    single_header,
)
from flowmill.triggers.providers.request import IncomingWebhook

SECRET_PREFIX = "whsec_"  # noqa: S105 - the format marker, not a secret


class StandardWebhooksConfig(TimedConfig):
    """Config of the ``standard`` provider.

    Attributes:
        header_prefix: Prefix of the three headers: ``webhook`` (the spec) or a
            sender's brand, e.g. ``svix`` for ``svix-id``/``svix-timestamp``/``svix-signature``.
    """

    header_prefix: str = Field("webhook", pattern=r"^[A-Za-z][A-Za-z0-9-]{0,30}$")


def decode_secret(secret: str) -> bytes | None:
    """The HMAC key of a ``whsec_<base64>`` secret (the prefix is optional), or ``None``."""
    text = secret.strip()
    text = text.removeprefix(SECRET_PREFIX)
    # Senders differ on padding; base64 ignores surplus "=", so add what may be missing.
    try:
        key = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None
    return key or None


def _signatures(header: str) -> tuple[list[bytes], set[str]]:
    """The decoded ``v1`` signatures of a header, and every version seen."""
    v1: list[bytes] = []
    versions: set[str] = set()
    for entry in re.split(r"\s+", header.strip()):
        version, comma, value = entry.partition(",")
        if not comma or not version:
            continue
        versions.add(version)
        if version != "v1":
            continue
        try:
            v1.append(base64.b64decode(value, validate=True))
        except (binascii.Error, ValueError):
            continue
    return v1, versions


class StandardWebhooksProvider(WebhookProvider[StandardWebhooksConfig]):
    """Standard Webhooks: signed id, timestamp and body; key rotation by signature list."""

    name = "standard"
    Config = StandardWebhooksConfig
    description: ClassVar[str] = "Standard Webhooks (webhook-id/-timestamp/-signature)"

    def secret_issue(self, secret: str) -> str | None:
        if decode_secret(secret) is None:
            return "expected 'whsec_' followed by base64"
        return None

    def signing(
        self,
        request: IncomingWebhook,
        secrets: tuple[str, ...],
        config: StandardWebhooksConfig,
        now: datetime,
    ) -> Signing:
        keys = [k for k in (decode_secret(s) for s in secrets) if k is not None]
        if not keys:
            raise VerificationFailed(FailureReason.NO_SECRET, "secret is not whsec_ base64")
        prefix = config.header_prefix
        msg_id = single_header(request, f"{prefix}-id")
        timestamp = single_header(request, f"{prefix}-timestamp")
        header = single_header(request, f"{prefix}-signature")
        received, versions = _signatures(header)
        if not received:
            if versions and "v1" not in versions:
                detail = "versions " + ",".join(sorted(versions))
                raise VerificationFailed(FailureReason.UNSUPPORTED_SIGNATURE, detail)
            raise VerificationFailed(FailureReason.MALFORMED_SIGNATURE)
        if not (timestamp.isascii() and timestamp.isdigit()):
            raise VerificationFailed(FailureReason.MALFORMED_TIMESTAMP)
        # Freshness after authenticity (``then``): a stale *authentic* request is a
        # replay (or a clock problem), worth telling apart from a forgery in the record.
        return Signing(
            tuple(keys),
            tuple(received),
            prefix=f"{msg_id}.{timestamp}.".encode(),
            then=lambda: check_timestamp(timestamp, now, config.tolerance_s),
        )

    def default_event_id(
        self, request: IncomingWebhook, payload: Any, config: StandardWebhooksConfig
    ) -> Any:
        # The id is part of the signed content, so a replay cannot change it.
        return request.headers.get(f"{config.header_prefix}-id")

    def event_type(
        self, request: IncomingWebhook, payload: Any, config: StandardWebhooksConfig
    ) -> str | None:
        kind = payload.get("type") if isinstance(payload, dict) else None
        return kind if isinstance(kind, str) else None

"""Generic HMAC, for senders with a scheme of their own (Shopify, Linear, Twilio-like).

The signed content is a template over ``{body}`` (the raw bytes), and optionally
``{timestamp}`` and ``{id}`` read from headers: ``{body}`` alone by default,
``{timestamp}.{body}`` or ``v0:{timestamp}:{body}`` for timed schemes.
"""

from __future__ import annotations

import base64
import binascii
import re
from datetime import datetime
from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from flowmill.triggers.providers.base import (
    DEFAULT_TOLERANCE_S,
    MAX_TOLERANCE_S,
    FailureReason,
    ProviderConfig,
    Signing,
    VerificationFailed,
    WebhookProvider,
    check_timestamp,
    single_header,
)
from flowmill.triggers.providers.request import IncomingWebhook

_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_HEADER_NAME = r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,100}$"
PLACEHOLDERS = frozenset({"body", "timestamp", "id"})
DIGEST_SIZES = {"sha1": 20, "sha256": 32, "sha512": 64}


class GenericHmacConfig(ProviderConfig):
    """Config of the ``hmac`` provider.

    Attributes:
        signature_header: Header holding the signature.
        algorithm: ``sha1``, ``sha256`` or ``sha512``.
        encoding: How the signature is written: ``hex`` (any case) or ``base64``.
        prefix: Text before the signature in the header, e.g. ``sha256=``.
        secret_encoding: How the secret string becomes key bytes: ``utf8`` (as is),
            ``base64`` or ``hex``.
        signed_payload: Template of the signed content; ``{body}`` exactly once,
            ``{timestamp}`` and ``{id}`` optional. Literal braces are not supported.
        timestamp_header: Header holding a Unix timestamp; required by, and only
            allowed with, ``{timestamp}`` in the template (an unsigned timestamp
            would prove nothing).
        timestamp_unit: ``s`` or ``ms``.
        tolerance_s: Accepted clock distance, both directions.
        id_header: Header holding the sender's event id: the dedupe key, and
            ``{id}`` in the template.
    """

    signature_header: str = Field("X-Signature", pattern=_HEADER_NAME)
    algorithm: Literal["sha1", "sha256", "sha512"] = "sha256"
    encoding: Literal["hex", "base64"] = "hex"
    prefix: str = Field("", max_length=50)
    secret_encoding: Literal["utf8", "base64", "hex"] = "utf8"  # noqa: S105 - a codec name
    signed_payload: str = Field("{body}", max_length=200)
    timestamp_header: str | None = Field(None, pattern=_HEADER_NAME)
    timestamp_unit: Literal["s", "ms"] = "s"
    tolerance_s: int = Field(DEFAULT_TOLERANCE_S, ge=1, le=MAX_TOLERANCE_S)
    id_header: str | None = Field(None, pattern=_HEADER_NAME)

    @model_validator(mode="after")
    def _template_fits_headers(self) -> GenericHmacConfig:
        names = _PLACEHOLDER.findall(self.signed_payload)
        unknown = sorted(set(names) - PLACEHOLDERS)
        if unknown:
            raise ValueError(f"signed_payload: unknown placeholder {{{unknown[0]}}}")
        if names.count("body") != 1:
            raise ValueError("signed_payload must contain {body} exactly once")
        literal = _PLACEHOLDER.sub("", self.signed_payload)
        if "{" in literal or "}" in literal:
            raise ValueError("signed_payload: unmatched brace")
        if ("timestamp" in names) != (self.timestamp_header is not None):
            raise ValueError("{timestamp} in signed_payload and timestamp_header go together")
        if "id" in names and self.id_header is None:
            raise ValueError("{id} in signed_payload needs id_header")
        return self


def decode_key(secret: str, encoding: str) -> bytes | None:
    """Key bytes of a secret string, or ``None`` when it does not decode."""
    try:
        if encoding == "base64":
            return base64.b64decode(secret.strip(), validate=True) or None
        if encoding == "hex":
            return bytes.fromhex(secret.strip()) or None
    except (binascii.Error, ValueError):
        return None
    return secret.encode()


def decode_signature(text: str, encoding: str, size: int) -> bytes | None:
    """Signature bytes from hex or base64 (standard or URL-safe), or ``None``."""
    try:
        if encoding == "hex":
            raw = bytes.fromhex(text) if text.isascii() else b""
        else:
            padded = text + "=" * (-len(text) % 4)
            raw = base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if len(raw) == size else None


class GenericHmacProvider(WebhookProvider[GenericHmacConfig]):
    """An HMAC signature in a header, shaped by config."""

    name = "hmac"
    Config = GenericHmacConfig
    description: ClassVar[str] = "Generic HMAC (header, algorithm, hex/base64)"

    def signing(
        self,
        request: IncomingWebhook,
        secrets: tuple[str, ...],
        config: GenericHmacConfig,
        now: datetime,
    ) -> Signing:
        keys = [k for k in (decode_key(s, config.secret_encoding) for s in secrets) if k]
        if not keys:
            raise VerificationFailed(
                FailureReason.NO_SECRET, f"secret is not {config.secret_encoding}"
            )
        header = single_header(request, config.signature_header)
        if not header.startswith(config.prefix):
            raise VerificationFailed(FailureReason.MALFORMED_SIGNATURE, "prefix missing")
        size = DIGEST_SIZES[config.algorithm]
        received = decode_signature(header[len(config.prefix) :].strip(), config.encoding, size)
        if received is None:
            raise VerificationFailed(FailureReason.MALFORMED_SIGNATURE, f"not {config.encoding}")
        values: dict[str, bytes] = {}
        timestamp = None
        if config.timestamp_header is not None:
            timestamp = single_header(request, config.timestamp_header)
            if not (timestamp.isascii() and timestamp.isdigit()):
                raise VerificationFailed(FailureReason.MALFORMED_TIMESTAMP)
            values["timestamp"] = timestamp.encode()
        if config.id_header is not None and "{id}" in config.signed_payload:
            values["id"] = single_header(request, config.id_header).encode()
        before, _, after = config.signed_payload.partition("{body}")
        stamp = timestamp

        def fresh() -> None:
            if stamp is not None:
                unit_ms = config.timestamp_unit == "ms"
                check_timestamp(stamp, now, config.tolerance_s, unit_ms=unit_ms)

        return Signing(
            tuple(keys),
            (received,),
            prefix=_render(before, values),
            suffix=_render(after, values),
            algorithm=config.algorithm,
            then=fresh,
        )

    def default_event_id(
        self, request: IncomingWebhook, payload: Any, config: GenericHmacConfig
    ) -> Any:
        return request.headers.get(config.id_header) if config.id_header else None


def _render(template: str, values: dict[str, bytes]) -> bytes:
    """A part of the template (before or after ``{body}``) with its placeholders
    replaced by bytes; the body itself is never part of it (it is hashed as it comes)."""
    out = bytearray()
    position = 0
    for match in _PLACEHOLDER.finditer(template):
        out += template[position : match.start()].encode()
        out += values[match.group(1)]
        position = match.end()
    out += template[position:].encode()
    return bytes(out)

"""The contract every webhook provider keeps: a config schema and pure checks.

A provider answers four questions about one request, with no I/O:

1. :meth:`WebhookProvider.verify` -- is it authentic and fresh? (on the raw bytes)
2. :meth:`WebhookProvider.parse_payload` -- what data does the verified body hold?
3. :meth:`WebhookProvider.handshake` -- is it a subscription challenge to answer
   instead of an event (Meta's ``hub.challenge``, Slack's ``url_verification``)?
4. :meth:`WebhookProvider.event_id` / :meth:`~WebhookProvider.event_type` -- the
   provider's id of the event (the dedupe key) and its type.

:func:`flowmill.triggers.webhooks.inspect_webhook` asks them in that order, so a
handshake or an event id is only ever read from a verified request.

Every built-in scheme is an HMAC over a prefix, the raw body and a suffix, all but the
body read from headers. A provider says so in :meth:`WebhookProvider.signing` (headers
only), and :class:`BodyVerifier` hashes the body as it arrives: a body above the blob
threshold is verified while it streams into the blob store, never held whole, and a
body in memory goes through the very same verifier, fed once. A provider with a
``check`` or ``verify`` of its own is never streamed: it is given the whole body.
"""

from __future__ import annotations

import hashlib
import hmac
from abc import ABC
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from flowmill.domain.errors import FlowmillError
from flowmill.triggers.providers.payload import lookup, parse_body, parse_path
from flowmill.triggers.providers.request import IncomingWebhook

DEFAULT_TOLERANCE_S = 300
MAX_TOLERANCE_S = 3600
MAX_EVENT_ID_LENGTH = 200


class FailureReason(StrEnum):
    """Why a request was refused. For our records only: the caller gets a bare 401."""

    NO_SECRET = "no_secret"  # noqa: S105 - a reason code: no usable secret or verify token
    MISSING_HEADER = "missing_header"  # a required header is absent or empty
    DUPLICATE_HEADER = "duplicate_header"  # a signature/timestamp header came twice
    MALFORMED_SIGNATURE = "malformed_signature"  # the signature header does not parse
    MALFORMED_TIMESTAMP = "malformed_timestamp"  # the timestamp is not whole seconds
    UNSUPPORTED_SIGNATURE = "unsupported_signature"  # only schemes we do not verify
    SIGNATURE_MISMATCH = "signature_mismatch"  # no signature matches any secret
    TIMESTAMP_OUT_OF_TOLERANCE = "timestamp_out_of_tolerance"  # too old or in the future
    MISSING_PARAMETER = "missing_parameter"  # a handshake query parameter is absent
    VERIFY_TOKEN_MISMATCH = "verify_token_mismatch"  # noqa: S105 - Meta handshake, wrong token
    MALFORMED_BODY = "malformed_body"  # verified, but the body does not decode


@dataclass(frozen=True)
class Verification:
    """The result of :meth:`WebhookProvider.verify`.

    Attributes:
        ok: Whether the request is authentic (and fresh, where the scheme is timed).
        reason: Why not, for the record.
        detail: A few words for the record (``"timestamp 420 s old"``). Never holds a
            secret or an expected signature, and is never sent to the caller.
    """

    ok: bool
    reason: FailureReason | None = None
    detail: str | None = None

    @classmethod
    def passed(cls) -> Verification:
        """An authentic request."""
        return cls(True)

    @classmethod
    def failed(cls, reason: FailureReason, detail: str | None = None) -> Verification:
        """A refused request."""
        return cls(False, reason, detail)


class VerificationFailed(FlowmillError):
    """Raised inside :meth:`WebhookProvider.check`; becomes a failed :class:`Verification`."""

    def __init__(self, reason: FailureReason, detail: str | None = None) -> None:
        super().__init__(reason.value if detail is None else f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Signing:
    """What a request's signature covers, read from its headers alone.

    The signed message is ``prefix + raw body + suffix``; it is authentic when its
    HMAC under any of ``keys`` equals any of ``received``.

    Attributes:
        keys: HMAC keys (the trigger's secrets, decoded as the scheme says).
        received: The signatures the request carries, decoded.
        prefix: Signed bytes before the body (``v0:<timestamp>:``, ``<t>.``).
        suffix: Signed bytes after the body.
        algorithm: ``hashlib`` name of the digest.
        then: Checks that run once the signature matched, raising
            :class:`VerificationFailed` (freshness: a stale *authentic* request is a
            replay or a clock problem, worth telling apart from a forgery).
    """

    keys: tuple[bytes, ...]
    received: tuple[bytes, ...]
    prefix: bytes = b""
    suffix: bytes = b""
    algorithm: str = "sha256"
    then: Callable[[], object] | None = None


class BodyVerifier:
    """Verifies a body fed in pieces, as it arrives, against a :class:`Signing`.

    The one place a body's signature is computed, whether the body is in memory (fed
    once) or streamed into the blob store (fed chunk by chunk): the HMACs are updated
    as bytes arrive and compared only at :meth:`result`, in constant time, over every
    byte fed. Holds no body bytes.

    Args:
        signing: What to compute; ``None`` when the scheme signs no body (the
            headers alone decided, e.g. the ``none`` provider or a GET handshake).
        failed: A verdict reached from the headers alone (missing header, no secret):
            the body is then hashed for nothing, and :meth:`result` returns it.
    """

    __slots__ = ("_failed", "_macs", "_signing")

    def __init__(self, signing: Signing | None, failed: Verification | None = None) -> None:
        self._signing = signing
        self._failed = failed
        if failed is None and signing is not None:
            self._macs = [hmac.new(k, signing.prefix, signing.algorithm) for k in signing.keys]
        else:
            self._macs = []

    @property
    def refused(self) -> bool:
        """Whether the headers alone refused the request (the body cannot change it)."""
        return self._failed is not None

    def update(self, chunk: bytes) -> None:
        """Feed the next bytes of the raw body (any ``bytes``-like value, not copied)."""
        for mac in self._macs:
            mac.update(chunk)

    def result(self) -> Verification:
        """The verdict over every byte fed. Call once, after the last chunk."""
        if self._failed is not None:
            return self._failed
        signing = self._signing
        if signing is None:
            return Verification.passed()
        expected = []
        for mac in self._macs:
            mac.update(signing.suffix)
            expected.append(mac.digest())
        if not matches_any(expected, signing.received):
            return Verification.failed(FailureReason.SIGNATURE_MISMATCH)
        try:
            if signing.then is not None:
                signing.then()
        except VerificationFailed as failure:
            return Verification.failed(failure.reason, failure.detail)
        return Verification.passed()


@dataclass(frozen=True)
class WebhookResponse:
    """An HTTP answer decided here and written out by the ingress.

    Attributes:
        status: HTTP status code.
        body: Response body bytes.
        content_type: ``Content-Type`` of the body.
        headers: Extra headers.
    """

    status: int
    body: bytes = b""
    content_type: str = "text/plain; charset=utf-8"
    headers: Mapping[str, str] = field(default_factory=dict)


class ProviderConfig(BaseModel):
    """Base of provider config schemas. Unknown keys are errors, so typos surface.

    Attributes:
        event_id_path: Dotted JSON path of the dedupe key in the body
            (``data.object.id``, ``entry[0].id``); overrides the provider's own id.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_id_path: str | None = None

    @field_validator("event_id_path")
    @classmethod
    def _path_parses(cls, value: str | None) -> str | None:
        if value is not None:
            parse_path(value)
        return value


class TimedConfig(ProviderConfig):
    """Config of schemes that sign a timestamp.

    Attributes:
        tolerance_s: Largest accepted distance, in seconds, between the signed
            timestamp and our clock, in either direction (stale replays, and
            timestamps from a sender whose clock runs ahead).
    """

    tolerance_s: int = Field(DEFAULT_TOLERANCE_S, ge=1, le=MAX_TOLERANCE_S)


ConfigT = TypeVar("ConfigT", bound=ProviderConfig)


class WebhookProvider(ABC, Generic[ConfigT]):
    """Base class of webhook providers. Subclass, set ``name`` and ``Config``, register.

    Attributes:
        name: The provider's name in trigger configs; unique within a registry.
        Config: Pydantic schema of the provider's config.
        requires_secret: Whether verification needs a secret (all but ``none``).
        description: One line for listings.
    """

    name: ClassVar[str]
    Config: ClassVar[type[ProviderConfig]]
    requires_secret: ClassVar[bool] = True
    description: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # ``check`` stopped being abstract when ``signing`` arrived (either will do), so
        # a provider with neither is caught here, where its module is imported, rather
        # than by a 500 on its first request.
        super().__init_subclass__(**kwargs)
        base = WebhookProvider
        if "name" in cls.__dict__ and all(
            getattr(cls, m) is getattr(base, m) for m in ("signing", "check", "verify")
        ):
            raise TypeError(
                f"webhook provider {cls.__name__} must define signing() (an HMAC over the "
                "body) or check() (any other scheme)"
            )

    def parse_config(self, raw: Mapping[str, Any] | None) -> ConfigT:
        """Validate a raw config into the schema. Raises ``pydantic.ValidationError``."""
        return self.Config.model_validate(dict(raw or {}))  # type: ignore[return-value]

    def secret_issue(self, secret: str) -> str | None:
        """What is wrong with a secret, checked when a trigger is saved (``None``: fine)."""
        return None if secret else "the secret is empty"

    def verify(
        self,
        request: IncomingWebhook,
        secrets: str | Sequence[str],
        config: ConfigT,
        now: datetime,
    ) -> Verification:
        """Check authenticity (and freshness) on the raw bytes, in constant time.

        Args:
            request: The request as received.
            secrets: The trigger's secret, or several while one is being rotated
                (any may match). Empty strings are ignored.
            config: The provider config.
            now: The current time, aware (from the ``Clock`` port).
        """
        verifier = self.body_verifier(request, secrets, config, now)
        if verifier is not None:
            verifier.update(request.body)
            return verifier.result()
        keys = _keys(secrets, now)
        if self.requires_secret and not keys:
            return Verification.failed(FailureReason.NO_SECRET, "no secret configured")
        try:
            self.check(request, keys, config, now)
        except VerificationFailed as failure:
            return Verification.failed(failure.reason, failure.detail)
        return Verification.passed()

    def body_verifier(
        self,
        request: IncomingWebhook,
        secrets: str | Sequence[str],
        config: ConfigT,
        now: datetime,
    ) -> BodyVerifier | None:
        """A verifier to feed the body as it arrives, set up from the headers alone.

        ``request.body`` is not read (when streaming, the body has not arrived). Checks
        that need no body (headers, secrets) are done here; their failure is what the
        verifier's :meth:`~BodyVerifier.result` returns.

        Returns:
            ``None`` when this provider has a ``check`` or ``verify`` of its own: it
            must be given the whole body (through :meth:`verify`).
        """
        cls = type(self)
        if cls.check is not WebhookProvider.check or cls.verify is not WebhookProvider.verify:
            return None
        keys = _keys(secrets, now)
        if self.requires_secret and not keys:
            return BodyVerifier(
                None, Verification.failed(FailureReason.NO_SECRET, "no secret configured")
            )
        try:
            signing = self.signing(request, keys, config, now)
        except VerificationFailed as failure:
            return BodyVerifier(None, Verification.failed(failure.reason, failure.detail))
        return BodyVerifier(signing)

    def signing(
        self, request: IncomingWebhook, secrets: tuple[str, ...], config: ConfigT, now: datetime
    ) -> Signing | None:
        """What the request's signature covers, from its headers (and query) alone.

        Never reads ``request.body``: when the body streams, it has not arrived.

        Args:
            request: The request; its body may be empty.
            secrets: The trigger's non-empty secrets.
            config: The provider config.
            now: The current time, aware.

        Returns:
            The HMAC to compute over the body, or ``None`` when the scheme signs no
            body and these checks were the whole verification.

        Raises:
            VerificationFailed: The headers alone refuse the request.
        """
        raise NotImplementedError(f"provider {self.name!r} defines neither signing nor check")

    def check(
        self, request: IncomingWebhook, secrets: tuple[str, ...], config: ConfigT, now: datetime
    ) -> None:
        """Verify the request whole; return when authentic.

        The default computes what :meth:`signing` describes over ``request.body``.
        Override it only for a scheme that is not an HMAC over prefix, body and suffix;
        such a provider is then always given the whole body (bodies above the blob
        threshold are held in memory for it, not streamed).

        Raises:
            VerificationFailed: With the reason to record.
        """
        verifier = BodyVerifier(self.signing(request, secrets, config, now))
        verifier.update(request.body)
        result = verifier.result()
        if not result.ok:
            reason = result.reason or FailureReason.SIGNATURE_MISMATCH
            raise VerificationFailed(reason, result.detail)

    def parse_payload(self, request: IncomingWebhook, config: ConfigT) -> Any:
        """The verified body as data (JSON, a form as a dict, text).

        Raises:
            PayloadError: The body does not decode as its content type says.
        """
        return parse_body(request)

    def handshake(
        self, request: IncomingWebhook, payload: Any, config: ConfigT
    ) -> WebhookResponse | None:
        """The answer to a verified subscription challenge, or ``None`` for an event."""
        return None

    def event_id(self, request: IncomingWebhook, payload: Any, config: ConfigT) -> str | None:
        """The provider's id of this event, the dedupe key (``None``: no dedupe).

        ``config.event_id_path`` wins over the provider's own id. Long ids are hashed
        so they fit the database column.
        """
        if config.event_id_path is not None:
            value = lookup(payload, parse_path(config.event_id_path))
        else:
            value = self.default_event_id(request, payload, config)
        return normalize_event_id(value)

    def default_event_id(self, request: IncomingWebhook, payload: Any, config: ConfigT) -> Any:
        """The provider's own event id (a header or a body field)."""
        return None

    def event_type(self, request: IncomingWebhook, payload: Any, config: ConfigT) -> str | None:
        """The provider's name for the kind of event (``invoice.paid``, ``push``)."""
        return None


def _keys(secrets: str | Sequence[str], now: datetime) -> tuple[str, ...]:
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    keys = (secrets,) if isinstance(secrets, str) else tuple(secrets)
    return tuple(k for k in keys if k)


def normalize_event_id(value: Any) -> str | None:
    """A string id from a header or JSON value; over-long ids become a SHA-256."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    text = str(value).strip()
    if not text:
        return None
    if len(text) > MAX_EVENT_ID_LENGTH:
        return "sha256:" + hashlib.sha256(text.encode()).hexdigest()
    return text


def body_digest(request: IncomingWebhook) -> str:
    """``sha256:<hex>`` of the raw body: a dedupe key for senders that send no id.

    A body streamed into the blob store is not in ``request.body``; its digest, taken
    as it streamed, is in ``request.body_sha256``.
    """
    if request.body_sha256 is not None:
        return "sha256:" + request.body_sha256
    return "sha256:" + hashlib.sha256(request.body).hexdigest()


def single_header(request: IncomingWebhook, name: str) -> str:
    """The one value of a header the signature depends on.

    Raises:
        VerificationFailed: Absent, empty, or sent more than once (which value a
            proxy or framework would pick is not ours to guess).
    """
    values = request.headers.get_all(name)
    if len(values) > 1:
        raise VerificationFailed(FailureReason.DUPLICATE_HEADER, name)
    if not values or not values[0].strip():
        raise VerificationFailed(FailureReason.MISSING_HEADER, name)
    return values[0].strip()


def check_timestamp(value: str, now: datetime, tolerance_s: int, *, unit_ms: bool = False) -> int:
    """Parse a Unix timestamp and check it is within ``tolerance_s`` of ``now``.

    Returns:
        The timestamp in seconds.

    Raises:
        VerificationFailed: Not ASCII digits (``malformed_timestamp``), or too far
            in the past or the future (``timestamp_out_of_tolerance``).
    """
    if not (value.isascii() and value.isdigit()) or len(value) > 16:
        raise VerificationFailed(FailureReason.MALFORMED_TIMESTAMP)
    seconds = int(value) / 1000 if unit_ms else int(value)
    age = now.timestamp() - seconds
    if abs(age) > tolerance_s:
        when = f"{age:.0f} s old" if age > 0 else f"{-age:.0f} s in the future"
        raise VerificationFailed(FailureReason.TIMESTAMP_OUT_OF_TOLERANCE, f"timestamp {when}")
    return int(seconds)


def hmac_digest(key: bytes, message: bytes, algorithm: str = "sha256") -> bytes:
    """HMAC of ``message`` under ``key``."""
    return hmac.new(key, message, algorithm).digest()


def matches_any(expected: Sequence[bytes], received: Sequence[bytes]) -> bool:
    """Whether any received signature equals any expected one, compared in constant time.

    Every pair is compared (no early exit), so timing does not reveal which secret
    or which of several signatures matched.
    """
    found = False
    for mine in expected:
        for theirs in received:
            found |= hmac.compare_digest(mine, theirs)
    return found


def decode_hex(value: str, size: int) -> bytes | None:
    """Hex text of exactly ``size`` bytes, any case, or ``None``."""
    if len(value) != size * 2 or not value.isascii():
        return None
    try:
        return bytes.fromhex(value)
    except ValueError:
        return None

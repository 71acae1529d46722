"""One webhook request in, one decision out: accept, answer a handshake, or reject.

The ingress (phase 2) does the I/O around this: it builds an
:class:`~flowmill.triggers.providers.request.IncomingWebhook` from the raw request,
calls :func:`inspect_webhook`, records the outcome, and writes the response. Keeping
the order of checks here means no route can read an event id or answer a challenge
from a request that was not verified first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flowmill import jsonutil
from flowmill.triggers.keys import webhook_dedupe_key
from flowmill.triggers.providers.base import (
    FailureReason,
    ProviderConfig,
    Verification,
    WebhookProvider,
    WebhookResponse,
)
from flowmill.triggers.providers.payload import PayloadError
from flowmill.triggers.providers.request import IncomingWebhook

__all__ = [
    "Accepted",
    "Challenge",
    "NotAnEvent",
    "Rejected",
    "WebhookOutcome",
    "classify",
    "inspect_webhook",
    "webhook_dedupe_key",
]


@dataclass(frozen=True)
class Accepted:
    """An authentic event: record it and start the workflow (unless its id repeats).

    Attributes:
        event_id: The provider's event id, the dedupe key (``None``: no dedupe).
        event_type: The provider's kind of event, for filtering and the record.
        payload: The decoded body (JSON, form dict, text, or ``None``).
    """

    event_id: str | None
    event_type: str | None
    payload: Any


@dataclass(frozen=True)
class Challenge:
    """A verified subscription handshake: answer with ``response``, start nothing."""

    response: WebhookResponse


@dataclass(frozen=True)
class Rejected:
    """A refused request: record ``reason`` and ``detail``, answer :attr:`response`.

    Attributes:
        reason: Why, for the record.
        detail: A few words for the record; never sent.
    """

    reason: FailureReason
    detail: str | None = None

    @property
    def response(self) -> WebhookResponse:
        """The answer: the same bare body for every reason, so it tells an attacker
        nothing about which check failed. A verified body that does not decode is
        the sender's bug, not an attack, and gets 400 with the reason, so that the
        sender can fix it."""
        if self.reason is FailureReason.MALFORMED_BODY:
            why = self.detail or "not a body this webhook reads"
            return _error(
                400,
                "bad_request",
                f"the request body could not be read: {why}",
                details=[{"field": "body", "message": why, "code": "malformed_body"}],
            )
        return _error(401, "unauthorized", "webhook verification failed")


@dataclass(frozen=True)
class NotAnEvent:
    """A verified request that carries no event (a ``GET`` that is no handshake):
    answered with :attr:`response`, not recorded, starts nothing."""

    response: WebhookResponse


WebhookOutcome = Accepted | Challenge | NotAnEvent | Rejected
EVENT_METHODS = frozenset({"POST", "PUT", "PATCH"})
"""Methods whose requests are events; anything else (``GET``) only answers handshakes,
so a link preview, a crawler or an ``<img>`` tag can never start a workflow."""


def _error(
    status: int,
    code: str,
    message: str,
    headers: dict[str, str] | None = None,
    details: list[dict[str, str]] | None = None,
) -> WebhookResponse:
    # the API's one error shape: details is a list of {field, message, code}
    body = jsonutil.dumpb({"error": {"code": code, "message": message, "details": details or []}})
    return WebhookResponse(status, body, content_type="application/json", headers=headers or {})


def inspect_webhook(
    provider: WebhookProvider[Any],
    config: ProviderConfig,
    request: IncomingWebhook,
    secrets: str | Sequence[str],
    now: datetime,
    *,
    decode: bool = True,
) -> WebhookOutcome:
    """Verify, decode, and classify one request. Pure: no I/O.

    Args:
        provider: The trigger's provider.
        config: The trigger's provider config, from ``provider.parse_config``.
        request: The request as received (raw body).
        secrets: The trigger's secret, or the current and previous ones while rotating.
        now: The current time, aware, from the ``Clock`` port.
        decode: Decode the body. ``False`` for a body above the blob threshold: it is
            stored as a blob and decoded only when a node touches it, so its payload
            is ``None`` here (an event id must then come from a header, and a POST is
            never a handshake).
    """
    verification = provider.verify(request, secrets, config, now)
    return classify(provider, config, request, verification, decode=decode)


def classify(
    provider: WebhookProvider[Any],
    config: ProviderConfig,
    request: IncomingWebhook,
    verification: Verification,
    *,
    decode: bool = True,
) -> WebhookOutcome:
    """What to do with a request, once its verification is known. Pure: no I/O.

    :func:`inspect_webhook` verifies a body in memory and calls this; the ingress calls
    it directly for a body it verified while streaming it into the blob store (with
    ``decode=False``, ``request.body`` empty and ``request.body_sha256`` set).
    """
    if not verification.ok:
        # Fail closed even if a provider forgot to give a reason.
        reason = verification.reason or FailureReason.SIGNATURE_MISMATCH
        return Rejected(reason, verification.detail)
    payload: Any = None
    if decode:
        try:
            payload = provider.parse_payload(request, config)
        except PayloadError as e:
            return Rejected(FailureReason.MALFORMED_BODY, str(e))
        response = provider.handshake(request, payload, config)
        if response is not None:
            return Challenge(response)
    if request.method.upper() not in EVENT_METHODS:
        return NotAnEvent(
            _error(
                405,
                "method_not_allowed",
                f"{request.method} only answers subscription handshakes here; "
                "send the event with POST",
                {"Allow": "POST"},
            )
        )
    return Accepted(
        event_id=provider.event_id(request, payload, config),
        event_type=provider.event_type(request, payload, config),
        payload=payload,
    )

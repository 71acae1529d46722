"""Stripe: header parsing (docs example), secret as text, rotation, tolerance, event ids.

Stripe publishes the header format (docs.stripe.com/webhooks#verify-manually, example
``t=1492774577,v1=5257a8...,v0=6ffbb5...``) but not the secret and body behind it, so
the signature vectors below come from the scheme stripe-python implements
(``WebhookSignature._compute_signature``: HMAC-SHA256 of ``"{t}.{payload}"`` keyed with
the secret string), written out independently in ``webhook_support.stripe_header``.
"""

from __future__ import annotations

import pytest

from flowmill.triggers.providers import FailureReason
from flowmill.triggers.providers.stripe import parse_signature_header
from flowmill.triggers.webhooks import Accepted, inspect_webhook
from tests.webhook_support import clock_at, hex_hmac, post, provider, stripe_header

DOCS_HEADER = (
    "t=1492774577,"
    "v1=5257a869e7ecebeda32affa62cdca3fa51cad7e77a0e56ff536d0ce8e108d8bd,"
    "v0=6ffbb59b2300aae63f272406069a9788598b792a944a07aba816edb039989a39"
)
SECRET = "whsec_test_secret"
T = 1492774577
BODY = '{\n  "id": "evt_test_webhook",\n  "object": "event",\n  "type": "invoice.paid"\n}'
# The v1 of SECRET, T and BODY, computed once with Python's hmac (not published by
# Stripe): pins the vector so a change to the test signer cannot hide a regression.
PINNED_V1 = "193dddae6ed0387d01ad675ab991ce245efa31c2b45570375b7e5902012f1c13"

STRIPE = provider("stripe")
CONFIG = STRIPE.parse_config({})


def verify(request, secrets=SECRET, at: float = T, config=CONFIG):
    return STRIPE.verify(request, secrets, config, clock_at(at).now())


def signed(body: str = BODY, secret: str = SECRET, t: int = T):
    return post(body, {"Stripe-Signature": stripe_header(secret, t, body)})


def test_stripe_docs_example_header_parses():
    timestamp, v1, schemes = parse_signature_header(DOCS_HEADER)
    assert timestamp == "1492774577"
    assert v1 == ["5257a869e7ecebeda32affa62cdca3fa51cad7e77a0e56ff536d0ce8e108d8bd"]
    assert schemes == {"v1", "v0"}


def test_stripe_signed_payload_verifies():
    assert verify(signed()).ok


def test_stripe_pinned_vector_verifies():
    assert stripe_header(SECRET, T, BODY) == f"t={T},v1={PINNED_V1}"
    assert verify(post(BODY, {"Stripe-Signature": f"t={T},v1={PINNED_V1}"})).ok


def test_stripe_secret_is_used_as_text_not_base64():
    # The whole "whsec_..." string is the key, prefix included.
    header = f"t={T},v1={hex_hmac('whsec_test_secret', f'{T}.{BODY}')}"
    assert verify(post(BODY, {"Stripe-Signature": header})).ok
    header = f"t={T},v1={hex_hmac('test_secret', f'{T}.{BODY}')}"
    assert not verify(post(BODY, {"Stripe-Signature": header})).ok


def test_stripe_rolled_secret_several_v1_any_matches():
    old = hex_hmac("whsec_old", f"{T}.{BODY}")
    new = hex_hmac(SECRET, f"{T}.{BODY}")
    header = f"t={T},v1={old},v1={new}"
    assert verify(post(BODY, {"Stripe-Signature": header})).ok


def test_stripe_v0_alone_is_not_accepted():
    # Downgrade protection: a valid-looking v0 signature is never checked.
    header = f"t={T},v0={hex_hmac(SECRET, f'{T}.{BODY}')}"
    assert (
        verify(post(BODY, {"Stripe-Signature": header})).reason
        is FailureReason.UNSUPPORTED_SIGNATURE
    )


@pytest.mark.parametrize(
    ("request_", "secrets"),
    [
        (
            post(
                BODY.replace("invoice.paid", "invoice.void"),
                {"Stripe-Signature": stripe_header(SECRET, T, BODY)},
            ),
            SECRET,
        ),
        (signed(), "whsec_wrong"),
        (
            post(
                BODY,
                {
                    "Stripe-Signature": stripe_header(SECRET, T + 1, BODY).replace(
                        f"t={T + 1}", f"t={T}"
                    )
                },
            ),
            SECRET,
        ),
    ],
    ids=["tampered-body", "wrong-secret", "moved-timestamp"],
)
def test_stripe_rejects_tampering(request_, secrets):
    assert verify(request_, secrets=secrets).reason is FailureReason.SIGNATURE_MISMATCH


@pytest.mark.parametrize(
    ("offset", "ok"),
    [(-301, False), (-300, True), (300, True), (301, False)],
    ids=["future-301", "future-300", "stale-300", "stale-301"],
)
def test_stripe_tolerance_both_directions(offset, ok):
    result = verify(signed(), at=T + offset)
    assert result.ok is ok
    if not ok:
        assert result.reason is FailureReason.TIMESTAMP_OUT_OF_TOLERANCE


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ("v1=abc", "malformed_signature"),
        (f"t={T},t={T},v1={'0' * 64}", "malformed_signature"),
        (f"t={T}", "malformed_signature"),
        (f"t={T},v1=xyz", "malformed_signature"),
        (f"t=now,v1={'0' * 64}", "malformed_timestamp"),
        ("", "missing_header"),
    ],
)
def test_stripe_malformed_headers(header, reason):
    assert verify(post(BODY, {"Stripe-Signature": header})).reason == reason


def test_stripe_replayed_event_same_id_and_type():
    first = inspect_webhook(STRIPE, CONFIG, signed(), SECRET, clock_at(T).now())
    retried = signed(t=T + 3600)  # Stripe retries resend the event with a fresh t
    again = inspect_webhook(STRIPE, CONFIG, retried, SECRET, clock_at(T + 3600).now())
    assert isinstance(first, Accepted) and isinstance(again, Accepted)
    assert first.event_id == again.event_id == "evt_test_webhook"
    assert first.event_type == "invoice.paid"


def test_stripe_configured_event_id_path_wins():
    config = STRIPE.parse_config({"event_id_path": "data.object.id"})
    body = '{"id":"evt_1","type":"x","data":{"object":{"id":"in_42"}}}'
    outcome = inspect_webhook(STRIPE, config, signed(body), SECRET, clock_at(T).now())
    assert isinstance(outcome, Accepted)
    assert outcome.event_id == "in_42"

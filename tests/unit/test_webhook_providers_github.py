"""GitHub: the documented example signature, tampering, headers, ping, delivery ids."""

from __future__ import annotations

import pytest

from flowmill.triggers.providers import FailureReason
from flowmill.triggers.webhooks import Accepted, Challenge, inspect_webhook
from tests.webhook_support import clock_at, hub_signature, post, provider

# docs.github.com/webhooks/using-webhooks/validating-webhook-deliveries,
# "Testing the webhook payload validation".
SECRET = "It's a Secret to Everybody"
BODY = "Hello, World!"
SIGNATURE = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
DELIVERY = "72d3162e-cc78-11e3-81ab-4c9367dc0958"

GITHUB = provider("github")
CONFIG = GITHUB.parse_config({})
NOW = clock_at(1_780_000_000).now()


def text(body: str, hdrs):
    return post(body, hdrs, content_type="text/plain")


def headers(signature: str = SIGNATURE, event: str = "push", delivery: str = DELIVERY):
    return {
        "X-Hub-Signature-256": signature,
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery,
    }


def verify(request, secrets=SECRET, config=CONFIG):
    return GITHUB.verify(request, secrets, config, NOW)


def test_github_documented_example_verifies():
    assert verify(text(BODY, headers())).ok


def test_github_independent_signer_matches_documented_example():
    assert hub_signature(SECRET, BODY) == SIGNATURE


def test_github_uppercase_hex_accepted():
    upper = "sha256=" + SIGNATURE.removeprefix("sha256=").upper()
    assert verify(post(BODY, headers(upper))).ok


@pytest.mark.parametrize(
    ("body", "hdrs", "secrets"),
    [
        ("Hello, World?", headers(), SECRET),
        ("Hello, World!\n", headers(), SECRET),
        (BODY, headers(), "It's a secret to everybody"),
        (BODY, headers(hub_signature("other", BODY)), SECRET),
    ],
    ids=["tampered-body", "extra-newline", "wrong-secret", "signed-by-other"],
)
def test_github_rejects_tampering(body, hdrs, secrets):
    assert verify(post(body, hdrs), secrets=secrets).reason is FailureReason.SIGNATURE_MISMATCH


@pytest.mark.parametrize(
    ("signature", "reason"),
    [
        ("757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17", "malformed_signature"),
        ("sha1=757107ea0eb2509fc211221cce984b8a37570b6d", "malformed_signature"),
        ("sha256=757107ea", "malformed_signature"),
        (
            "sha256=zz7107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
            "malformed_signature",
        ),
        ("", "missing_header"),
    ],
)
def test_github_malformed_signature(signature, reason):
    assert verify(post(BODY, headers(signature))).reason == reason


def test_github_sha1_only_is_unsupported():
    request = post(BODY, {"X-Hub-Signature": "sha1=0123456789abcdef0123456789abcdef01234567"})
    assert verify(request).reason is FailureReason.UNSUPPORTED_SIGNATURE


def test_github_secret_rotation_any_configured_secret():
    assert verify(post(BODY, headers()), secrets=["new-secret", SECRET]).ok


def test_github_no_secret():
    assert verify(post(BODY, headers()), secrets=[]).reason is FailureReason.NO_SECRET


def test_github_replay_has_same_delivery_id():
    first = inspect_webhook(GITHUB, CONFIG, text(BODY, headers()), SECRET, NOW)
    again = inspect_webhook(GITHUB, CONFIG, text(BODY, headers()), SECRET, NOW)
    assert isinstance(first, Accepted) and isinstance(again, Accepted)
    assert first.event_id == again.event_id == DELIVERY
    assert first.event_type == "push"


def test_github_body_dedupe_defeats_new_delivery_id():
    # X-GitHub-Delivery is not signed: a replayer can change it, but not the body.
    config = GITHUB.parse_config({"dedupe_on": "body"})
    a = inspect_webhook(GITHUB, config, text(BODY, headers(delivery="a")), SECRET, NOW)
    b = inspect_webhook(GITHUB, config, text(BODY, headers(delivery="b")), SECRET, NOW)
    assert isinstance(a, Accepted) and isinstance(b, Accepted)
    assert a.event_id == b.event_id
    assert a.event_id is not None and a.event_id.startswith("sha256:")


def test_github_ping_is_answered_not_run():
    body = '{"zen":"Design for failure.","hook_id":1}'
    request = post(body, headers(hub_signature(SECRET, body), event="ping"))
    outcome = inspect_webhook(GITHUB, CONFIG, request, SECRET, NOW)
    assert isinstance(outcome, Challenge)
    assert outcome.response.status == 204


def test_github_unsigned_ping_is_rejected():
    request = post("{}", {"X-GitHub-Event": "ping"})
    outcome = inspect_webhook(GITHUB, CONFIG, request, SECRET, NOW)
    assert not isinstance(outcome, Challenge)

"""Standard Webhooks: the spec's published vector, rotation, tampering, freshness."""

from __future__ import annotations

import pytest

from flowmill.triggers.providers import FailureReason
from flowmill.triggers.webhooks import Accepted, Rejected, inspect_webhook
from tests.webhook_support import clock_at, post, provider, standard_signature

# Published test vector of the Standard Webhooks reference libraries:
# github.com/standard-webhooks/standard-webhooks, libraries/python/tests/test_webhooks.py
# (test_sign_function), repeated by Svix's "verifying payloads manually" docs.
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
MSG_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
TIMESTAMP = 1614265330
BODY = '{"test": 2432232314}'
SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
OTHER_SECRET = "whsec_c2VjcmV0LW9mLWEtcm90YXRlZC1lbmRwb2ludA=="

STANDARD = provider("standard")
CONFIG = STANDARD.parse_config({})


def headers(signature: str = SIGNATURE, timestamp: int = TIMESTAMP, msg_id: str = MSG_ID):
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature,
    }


def verify(request, secrets=SECRET, at: float = TIMESTAMP, config=CONFIG):
    return STANDARD.verify(request, secrets, config, clock_at(at).now())


def test_standard_published_vector_verifies():
    assert verify(post(BODY, headers())).ok


def test_standard_independent_signer_matches_published_vector():
    assert standard_signature(SECRET, MSG_ID, TIMESTAMP, BODY) == SIGNATURE


def test_standard_secret_without_prefix_verifies():
    assert verify(post(BODY, headers()), secrets=SECRET.removeprefix("whsec_")).ok


@pytest.mark.parametrize(
    ("body", "hdrs", "secrets", "reason"),
    [
        ('{"test": 2432232315}', headers(), SECRET, FailureReason.SIGNATURE_MISMATCH),
        (BODY + " ", headers(), SECRET, FailureReason.SIGNATURE_MISMATCH),
        (BODY, headers(msg_id="msg_other"), SECRET, FailureReason.SIGNATURE_MISMATCH),
        (BODY, headers(), OTHER_SECRET, FailureReason.SIGNATURE_MISMATCH),
        (
            BODY,
            headers(signature="v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OA="),
            SECRET,
            FailureReason.SIGNATURE_MISMATCH,
        ),
    ],
    ids=["tampered-body", "trailing-space", "other-id", "wrong-secret", "flipped-signature"],
)
def test_standard_rejects_tampering(body, hdrs, secrets, reason):
    result = verify(post(body, hdrs), secrets=secrets)
    assert (result.ok, result.reason) == (False, reason)


def test_standard_changed_timestamp_breaks_signature():
    # The timestamp is signed: moving it into the tolerance window does not help.
    result = verify(post(BODY, headers(timestamp=TIMESTAMP + 60)))
    assert result.reason is FailureReason.SIGNATURE_MISMATCH


@pytest.mark.parametrize(
    ("offset", "ok"),
    [(-301, False), (-300, True), (0, True), (300, True), (301, False), (86400, False)],
    ids=["future-301", "future-300", "now", "stale-300", "stale-301", "a-day-old"],
)
def test_standard_timestamp_tolerance_both_directions(offset, ok):
    result = verify(post(BODY, headers()), at=TIMESTAMP + offset)
    assert result.ok is ok
    if not ok:
        assert result.reason is FailureReason.TIMESTAMP_OUT_OF_TOLERANCE


def test_standard_tolerance_is_configurable():
    config = STANDARD.parse_config({"tolerance_s": 600})
    assert verify(post(BODY, headers()), at=TIMESTAMP + 599, config=config).ok


def test_standard_signature_list_any_valid_entry_passes():
    # The sender's key rotation: the header carries signatures under several keys.
    listed = " ".join(
        [
            "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=",
            "v1a,hnO3f9T8Ytu9HwrXslvumlUpqtNVqkhqw/enGzPCXe5BdqzCInXqYXFymVJaA7AZdpXwVLPo3mNl8EM+m7TBAg==",
            "v2,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=",
            SIGNATURE,
        ]
    )
    assert verify(post(BODY, headers(signature=listed))).ok


def test_standard_several_configured_secrets_any_may_match():
    # Our side of a rotation: the trigger holds the new and the old secret.
    assert verify(post(BODY, headers()), secrets=[OTHER_SECRET, SECRET]).ok


@pytest.mark.parametrize(
    ("drop", "reason"),
    [
        ("webhook-id", FailureReason.MISSING_HEADER),
        ("webhook-timestamp", FailureReason.MISSING_HEADER),
        ("webhook-signature", FailureReason.MISSING_HEADER),
    ],
)
def test_standard_missing_header(drop, reason):
    hdrs = {k: v for k, v in headers().items() if k != drop}
    assert verify(post(BODY, hdrs)).reason is reason


@pytest.mark.parametrize(
    ("signature", "timestamp", "reason"),
    [
        ("g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", str(TIMESTAMP), "malformed_signature"),
        ("v1,not base64!", str(TIMESTAMP), "malformed_signature"),
        (
            "v1a,hnO3f9T8Ytu9HwrXslvumlUpqtNVqkhqw/enGzPCX==",
            str(TIMESTAMP),
            "unsupported_signature",
        ),
        (SIGNATURE, "hello", "malformed_timestamp"),
        (SIGNATURE, "1614265330.5", "malformed_timestamp"),
    ],
)
def test_standard_malformed_headers(signature, timestamp, reason):
    hdrs = {"webhook-id": MSG_ID, "webhook-timestamp": timestamp, "webhook-signature": signature}
    assert verify(post(BODY, hdrs)).reason == reason


def test_standard_duplicate_signature_header_refused():
    hdrs = [*headers().items(), ("Webhook-Signature", "v1,AAAA")]
    assert verify(post(BODY, hdrs)).reason is FailureReason.DUPLICATE_HEADER


def test_standard_headers_are_case_insensitive():
    hdrs = {k.upper(): v for k, v in headers().items()}
    assert verify(post(BODY, hdrs)).ok


def test_standard_svix_header_prefix():
    config = STANDARD.parse_config({"header_prefix": "svix"})
    hdrs = {k.replace("webhook-", "svix-"): v for k, v in headers().items()}
    assert verify(post(BODY, hdrs), config=config).ok
    assert not verify(post(BODY, headers()), config=config).ok


@pytest.mark.parametrize("secret", ["", "whsec_", "whsec_!!!not-base64"])
def test_standard_unusable_secret_is_no_secret(secret):
    assert verify(post(BODY, headers()), secrets=secret).reason is FailureReason.NO_SECRET
    assert STANDARD.secret_issue(secret) is not None


def test_standard_replayed_delivery_keeps_event_id():
    # A retry by the sender has a new timestamp and signature but the same webhook-id.
    later = TIMESTAMP + 3600
    retry = post(BODY, headers(standard_signature(SECRET, MSG_ID, later, BODY), later))
    first = inspect_webhook(
        STANDARD, CONFIG, post(BODY, headers()), SECRET, clock_at(TIMESTAMP).now()
    )
    again = inspect_webhook(STANDARD, CONFIG, retry, SECRET, clock_at(later).now())
    assert isinstance(first, Accepted) and isinstance(again, Accepted)
    assert first.event_id == again.event_id == MSG_ID


def test_standard_replay_of_old_capture_is_stale():
    outcome = inspect_webhook(
        STANDARD, CONFIG, post(BODY, headers()), SECRET, clock_at(TIMESTAMP + 3600).now()
    )
    assert isinstance(outcome, Rejected)
    assert outcome.reason is FailureReason.TIMESTAMP_OUT_OF_TOLERANCE
    assert outcome.detail == "timestamp 3600 s old"


def test_standard_event_type_from_body():
    body = '{"type":"invoice.paid","data":{}}'
    request = post(body, headers(standard_signature(SECRET, MSG_ID, TIMESTAMP, body)))
    outcome = inspect_webhook(STANDARD, CONFIG, request, SECRET, clock_at(TIMESTAMP).now())
    assert isinstance(outcome, Accepted)
    assert outcome.event_type == "invoice.paid"

"""Generic HMAC (header, algorithm, encoding, prefix, timed template) and ``none``."""

from __future__ import annotations

import base64

import pytest
from pydantic import ValidationError

from flowmill.triggers.providers import FailureReason
from flowmill.triggers.webhooks import Accepted, inspect_webhook
from tests.webhook_support import b64_hmac, clock_at, hex_hmac, post, provider

HMAC = provider("hmac")
NONE = provider("none")
SECRET = "shpss_5e1f2c"
BODY = '{"id":820982911946154508,"email":"jon@example.com"}'
T = 1_780_000_000
NOW = clock_at(T).now()


def verify(request, config, secrets=SECRET, at: float = T):
    return HMAC.verify(request, secrets, HMAC.parse_config(config), clock_at(at).now())


@pytest.mark.parametrize("algorithm", ["sha1", "sha256", "sha512"])
@pytest.mark.parametrize("encoding", ["hex", "base64"])
def test_hmac_algorithms_and_encodings(algorithm, encoding):
    sign = hex_hmac if encoding == "hex" else b64_hmac
    request = post(BODY, {"X-Signature": sign(SECRET, BODY, algorithm)})
    assert verify(request, {"algorithm": algorithm, "encoding": encoding}).ok
    other = post(BODY + " ", {"X-Signature": sign(SECRET, BODY, algorithm)})
    assert (
        verify(other, {"algorithm": algorithm, "encoding": encoding}).reason
        is FailureReason.SIGNATURE_MISMATCH
    )


def test_hmac_shopify_style_base64_header():
    # Shopify: X-Shopify-Hmac-Sha256, base64 of HMAC-SHA256 of the body, no prefix.
    config = {"signature_header": "X-Shopify-Hmac-Sha256", "encoding": "base64"}
    request = post(BODY, {"X-Shopify-Hmac-Sha256": b64_hmac(SECRET, BODY)})
    assert verify(request, config).ok
    assert not verify(request, config, secrets="wrong").ok


def test_hmac_prefix_is_required_and_stripped():
    config = {"signature_header": "X-Hub-Signature-256", "prefix": "sha256="}
    good = post(BODY, {"X-Hub-Signature-256": "sha256=" + hex_hmac(SECRET, BODY)})
    bare = post(BODY, {"X-Hub-Signature-256": hex_hmac(SECRET, BODY)})
    assert verify(good, config).ok
    assert verify(bare, config).reason is FailureReason.MALFORMED_SIGNATURE


def test_hmac_base64_url_safe_and_unpadded_accepted():
    raw = base64.urlsafe_b64encode(bytes.fromhex(hex_hmac(SECRET, BODY))).decode().rstrip("=")
    assert verify(post(BODY, {"X-Signature": raw}), {"encoding": "base64"}).ok


def test_hmac_secret_encodings():
    key = bytes(range(32))
    for encoding, text in [("base64", base64.b64encode(key).decode()), ("hex", key.hex())]:
        request = post(BODY, {"X-Signature": hex_hmac(key, BODY)})
        assert verify(request, {"secret_encoding": encoding}, secrets=text).ok
    request = post(BODY, {"X-Signature": hex_hmac(key, BODY)})
    assert (
        verify(request, {"secret_encoding": "hex"}, secrets="zz").reason is FailureReason.NO_SECRET
    )


TIMED = {
    "signature_header": "X-Sig",
    "timestamp_header": "X-Timestamp",
    "signed_payload": "v1:{timestamp}:{body}",
}


def timed(at: int = T, body: str = BODY, unit: str = "s"):
    stamp = str(at if unit == "s" else at * 1000)
    return post(body, {"X-Sig": hex_hmac(SECRET, f"v1:{stamp}:{body}"), "X-Timestamp": stamp})


@pytest.mark.parametrize(
    ("offset", "ok"),
    [(-301, False), (-300, True), (300, True), (301, False)],
    ids=["future-301", "future-300", "stale-300", "stale-301"],
)
def test_hmac_timed_template_tolerance(offset, ok):
    result = verify(timed(), TIMED, at=T + offset)
    assert result.ok is ok
    if not ok:
        assert result.reason is FailureReason.TIMESTAMP_OUT_OF_TOLERANCE


def test_hmac_timed_template_milliseconds():
    assert verify(timed(unit="ms"), {**TIMED, "timestamp_unit": "ms"}).ok


def test_hmac_timed_template_moved_timestamp_fails():
    request = timed()
    moved = post(BODY, {"X-Sig": request.headers["X-Sig"], "X-Timestamp": str(T + 10)})
    assert verify(moved, TIMED).reason is FailureReason.SIGNATURE_MISMATCH


def test_hmac_id_in_template_and_as_dedupe_key():
    config = {
        "signed_payload": "{id}.{timestamp}.{body}",
        "timestamp_header": "X-Ts",
        "id_header": "X-Id",
    }
    request = post(
        BODY,
        {"X-Signature": hex_hmac(SECRET, f"evt-9.{T}.{BODY}"), "X-Ts": str(T), "X-Id": "evt-9"},
    )
    outcome = inspect_webhook(HMAC, HMAC.parse_config(config), request, SECRET, NOW)
    assert isinstance(outcome, Accepted) and outcome.event_id == "evt-9"


@pytest.mark.parametrize(
    "config",
    [
        {"signed_payload": "{timestamp}"},
        {"signed_payload": "{body}{body}"},
        {"signed_payload": "{body}.{nonce}"},
        {"signed_payload": "{body", "timestamp_header": None},
        {"signed_payload": "{timestamp}.{body}"},
        {"timestamp_header": "X-Ts"},
        {"signed_payload": "{id}.{body}"},
        {"algorithm": "md5"},
        {"signature_header": "Bad Header"},
        {"tolerance_s": 0},
        {"unknown": 1},
        {"event_id_path": "a..b"},
    ],
)
def test_hmac_config_refused(config):
    with pytest.raises(ValidationError):
        HMAC.parse_config(config)


def test_hmac_missing_and_malformed_signature():
    assert verify(post(BODY, {}), {}).reason is FailureReason.MISSING_HEADER
    assert (
        verify(post(BODY, {"X-Signature": "abc"}), {}).reason is FailureReason.MALFORMED_SIGNATURE
    )


def test_webhook_providers_hmac_none_provider_needs_explicit_opt_in():
    with pytest.raises(ValidationError, match="allow_unverified"):
        NONE.parse_config({})
    with pytest.raises(ValidationError):
        NONE.parse_config({"allow_unverified": False})


def test_webhook_providers_hmac_none_provider_accepts_unsigned_seed_payload():
    config = NONE.parse_config({"allow_unverified": True, "event_id_header": "Idempotency-Key"})
    request = post('{"message": "hello"}', {"Idempotency-Key": "k-1"})
    outcome = inspect_webhook(NONE, config, request, (), NOW)
    assert isinstance(outcome, Accepted)
    assert outcome.payload == {"message": "hello"}
    assert outcome.event_id == "k-1"

"""Meta (Instagram/Facebook/WhatsApp): the GET handshake and X-Hub-Signature-256.

Meta publishes the scheme (developers.facebook.com/docs/graph-api/webhooks/getting-started,
"Verification Requests" and "Validate Payloads") but no signed example, so the
signatures come from ``webhook_support.hub_signature`` (HMAC-SHA256 of the raw body,
the same construction as GitHub, whose documented vector is checked there).
"""

from __future__ import annotations

import pytest

from flowmill.triggers.providers import FailureReason
from flowmill.triggers.webhooks import Accepted, Challenge, Rejected, inspect_webhook
from tests.webhook_support import clock_at, hub_signature, post, provider

APP_SECRET = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
VERIFY_TOKEN = "flowmill-verify-7c1f"
NOW = clock_at(1_780_000_000).now()
# An Instagram message notification as Meta sends it: compact, non-ASCII escaped.
BODY = (
    '{"object":"instagram","entry":[{"time":1780000000123,"id":"17841400000000000",'
    '"messaging":[{"sender":{"id":"6543210"},"recipient":{"id":"17841400000000000"},'
    '"timestamp":1780000000000,"message":{"mid":"aWdfZAG1faXRlbToxOklHTWVzc2FnZAUlEOjE3",'
    '"text":"caf\\u00e9 \\/ ol\\u00e1"}}]}]}'
)

META = provider("meta")
CONFIG = META.parse_config({"verify_token": VERIFY_TOKEN})


def handshake_request(**params: str):
    query = {
        "hub.mode": "subscribe",
        "hub.verify_token": VERIFY_TOKEN,
        "hub.challenge": "1158201444",
    }
    query.update(params)
    from urllib.parse import urlencode

    return post(b"", {}, content_type=None, method="GET", query=urlencode(query))


def inspect(request, config=CONFIG, secrets=APP_SECRET):
    return inspect_webhook(META, config, request, secrets, NOW)


def test_meta_handshake_echoes_challenge():
    outcome = inspect(handshake_request())
    assert isinstance(outcome, Challenge)
    assert (outcome.response.status, outcome.response.body) == (200, b"1158201444")
    assert outcome.response.content_type.startswith("text/plain")


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        ({"hub.verify_token": "guess"}, FailureReason.VERIFY_TOKEN_MISMATCH),
        ({"hub.mode": "unsubscribe"}, FailureReason.VERIFY_TOKEN_MISMATCH),
        ({"hub.challenge": "<script>alert(1)</script>\n"}, FailureReason.MISSING_PARAMETER),
        ({"hub.challenge": "x" * 300}, FailureReason.MISSING_PARAMETER),
    ],
    ids=["wrong-token", "wrong-mode", "unprintable-challenge", "long-challenge"],
)
def test_meta_handshake_refused(params, reason):
    outcome = inspect(handshake_request(**params))
    assert isinstance(outcome, Rejected)
    assert outcome.reason is reason
    assert outcome.response.status == 401


def test_meta_handshake_missing_parameter():
    request = post(b"", {}, content_type=None, method="GET", query="hub.mode=subscribe")
    outcome = inspect(request)
    assert isinstance(outcome, Rejected) and outcome.reason is FailureReason.MISSING_PARAMETER


def test_meta_handshake_without_configured_token_is_refused():
    outcome = inspect(handshake_request(), config=META.parse_config({}))
    assert isinstance(outcome, Rejected) and outcome.reason is FailureReason.NO_SECRET


def test_meta_signed_event_accepted_on_raw_bytes():
    request = post(BODY, {"X-Hub-Signature-256": hub_signature(APP_SECRET, BODY)})
    outcome = inspect(request)
    assert isinstance(outcome, Accepted)
    assert outcome.event_type == "instagram"
    assert outcome.payload["entry"][0]["messaging"][0]["message"]["text"] == "café / olá"


def test_meta_reserialised_json_does_not_verify():
    # What a framework that parses then re-dumps the body would hand us.
    import json

    reserialised = json.dumps(json.loads(BODY), ensure_ascii=False, separators=(",", ":"))
    assert reserialised != BODY
    request = post(reserialised, {"X-Hub-Signature-256": hub_signature(APP_SECRET, BODY)})
    outcome = inspect(request)
    assert isinstance(outcome, Rejected) and outcome.reason is FailureReason.SIGNATURE_MISMATCH


@pytest.mark.parametrize(
    ("body", "signature", "secrets", "reason"),
    [
        (
            BODY.replace("6543210", "6543211"),
            hub_signature(APP_SECRET, BODY),
            APP_SECRET,
            "signature_mismatch",
        ),
        (BODY, hub_signature(APP_SECRET, BODY), "wrong-app-secret", "signature_mismatch"),
        (BODY, None, APP_SECRET, "missing_header"),
        (BODY, "sha256=nothex", APP_SECRET, "malformed_signature"),
    ],
    ids=["tampered-body", "wrong-secret", "no-signature", "malformed"],
)
def test_meta_event_refused(body, signature, secrets, reason):
    hdrs = {} if signature is None else {"X-Hub-Signature-256": signature}
    outcome = inspect(post(body, hdrs), secrets=secrets)
    assert isinstance(outcome, Rejected) and outcome.reason == reason


def test_meta_replayed_body_same_dedupe_key():
    request = post(BODY, {"X-Hub-Signature-256": hub_signature(APP_SECRET, BODY)})
    first, again = inspect(request), inspect(request)
    assert isinstance(first, Accepted) and isinstance(again, Accepted)
    assert first.event_id == again.event_id
    assert first.event_id is not None and first.event_id.startswith("sha256:")


def test_meta_event_id_path_names_the_message_id():
    config = META.parse_config(
        {"verify_token": VERIFY_TOKEN, "event_id_path": "entry[0].messaging[0].message.mid"}
    )
    request = post(BODY, {"X-Hub-Signature-256": hub_signature(APP_SECRET, BODY)})
    outcome = inspect(request, config=config)
    assert isinstance(outcome, Accepted)
    assert outcome.event_id == "aWdfZAG1faXRlbToxOklHTWVzc2FnZAUlEOjE3"


def test_meta_body_dedupe_can_be_turned_off():
    config = META.parse_config({"dedupe_on_body": False})
    request = post(BODY, {"X-Hub-Signature-256": hub_signature(APP_SECRET, BODY)})
    outcome = inspect(request, config=config)
    assert isinstance(outcome, Accepted) and outcome.event_id is None

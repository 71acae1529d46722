"""Slack: the documented v0 example, url_verification, forms, tolerance, event ids."""

from __future__ import annotations

import json

import pytest

from flowmill.triggers.providers import FailureReason
from flowmill.triggers.webhooks import Accepted, Challenge, Rejected, inspect_webhook
from tests.webhook_support import clock_at, post, provider, slack_headers

# docs.slack.dev/authentication/verifying-requests-from-slack, the worked example.
SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
TIMESTAMP = 1531420618
BODY = (
    "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow"
    "&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner"
    "&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands"
    "%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN"
    "&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
)
SIGNATURE = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
FORM = "application/x-www-form-urlencoded"

SLACK = provider("slack")
CONFIG = SLACK.parse_config({})


def doc_request(body: str = BODY, signature: str = SIGNATURE, timestamp: int = TIMESTAMP):
    hdrs = {"X-Slack-Signature": signature, "X-Slack-Request-Timestamp": str(timestamp)}
    return post(body, hdrs, content_type=FORM)


def verify(request, secrets=SECRET, at: float = TIMESTAMP):
    return SLACK.verify(request, secrets, CONFIG, clock_at(at).now())


def event(body: dict, at: int = TIMESTAMP, secret: str = SECRET):
    text = json.dumps(body)
    return post(text, slack_headers(secret, at, text))


def test_slack_documented_example_verifies():
    assert verify(doc_request()).ok


def test_slack_independent_signer_matches_documented_example():
    assert slack_headers(SECRET, TIMESTAMP, BODY)["X-Slack-Signature"] == SIGNATURE


@pytest.mark.parametrize(
    ("request_", "secrets"),
    [
        (doc_request(BODY.replace("foobar", "foobaz")), SECRET),
        (doc_request(), "8f742231b10e8888abcd99yyyzzz85a6"),
        (doc_request(timestamp=TIMESTAMP + 1), SECRET),
    ],
    ids=["tampered-body", "wrong-secret", "moved-timestamp"],
)
def test_slack_rejects_tampering(request_, secrets):
    assert verify(request_, secrets).reason is FailureReason.SIGNATURE_MISMATCH


@pytest.mark.parametrize(
    ("offset", "ok"),
    [(-301, False), (-300, True), (300, True), (301, False)],
    ids=["future-301", "future-300", "stale-300", "stale-301"],
)
def test_slack_tolerance_both_directions(offset, ok):
    result = verify(doc_request(), at=TIMESTAMP + offset)
    assert result.ok is ok
    if not ok:
        assert result.reason is FailureReason.TIMESTAMP_OUT_OF_TOLERANCE


@pytest.mark.parametrize(
    ("signature", "timestamp", "reason"),
    [
        (
            "a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503",
            "1531420618",
            "malformed_signature",
        ),
        (
            "v1=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503",
            "1531420618",
            "unsupported_signature",
        ),
        ("v0=a2114d57", "1531420618", "malformed_signature"),
        (SIGNATURE, "yesterday", "malformed_timestamp"),
        (SIGNATURE, "", "missing_header"),
        ("", "1531420618", "missing_header"),
    ],
)
def test_slack_malformed_headers(signature, timestamp, reason):
    hdrs = {"X-Slack-Signature": signature, "X-Slack-Request-Timestamp": timestamp}
    assert verify(post(BODY, hdrs, content_type=FORM)).reason == reason


def test_slack_url_verification_answered_after_verification():
    body = {
        "token": "Jhj5dZrVaK7ZwHHjRyZWjbDl",
        "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P",
        "type": "url_verification",
    }
    outcome = inspect_webhook(SLACK, CONFIG, event(body), SECRET, clock_at(TIMESTAMP).now())
    assert isinstance(outcome, Challenge)
    assert outcome.response.status == 200
    assert json.loads(outcome.response.body) == {"challenge": body["challenge"]}


def test_slack_unsigned_url_verification_is_rejected():
    body = {"challenge": "abc", "type": "url_verification"}
    forged = event(body, secret="not-the-secret")
    outcome = inspect_webhook(SLACK, CONFIG, forged, SECRET, clock_at(TIMESTAMP).now())
    assert isinstance(outcome, Rejected)
    assert outcome.response.status == 401


def test_slack_event_callback_id_and_type_and_retry():
    body = {"type": "event_callback", "event_id": "Ev08MFMKH6", "event": {"type": "app_mention"}}
    first = inspect_webhook(SLACK, CONFIG, event(body), SECRET, clock_at(TIMESTAMP).now())
    # Slack retries a delivery (X-Slack-Retry-Num: 1) with the same event_id.
    retry_at = TIMESTAMP + 60
    text = json.dumps(body)
    retry = post(text, [*slack_headers(SECRET, retry_at, text).items(), ("X-Slack-Retry-Num", "1")])
    again = inspect_webhook(SLACK, CONFIG, retry, SECRET, clock_at(retry_at).now())
    assert isinstance(first, Accepted) and isinstance(again, Accepted)
    assert first.event_id == again.event_id == "Ev08MFMKH6"
    assert first.event_type == "app_mention"


def test_slack_slash_command_form_is_parsed():
    outcome = inspect_webhook(SLACK, CONFIG, doc_request(), SECRET, clock_at(TIMESTAMP).now())
    assert isinstance(outcome, Accepted)
    assert outcome.payload["command"] == "/webhook-collect"
    assert outcome.payload["text"] == ""
    assert outcome.event_type == "slash_command"
    assert outcome.event_id == "398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"


def test_slack_interactivity_payload_field_is_json():
    inner = {"type": "block_actions", "trigger_id": "13345224609.738474920.8088930838d88f008e0"}
    from urllib.parse import urlencode

    text = urlencode({"payload": json.dumps(inner)})
    request = post(text, slack_headers(SECRET, TIMESTAMP, text), content_type=FORM)
    outcome = inspect_webhook(SLACK, CONFIG, request, SECRET, clock_at(TIMESTAMP).now())
    assert isinstance(outcome, Accepted)
    assert outcome.payload == inner
    assert outcome.event_type == "block_actions"
    assert outcome.event_id == inner["trigger_id"]


def test_slack_verified_but_malformed_json_is_400():
    text = '{"type": "event_callback",'
    outcome = inspect_webhook(
        SLACK,
        CONFIG,
        post(text, slack_headers(SECRET, TIMESTAMP, text)),
        SECRET,
        clock_at(TIMESTAMP).now(),
    )
    assert isinstance(outcome, Rejected)
    assert outcome.reason is FailureReason.MALFORMED_BODY
    assert outcome.response.status == 400

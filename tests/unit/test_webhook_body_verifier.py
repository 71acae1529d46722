"""A body verified as it arrives, in pieces, gets the verdict the whole body gets: every
byte counts (a changed, missing or added byte anywhere is a mismatch), the headers'
verdict stands whatever the body, and a provider with a check of its own is never
streamed."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, ClassVar

import pytest

from flowmill.triggers.providers import FailureReason, IncomingWebhook
from flowmill.triggers.providers.base import (
    BodyVerifier,
    ProviderConfig,
    Signing,
    Verification,
    WebhookProvider,
)
from flowmill.triggers.providers.github import GitHubProvider
from tests.webhook_support import (
    clock_at,
    hex_hmac,
    hub_signature,
    post,
    provider,
    slack_headers,
    standard_signature,
    stripe_header,
)

AT = 1_780_000_000
NOW = clock_at(AT).now()
SECRET = "it-is-a-secret-of-some-length"
WHSEC = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
BODY = json.dumps({"items": [{"id": i, "name": f"item-{i}"} for i in range(60)]}).encode()
HMAC_CONFIG = {
    "signed_payload": "v1:{timestamp}:{body}:end",  # a prefix and a suffix around the body
    "timestamp_header": "X-Ts",
}


def _signed(name: str, body: bytes) -> tuple[IncomingWebhook, str, dict[str, Any]]:
    """A request ``name`` signs over ``body``: (request, secret, config)."""
    text = body.decode()
    if name == "stripe":
        return post(body, {"Stripe-Signature": stripe_header(SECRET, AT, text)}), SECRET, {}
    if name == "slack":
        return post(body, slack_headers(SECRET, AT, body)), SECRET, {}
    if name == "standard":
        sig = standard_signature(WHSEC, "msg_1", AT, text)
        headers = {"webhook-id": "msg_1", "webhook-timestamp": str(AT), "webhook-signature": sig}
        return post(body, headers), WHSEC, {}
    if name in ("github", "meta"):
        return post(body, {"X-Hub-Signature-256": hub_signature(SECRET, body)}), SECRET, {}
    assert name == "hmac"
    sig = hex_hmac(SECRET, f"v1:{AT}:".encode() + body + b":end")
    return post(body, {"X-Signature": sig, "X-Ts": str(AT)}), SECRET, HMAC_CONFIG


def _streamed(name: str, request: IncomingWebhook, secret: str, config: Any, body: bytes,
              size: int) -> Verification:  # fmt: skip
    subject = provider(name)
    parsed = subject.parse_config(config)
    # the headers only: the body has not arrived when a streamed verification starts
    head = IncomingWebhook(request.method, request.path, request.headers, b"", request.query)
    verifier = subject.body_verifier(head, [secret], parsed, NOW)
    assert verifier is not None
    for at in range(0, len(body), size):
        verifier.update(body[at : at + size])
    return verifier.result()


PROVIDERS = ["stripe", "slack", "standard", "github", "meta", "hmac"]


@pytest.mark.parametrize("name", PROVIDERS)
@pytest.mark.parametrize("size", [1, 7, 64, 1000, len(BODY)])
def test_webhook_body_verifier_pieces_of_any_size_pass_like_the_whole(name: str, size: int):
    request, secret, config = _signed(name, BODY)
    whole = provider(name).verify(request, [secret], provider(name).parse_config(config), NOW)
    assert whole.ok, whole
    assert _streamed(name, request, secret, config, BODY, size).ok


def _tampered(body: bytes) -> list[bytes]:
    flip = [0, len(body) // 2, len(body) - 1]
    changed = [body[:i] + bytes([body[i] ^ 1]) + body[i + 1 :] for i in flip]
    return [*changed, body[:-1], body + b" ", body[1:], b""]


@pytest.mark.parametrize("name", PROVIDERS)
def test_webhook_body_verifier_any_byte_changed_missing_or_added_is_a_mismatch(name: str):
    request, secret, config = _signed(name, BODY)
    for tampered in _tampered(BODY):
        for size in (13, 4096):
            result = _streamed(name, request, secret, config, tampered, size)
            assert not result.ok
            assert result.reason is FailureReason.SIGNATURE_MISMATCH
        whole = post(tampered, list(request.headers.items_raw()), content_type=None)
        parsed = provider(name).parse_config(config)
        assert provider(name).verify(whole, [secret], parsed, NOW).reason is (
            FailureReason.SIGNATURE_MISMATCH
        )


@pytest.mark.parametrize("name", ["stripe", "slack", "standard", "hmac"])
def test_webhook_body_verifier_authentic_but_stale_is_told_apart(name: str):
    request, secret, config = _signed(name, BODY)
    subject = provider(name)
    head = IncomingWebhook(request.method, request.path, request.headers, b"", request.query)
    verifier = subject.body_verifier(head, [secret], subject.parse_config(config),
                                     clock_at(AT + 3600).now())  # fmt: skip
    assert verifier is not None
    verifier.update(BODY)
    assert verifier.result().reason is FailureReason.TIMESTAMP_OUT_OF_TOLERANCE


def test_webhook_body_verifier_headers_verdict_stands_whatever_the_body():
    subject = provider("github")
    config = subject.parse_config({})
    no_header = subject.body_verifier(post(BODY, {}), [SECRET], config, NOW)
    no_secret = subject.body_verifier(post(BODY, {"X-Hub-Signature-256": "x"}), [""], config, NOW)
    assert no_header is not None and no_secret is not None
    no_header.update(BODY)
    no_secret.update(BODY)
    assert no_header.result().reason is FailureReason.MISSING_HEADER
    assert no_secret.result().reason is FailureReason.NO_SECRET


def test_webhook_body_verifier_rotating_secrets_any_may_match():
    request, _, _ = _signed("github", BODY)
    subject = provider("github")
    head = IncomingWebhook(request.method, request.path, request.headers, b"")
    verifier = subject.body_verifier(head, ["old-secret", SECRET], subject.parse_config({}), NOW)
    assert verifier is not None
    verifier.update(BODY)
    assert verifier.result().ok


def test_webhook_body_verifier_signing_none_passes_without_a_body():
    assert BodyVerifier(None).result().ok
    failed = Verification.failed(FailureReason.MISSING_HEADER, "x")
    verifier = BodyVerifier(Signing((b"k",), (hex_hmac(b"k", b"").encode(),)), failed)
    assert verifier.result() is failed


class _OwnCheck(GitHubProvider):
    """A plugin's provider with a check of its own: it must see whole bodies."""

    name: ClassVar[str] = "own-check"

    def check(self, request, secrets, config, now: datetime) -> None:  # type: ignore[no-untyped-def]
        super().check(request, secrets, config, now)


class _OwnVerify(WebhookProvider[ProviderConfig]):
    name: ClassVar[str] = "own-verify"
    Config = ProviderConfig

    def verify(self, request, secrets, config, now):  # type: ignore[no-untyped-def]
        return Verification.passed()


def test_webhook_body_verifier_provider_with_its_own_check_is_never_streamed():
    request, _, _ = _signed("github", BODY)
    own = _OwnCheck()
    assert own.body_verifier(request, [SECRET], own.parse_config({}), NOW) is None
    assert own.verify(request, [SECRET], own.parse_config({}), NOW).ok
    tampered = post(BODY + b" ", list(request.headers.items_raw()), content_type=None)
    assert not own.verify(tampered, [SECRET], own.parse_config({}), NOW).ok
    assert _OwnVerify().body_verifier(request, [], ProviderConfig(), NOW) is None

"""The shared parts: request model, body decoding, JSON paths, registry, outcomes."""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

import pytest

from flowmill.triggers.providers import (
    DuplicateProviderError,
    FailureReason,
    Headers,
    IncomingWebhook,
    PayloadError,
    QueryParams,
    WebhookProviderRegistry,
)
from flowmill.triggers.providers.base import (
    ProviderConfig,
    Verification,
    VerificationFailed,
    WebhookProvider,
    check_timestamp,
    normalize_event_id,
)
from flowmill.triggers.providers.github import GitHubProvider
from flowmill.triggers.providers.payload import lookup, parse_body, parse_path
from flowmill.triggers.webhooks import Rejected, inspect_webhook, webhook_dedupe_key
from tests.webhook_support import clock_at, post, provider

NOW = clock_at(1_780_000_000).now()


def test_webhook_providers_base_headers_case_insensitive_and_repeats_kept():
    h = Headers([("X-Thing", "a"), ("x-thing", "b"), ("Content-Type", "text/plain")])
    assert h["X-THING"] == "a"
    assert h.get_all("x-Thing") == ("a", "b")
    assert "content-type" in h
    assert h.get("missing") is None
    assert h == Headers([("x-thing", "a"), ("X-Thing", "b"), ("content-type", "text/plain")])


def test_webhook_providers_base_query_params_from_string_keep_blank_and_repeats():
    q = QueryParams("?hub.mode=subscribe&a=&a=2")
    assert q["hub.mode"] == "subscribe"
    assert q.get_all("a") == ("", "2")


def test_webhook_providers_base_incoming_webhook_build_normalises():
    r = IncomingWebhook.build(
        "post", headers={"Content-Type": "Application/JSON; charset=utf-8"}, body="é"
    )
    assert r.method == "POST"
    assert r.body == "é".encode()
    assert r.content_type == "application/json"


@pytest.mark.parametrize(
    ("body", "content_type", "expected"),
    [
        (b'{"a": 1}', "application/json", {"a": 1}),
        (b'{"a": 1}', "application/cloudevents+json", {"a": 1}),
        (b'{"a": 1}', None, {"a": 1}),
        (b"[1,2]", "text/plain", [1, 2]),
        (b"a=1&b=&a=2", "application/x-www-form-urlencoded", {"a": ["1", "2"], "b": ""}),
        (b"hello", "text/plain", "hello"),
        (b"{not json", None, "{not json"),
        (b"\xff\xfe", "application/octet-stream", None),
        (b"  ", "application/json", None),
    ],
)
def test_webhook_providers_base_parse_body(body, content_type, expected):
    assert parse_body(post(body, {}, content_type=content_type)) == expected


@pytest.mark.parametrize("body", [b"{not json", b"\xff"])
def test_webhook_providers_base_parse_body_declared_json_must_parse(body):
    with pytest.raises(PayloadError):
        parse_body(post(body, {}, content_type="application/json"))


@pytest.mark.parametrize(
    ("path", "parts"),
    [
        ("data.id", ("data", "id")),
        ("$.entry[0].messaging[0].message.mid", ("entry", 0, "messaging", 0, "message", "mid")),
        ("entry.0.id", ("entry", 0, "id")),
        ("a b.c", ("a b", "c")),
    ],
)
def test_webhook_providers_base_parse_path(path, parts):
    assert parse_path(path) == parts


@pytest.mark.parametrize("path", ["", "$", "a..b", ".a", "a.", "a[x]", "a]"])
def test_webhook_providers_base_parse_path_refuses_bad_syntax(path):
    with pytest.raises(ValueError):  # noqa: PT011 - the message varies with the position
        parse_path(path)


def test_webhook_providers_base_lookup_paths():
    data: Any = {"entry": [{"id": "e1", "0": "zero"}], "n": 5}
    assert lookup(data, ("entry", 0, "id")) == "e1"
    assert lookup(data, ("entry", 0, 0)) == "zero"
    assert lookup(data, ("entry", 1, "id")) is None
    assert lookup(data, ("n", "x")) is None
    assert lookup(None, ("a",)) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("evt_1", "evt_1"),
        (42, "42"),
        ("  ", None),
        (True, None),
        (None, None),
        ({"a": 1}, None),
        (1.5, None),
    ],
)
def test_webhook_providers_base_normalize_event_id(value, expected):
    assert normalize_event_id(value) == expected


def test_webhook_providers_base_normalize_event_id_hashes_long_ids():
    long_id = normalize_event_id("x" * 500)
    assert long_id is not None and long_id.startswith("sha256:") and len(long_id) == 71


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("1780000000", None),
        ("-5", "malformed_timestamp"),
        ("\uff11\uff12", "malformed_timestamp"),  # fullwidth digits: isdigit() is true
        ("1e9", "malformed_timestamp"),
    ],
)
def test_webhook_providers_base_check_timestamp_parsing(value, reason):
    if reason is None:
        assert check_timestamp(value, NOW, 300) == 1_780_000_000
    else:
        with pytest.raises(VerificationFailed) as caught:
            check_timestamp(value, NOW, 300)
        assert caught.value.reason == reason


def test_webhook_providers_base_verify_requires_aware_now():
    with pytest.raises(ValueError, match="timezone-aware"):
        provider("github").verify(
            post(b"", {}), "s", provider("github").parse_config({}), datetime(2026, 1, 1)
        )


def test_webhook_providers_base_verify_single_string_secret_is_not_split_into_characters():
    # A str is a Sequence[str]; it must count as one secret, not 26 one-letter ones.
    github = provider("github")
    request = post(b"x", {"X-Hub-Signature-256": "sha256=" + "0" * 64})
    assert (
        github.verify(request, "It's a Secret to Everybody", github.parse_config({}), NOW).reason
        is FailureReason.SIGNATURE_MISMATCH
    )


def test_webhook_providers_base_registry_lists_builtin_providers():
    assert list(WebhookProviderRegistry.from_entry_points()) == [
        "github",
        "hmac",
        "meta",
        "none",
        "slack",
        "standard",
        "stripe",
    ]


def test_webhook_providers_base_registry_refuses_duplicate_names():
    registry = WebhookProviderRegistry([GitHubProvider])

    class Impostor(GitHubProvider):
        pass

    with pytest.raises(DuplicateProviderError, match="already registered"):
        registry.register(Impostor)


class _Sloppy(WebhookProvider[ProviderConfig]):
    """A provider that fails without saying why: must still be refused."""

    name = "sloppy"
    Config = ProviderConfig
    requires_secret: ClassVar[bool] = False

    def check(self, request, secrets, config, now: datetime) -> None:
        return None

    def verify(self, request, secrets, config, now):  # type: ignore[no-untyped-def]
        return Verification(False)


def test_webhook_providers_base_inspect_fails_closed_without_reason():
    outcome = inspect_webhook(_Sloppy(), ProviderConfig(), post(b"{}", {}), (), NOW)
    assert isinstance(outcome, Rejected)
    assert outcome.response.status == 401


def test_webhook_providers_base_rejections_look_the_same_to_the_caller():
    bodies = {
        Rejected(reason, "detail for us").response.body
        for reason in FailureReason
        if reason is not FailureReason.MALFORMED_BODY
    }
    assert len(bodies) == 1
    assert b"detail for us" not in bodies.pop()


def test_webhook_dedupe_key_scoped_by_trigger_and_bounded():
    assert webhook_dedupe_key("trg_1", "evt_1") == "webhook-trg_1-evt_1"
    assert webhook_dedupe_key("trg_1", "evt_1") != webhook_dedupe_key("trg_2", "evt_1")
    assert len(webhook_dedupe_key("t:with:colons" * 20, "e" * 290)) <= 300
    assert webhook_dedupe_key("t/x", "e") == webhook_dedupe_key("t/x", "e")


HOSTILE_VALUES = [
    "",
    " ",
    "é",
    "\x00",
    "v1,",
    ",",
    "=",
    "t=,v1=",
    "sha256=",
    "v0=",
    "9" * 400,
    "\ufb00=\uff11",  # a ligature and a fullwidth digit
]


@pytest.mark.parametrize("name", ["standard", "github", "stripe", "slack", "meta", "hmac"])
def test_webhook_providers_base_every_provider_answers_hostile_headers_with_a_reason(name):
    # Whatever arrives, verify() returns a Verification; it never raises.
    subject = provider(name)
    config = subject.parse_config({"verify_token": "t"} if name == "meta" else {})
    headers = [
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
        "X-Hub-Signature-256",
        "Stripe-Signature",
        "X-Slack-Signature",
        "X-Slack-Request-Timestamp",
        "X-Signature",
    ]
    for value in HOSTILE_VALUES:
        for method, query in [("POST", ""), ("GET", f"hub.mode={value}&hub.challenge={value}")]:
            request = post(b"\xff\x00{", [(h, value) for h in headers], method=method, query=query)
            result = subject.verify(
                request, ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"], config, NOW
            )
            assert not result.ok
            assert result.reason in FailureReason


def test_webhook_providers_base_a_provider_that_cannot_verify_is_refused_when_defined():
    with pytest.raises(TypeError, match="must define signing"):

        class _Mute(WebhookProvider[ProviderConfig]):
            name = "mute"
            Config = ProviderConfig

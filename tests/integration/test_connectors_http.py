"""HTTP connectors against local servers speaking each service's documented wire format,
error shapes included: Instagram (Graph API), Slack (chat.postMessage), Gmail
(users.messages.send with OAuth2), Twilio (Messages). Real vault (SQLite), real
SSRF-guarded client, credentials opened and audited as in production."""

from __future__ import annotations

import base64
import email
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from flowmill.credentials.crypto import Keyring
from flowmill.credentials.oauth2 import CredentialAccess
from flowmill.credentials.vault import CredentialVault
from flowmill.domain.errors import NodeError
from flowmill.engine.services import NodeServices
from flowmill.net.http import GuardedHttpClient, HttpSettings
from flowmill.nodes.connectors.gmail import GmailSendNode
from flowmill.nodes.connectors.instagram import InstagramSendNode
from flowmill.nodes.connectors.slack import SlackMessageNode
from flowmill.nodes.connectors.sms import SmsSendNode
from flowmill.store import migrate
from flowmill.store.database import connect
from flowmill.store.tenants import TenantStore
from flowmill.store.workflows import WorkflowRepository
from tests.node_attempt_support import run_node
from tests.stubs_support import Answer, stub_server, token_answer

TOKEN = "EAAG-page-token-0123456789abcdef"


@dataclass
class Env:
    services: NodeServices
    vault: CredentialVault


@pytest.fixture
async def env(sqlite_url: str) -> AsyncIterator[Env]:
    db = connect(sqlite_url)
    await migrate.upgrade(db)
    await TenantStore(db, WorkflowRepository(db)).ensure("acme")
    vault = CredentialVault(db, Keyring.generate())
    async with GuardedHttpClient(HttpSettings(allow_cidrs=("127.0.0.1/32",))) as http:
        services = NodeServices(
            http=http, credentials=CredentialAccess(vault, http), network=http.guard
        )
        yield Env(services, vault)
    await db.close()


async def fails(coro: Any) -> NodeError:
    with pytest.raises(NodeError) as caught:
        await coro
    return caught.value


# --- Instagram -------------------------------------------------------------------------

GRAPH_PATH = "/v21.0/17841400000/messages"


def graph_error(status: int, code: int, message: str, kind: str = "OAuthException") -> Answer:
    return Answer(
        status,
        {"error": {"message": message, "type": kind, "code": code, "fbtrace_id": "AbC"}},
    )


async def _instagram(env: Env, url: str) -> Any:
    config = {"text": "Olá {{data.name}}!", "base_url": url}
    trigger = {
        "metadata": {
            "customerId": "IGSID-42",
            "accountId": "17841400000",
            "replyCredential": "ig-page",
        }
    }
    return await run_node(
        InstagramSendNode(), config, env.services, input={"data": {"name": "Rita"}}, trigger=trigger
    )


async def test_connectors_instagram_send_posts_the_graph_message_with_token_and_recipient(
    env: Env,
) -> None:
    await env.vault.create("acme", "ig-page", "bearer", {"token": TOKEN})
    answer = Answer(200, {"recipient_id": "IGSID-42", "message_id": "aWdfZAG1"})
    with stub_server({f"POST {GRAPH_PATH}": answer}) as stub:
        out = await _instagram(env, stub.url)
        (call,) = stub.calls("POST", GRAPH_PATH)
    assert out == {"recipient_id": "IGSID-42", "message_id": "aWdfZAG1"}
    assert call.headers["authorization"] == f"Bearer {TOKEN}"
    assert call.json()["recipient"] == {"id": "IGSID-42"}
    assert call.json()["message"] == {"text": "Olá Rita!"}


@pytest.mark.parametrize(
    ("answer", "retriable"),
    [
        (graph_error(400, 190, f"Error validating access token: {TOKEN} expired"), False),
        (graph_error(400, 100, "(#100) No matching user found", "IGApiException"), False),
        (graph_error(400, 4, "(#4) Application request limit reached"), True),
        (graph_error(500, 2, "An unexpected error has occurred."), True),
    ],
)
async def test_connectors_instagram_send_graph_errors(
    env: Env, answer: Answer, retriable: bool
) -> None:
    await env.vault.create("acme", "ig-page", "bearer", {"token": TOKEN})
    with stub_server({f"POST {GRAPH_PATH}": answer}) as stub:
        error = await fails(_instagram(env, stub.url))
    assert error.retriable is retriable
    assert error.details["code"] == answer.body["error"]["code"]
    assert TOKEN not in str(error) and TOKEN not in str(error.details)


async def test_connectors_instagram_send_another_tenants_credential_is_not_found(env: Env) -> None:
    await TenantStore(env.vault.db, WorkflowRepository(env.vault.db)).ensure("globex")
    await env.vault.create("globex", "ig-page", "bearer", {"token": TOKEN})
    with stub_server({f"POST {GRAPH_PATH}": Answer(200, {})}) as stub:
        error = await fails(_instagram(env, stub.url))
        assert stub.requests == []
    assert error.type == "CredentialError" and not error.retriable


# --- Slack -----------------------------------------------------------------------------

SLACK = "/api/chat.postMessage"


async def _slack(env: Env, url: str) -> Any:
    config = {"credential": "slack", "channel": "#orders", "text": "New order", "base_url": url}
    return await run_node(SlackMessageNode(), config, env.services)


async def test_connectors_slack_message_posts_and_outputs_channel_and_ts(env: Env) -> None:
    await env.vault.create("acme", "slack", "bearer", {"token": "xoxb-1-secret-token"})
    ok = Answer(200, {"ok": True, "channel": "C123", "ts": "1700000000.000100", "message": {}})
    with stub_server({f"POST {SLACK}": ok}) as stub:
        out = await _slack(env, stub.url)
        (call,) = stub.requests
    assert out == {"channel": "C123", "ts": "1700000000.000100"}
    assert call.headers["authorization"] == "Bearer xoxb-1-secret-token"
    assert call.json() == {"channel": "#orders", "text": "New order"}


@pytest.mark.parametrize(
    ("answer", "retriable", "retry_after"),
    [
        (Answer(200, {"ok": False, "error": "channel_not_found"}), False, None),
        (Answer(200, {"ok": False, "error": "invalid_auth"}), False, None),
        (Answer(200, {"ok": False, "error": "internal_error"}), True, None),
        (Answer(429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "30"}), True, 30.0),
        (Answer(503, b"upstream down", {"Content-Type": "text/plain"}), True, None),
    ],
)
async def test_connectors_slack_message_failures(
    env: Env, answer: Answer, retriable: bool, retry_after: float | None
) -> None:
    await env.vault.create("acme", "slack", "bearer", {"token": "xoxb-1-secret-token"})
    with stub_server({f"POST {SLACK}": answer}) as stub:
        error = await fails(_slack(env, stub.url))
    assert error.retriable is retriable
    assert error.details.get("retry_after_s") == retry_after


# --- Gmail -----------------------------------------------------------------------------

GMAIL = "/gmail/v1/users/me/messages/send"


async def _gmail_credential(env: Env, token_url: str, expires_in_s: float = 3600) -> None:
    await env.vault.create(
        "acme",
        "gmail",
        "oauth2",
        {
            "grant_type": "authorization_code",
            "token_url": token_url,
            "client_id": "cid.apps.googleusercontent.com",
            "client_secret": "GOCSPX-secret",
            "access_token": "ya29.old",
            "refresh_token": "1//refresh",
            "expires_at": (datetime.now(UTC) + timedelta(seconds=expires_in_s)).isoformat(),
        },
    )


async def _gmail(env: Env, url: str) -> Any:
    config = {
        "credential": "gmail",
        "to": "rita@example.com, joao@example.com",
        "subject": "Your order",
        "text": "It is ready.",
        "base_url": url,
    }
    return await run_node(GmailSendNode(), config, env.services, node_id="mail")


async def test_connectors_gmail_send_posts_the_raw_message_with_the_access_token(env: Env) -> None:
    sent = Answer(200, {"id": "18c1", "threadId": "18c1", "labelIds": ["SENT"]})
    with stub_server({f"POST {GMAIL}": sent, "POST /token": token_answer("x")}) as stub:
        await _gmail_credential(env, f"{stub.url}/token")
        out = await _gmail(env, stub.url)
        (call,) = stub.calls("POST", GMAIL)
    assert out["id"] == "18c1" and out["thread_id"] == "18c1"
    assert call.headers["authorization"] == "Bearer ya29.old"
    msg = email.message_from_bytes(base64.urlsafe_b64decode(call.json()["raw"]))
    assert msg["To"] == "rita@example.com, joao@example.com" and msg["Subject"] == "Your order"
    assert msg["Message-ID"] == out["message_id"]
    assert "It is ready." in msg.get_payload()


async def test_connectors_gmail_send_refreshes_the_token_once_after_a_401(env: Env) -> None:
    unauthorized = Answer(
        401, {"error": {"code": 401, "message": "Invalid Credentials", "status": "UNAUTHENTICATED"}}
    )
    routes = {
        f"POST {GMAIL}": [unauthorized, Answer(200, {"id": "m2", "threadId": "t2"})],
        "POST /token": token_answer("ya29.new"),
    }
    with stub_server(routes) as stub:
        await _gmail_credential(env, f"{stub.url}/token")
        out = await _gmail(env, stub.url)
        calls = stub.calls("POST", GMAIL)
        assert [c.headers["authorization"] for c in calls] == [
            "Bearer ya29.old",
            "Bearer ya29.new",
        ]
        assert len(stub.calls("POST", "/token")) == 1
    assert out["id"] == "m2"


@pytest.mark.parametrize(
    ("answer", "retriable"),
    [
        (
            Answer(403, {"error": {"code": 403, "message": "Rate Limit Exceeded",
             "errors": [{"reason": "rateLimitExceeded"}]}}),
            True,
        ),
        (
            Answer(400, {"error": {"code": 400, "message": "Invalid To header",
             "errors": [{"reason": "invalidArgument"}], "status": "INVALID_ARGUMENT"}}),
            False,
        ),
        (Answer(503, {"error": {"code": 503, "message": "Backend Error"}}), True),
    ],
)  # fmt: skip
async def test_connectors_gmail_send_errors(env: Env, answer: Answer, retriable: bool) -> None:
    with stub_server({f"POST {GMAIL}": answer}) as stub:
        await _gmail_credential(env, f"{stub.url}/token")
        error = await fails(_gmail(env, stub.url))
    assert error.retriable is retriable


# --- Twilio ----------------------------------------------------------------------------

SID = "AC0123456789abcdef0123456789abcdef"
TWILIO = f"/2010-04-01/Accounts/{SID}/Messages.json"


async def _sms(env: Env, url: str) -> Any:
    config = {"credential": "twilio", "to": "+351910000000", "from": "+15005550006",
              "body": "Your table is ready", "base_url": url}  # fmt: skip
    return await run_node(SmsSendNode(), config, env.services)


async def test_connectors_sms_send_posts_the_form_with_basic_auth(env: Env) -> None:
    await env.vault.create("acme", "twilio", "basic", {"username": SID, "password": "authtoken123"})
    created = Answer(201, {"sid": "SM1", "status": "queued", "to": "+351910000000"})
    with stub_server({f"POST {TWILIO}": created}) as stub:
        out = await _sms(env, stub.url)
        (call,) = stub.requests
    assert out == {"sid": "SM1", "status": "queued", "to": "+351910000000"}
    expected = base64.b64encode(f"{SID}:authtoken123".encode()).decode()
    assert call.headers["authorization"] == f"Basic {expected}"
    assert call.form() == {"To": "+351910000000", "Body": "Your table is ready",
                           "From": "+15005550006"}  # fmt: skip


@pytest.mark.parametrize(
    ("answer", "retriable"),
    [
        (Answer(400, {"code": 21211, "message": "The 'To' number is not valid.",
                      "more_info": "https://www.twilio.com/docs/errors/21211", "status": 400}),
         False),
        (Answer(429, {"code": 20429, "message": "Too Many Requests", "status": 429}), True),
        (Answer(401, {"code": 20003, "message": "Authenticate", "status": 401}), False),
    ],
)  # fmt: skip
async def test_connectors_sms_send_errors(env: Env, answer: Answer, retriable: bool) -> None:
    await env.vault.create("acme", "twilio", "basic", {"username": SID, "password": "authtoken123"})
    with stub_server({f"POST {TWILIO}": answer}) as stub:
        error = await fails(_sms(env, stub.url))
    assert error.retriable is retriable
    assert error.details["code"] == answer.body["code"]
    assert "authtoken123" not in str(error)


async def test_connectors_refuse_internal_addresses_without_the_allow_list(
    env: Env,
) -> None:
    await env.vault.create("acme", "slack", "bearer", {"token": "xoxb-1"})
    async with GuardedHttpClient(HttpSettings()) as strict:
        services = NodeServices(http=strict, credentials=env.services.credentials)
        with stub_server({f"POST {SLACK}": Answer(200, {"ok": True})}) as stub:
            config = {"credential": "slack", "channel": "c", "text": "t", "base_url": stub.url}
            error = await fails(run_node(SlackMessageNode(), config, services))
            assert stub.requests == []
    assert error.type == "SsrfBlocked"

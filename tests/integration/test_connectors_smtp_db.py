"""``email_send`` against a local SMTP server (aiosmtpd: plain, STARTTLS, implicit TLS,
login, refusals) and ``database_query`` against the real PostgreSQL, SQLite and the
local MariaDB: parameters bound, rows out, hosts and files guarded."""

from __future__ import annotations

import ssl
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session

from flowmill.credentials.crypto import Keyring
from flowmill.credentials.oauth2 import CredentialAccess
from flowmill.credentials.vault import CredentialVault
from flowmill.domain.errors import NodeError
from flowmill.engine.services import ConnectorSettings, NodeServices
from flowmill.net.http import GuardedHttpClient, HttpSettings
from flowmill.nodes.connectors.database import DatabaseQueryNode
from flowmill.nodes.connectors.email import EmailSendNode
from flowmill.store import migrate
from flowmill.store.database import connect
from flowmill.store.tenants import TenantStore
from flowmill.store.workflows import WorkflowRepository
from tests.conftest import reachable, unavailable
from tests.integration.http_servers import Certs, free_port, make_certs
from tests.node_attempt_support import run_node

PASSWORD = "smtp-pass-0123456789"
MARIADB = "mysql://root@127.0.0.1:3306"


@dataclass
class Env:
    vault: CredentialVault
    http: GuardedHttpClient
    connectors: ConnectorSettings = field(default_factory=ConnectorSettings)

    def services(self, **connectors: Any) -> NodeServices:
        settings = ConnectorSettings(**{**self.connectors.__dict__, **connectors})
        return NodeServices(
            http=self.http,
            credentials=CredentialAccess(self.vault, self.http),
            network=self.http.guard,
            connectors=settings,
        )


@pytest.fixture
async def env(sqlite_url: str) -> AsyncIterator[Env]:
    db = connect(sqlite_url)
    await migrate.upgrade(db)
    await TenantStore(db, WorkflowRepository(db)).ensure("acme")
    settings = HttpSettings(allow_cidrs=("127.0.0.1/32",), allow_hosts=("localhost",))
    async with GuardedHttpClient(settings) as http:
        yield Env(CredentialVault(db, Keyring.generate()), http)
    await db.close()


async def fails(coro: Any) -> NodeError:
    with pytest.raises(NodeError) as caught:
        await coro
    return caught.value


# --- SMTP ------------------------------------------------------------------------------


class Inbox:
    """An aiosmtpd handler keeping what it accepted; refuses ``nobody@``."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []

    async def handle_RCPT(
        self, server: Any, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        if address.startswith("nobody@"):
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
        self.messages.append((str(envelope.mail_from), list(envelope.rcpt_tos), envelope.content))  # type: ignore[arg-type]
        return "250 Message accepted"


def _authenticator(
    server: Any, session: Session, envelope: Envelope, mechanism: str, data: Any
) -> AuthResult:
    ok = isinstance(data, LoginPassword) and data.password == PASSWORD.encode()
    return AuthResult(success=ok, handled=False)


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    made = make_certs(tmp_path_factory.mktemp("smtp-certs"), ["localhost"])
    if made is None:
        unavailable("openssl is needed for the TLS tests")
    return made


@pytest.fixture
def smtp_server(request: pytest.FixtureRequest, certs: Certs) -> Iterator[tuple[Inbox, int]]:
    mode = request.param
    inbox = Inbox()
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(str(certs.cert), str(certs.key))
    port = free_port()
    kwargs: dict[str, Any] = {"authenticator": _authenticator}
    if mode == "starttls":
        kwargs.update(tls_context=server_tls, require_starttls=True)
    elif mode == "tls":
        # aiosmtpd does not count implicit TLS as TLS for AUTH: it is, here
        kwargs.update(ssl_context=server_tls, auth_require_tls=False)
    else:
        kwargs.update(auth_require_tls=False)
    controller = Controller(inbox, hostname="127.0.0.1", port=port, **kwargs)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


def _mail_config(**overrides: Any) -> dict[str, Any]:
    return {
        "credential": "smtp",
        "from": "shop@example.com",
        "to": ["rita@example.com"],
        "bcc": "audit@example.com",
        "subject": "Order {{data.id}}",
        "text": "Your order {{data.id}} is ready.",
        "html": "<p>Your order <b>{{data.id}}</b> is ready.</p>",
        **overrides,
    }


@pytest.mark.parametrize("smtp_server", ["starttls", "tls", "plain"], indirect=True)
async def test_connectors_email_send_delivers_over_each_security_mode(
    env: Env, certs: Certs, smtp_server: tuple[Inbox, int], request: pytest.FixtureRequest
) -> None:
    inbox, port = smtp_server
    mode = request.node.callspec.params["smtp_server"]
    security = {"starttls": "starttls", "tls": "tls", "plain": "none"}[mode]
    await env.vault.create(
        "acme",
        "smtp",
        "smtp",
        {"host": "localhost", "port": port, "security": security,
         "username": "shop", "password": PASSWORD},
    )  # fmt: skip
    services = env.services(ssl_context=certs.client_context())
    out = await run_node(
        EmailSendNode(), _mail_config(), services, input={"data": {"id": 17}}, node_id="mail"
    )
    assert out["accepted"] == ["rita@example.com", "audit@example.com"] and out["refused"] == []
    ((sender, recipients, raw),) = inbox.messages
    assert sender == "shop@example.com"
    assert recipients == ["rita@example.com", "audit@example.com"]
    msg = message_from_bytes(raw)
    assert msg["Subject"] == "Order 17" and msg["Bcc"] is None
    assert msg["Message-ID"] == out["message_id"]
    again = await run_node(
        EmailSendNode(), _mail_config(), services, input={"data": {"id": 17}}, node_id="mail",
        attempt=2,
    )  # fmt: skip
    assert again["message_id"] == out["message_id"]  # a repeated send carries the same id


@pytest.mark.parametrize("smtp_server", ["starttls"], indirect=True)
async def test_connectors_email_send_refusals_are_not_retried(
    env: Env, certs: Certs, smtp_server: tuple[Inbox, int]
) -> None:
    _, port = smtp_server
    account = {"host": "localhost", "port": port, "username": "shop", "password": "wrong-one"}
    await env.vault.create("acme", "smtp", "smtp", account)
    services = env.services(ssl_context=certs.client_context())
    error = await fails(run_node(EmailSendNode(), _mail_config(), services))
    assert not error.retriable and "login" in error.message
    await env.vault.update(
        "acme", (await env.vault.get("acme", "smtp")).id, data={"password": PASSWORD}
    )  # type: ignore[union-attr]
    error = await fails(
        run_node(EmailSendNode(), _mail_config(to="nobody@example.com", bcc=None), services)
    )
    assert not error.retriable and error.details["code"] == 550


@pytest.mark.parametrize("smtp_server", ["starttls"], indirect=True)
async def test_connectors_email_send_certificate_must_verify(
    env: Env, smtp_server: tuple[Inbox, int]
) -> None:
    inbox, port = smtp_server
    await env.vault.create("acme", "smtp", "smtp", {"host": "localhost", "port": port})
    error = await fails(run_node(EmailSendNode(), _mail_config(), env.services()))
    assert error.type == "TlsError" and inbox.messages == []


async def test_connectors_email_send_host_is_ssrf_guarded(env: Env) -> None:
    await env.vault.create("acme", "smtp", "smtp", {"host": "127.0.0.1", "port": free_port()})
    async with GuardedHttpClient(HttpSettings()) as strict:
        services = NodeServices(
            http=strict, credentials=CredentialAccess(env.vault, strict), network=strict.guard
        )
        error = await fails(run_node(EmailSendNode(), _mail_config(), services))
    assert error.type == "SsrfBlocked"


# --- databases -------------------------------------------------------------------------

CREATE = "CREATE TABLE orders (id INTEGER PRIMARY KEY, customer VARCHAR(100), total DECIMAL(8,2))"
SNEAKY = "x'); DROP TABLE orders; --"


async def _query(env: Env, sql: str, params: dict[str, Any] | None = None, **settings: Any) -> Any:
    config = {"credential": "db", "sql": sql, "params": params or {}}
    return await run_node(DatabaseQueryNode(), config, env.services(**settings))


async def _round_trip(env: Env, **settings: Any) -> None:
    await _query(env, CREATE, **settings)
    for i, name in enumerate(["Rita", SNEAKY], start=1):
        out = await _query(
            env,
            "INSERT INTO orders (id, customer, total) VALUES (:id, :name, :total)",
            {"id": i, "name": name, "total": "12.50"},
            **settings,
        )
        assert out["row_count"] == 1 and out["rows"] == []
    got = await _query(
        env, "SELECT id, customer, total FROM orders WHERE id >= :min ORDER BY id", {"min": 1},
        **settings,
    )  # fmt: skip
    # exact decimals come out as text; SQLite has none and answers a number
    assert [{**r, "total": float(r["total"])} for r in got["rows"]] == [
        {"id": 1, "customer": "Rita", "total": 12.5},
        {"id": 2, "customer": SNEAKY, "total": 12.5},
    ]
    capped = await _query(env, "SELECT id FROM orders ORDER BY id", max_rows=1, **settings)
    assert capped["rows"] == [{"id": 1}] and capped["truncated"] is True
    error = await fails(_query(env, "SELECT nope FROM orders", **settings))
    assert error.type == "QueryError" and not error.retriable


async def test_connectors_database_query_postgresql(env: Env, postgres_url: str) -> None:
    await env.vault.create("acme", "db", "database", {"url": postgres_url})
    await _round_trip(env)


async def test_connectors_database_query_sqlite_inside_the_allowed_directory(
    env: Env, tmp_path: Path
) -> None:
    allowed = tmp_path / "tenant-dbs"
    allowed.mkdir()
    await env.vault.create("acme", "db", "database", {"url": f"sqlite:///{allowed / 'shop.db'}"})
    await _round_trip(env, sqlite_dirs=(str(allowed),))
    outside = {"url": f"sqlite:///{tmp_path / 'flowmill.db'}"}  # the server's own database
    await env.vault.rotate_one("acme", (await env.vault.get("acme", "db")).id, outside)  # type: ignore[union-attr]
    error = await fails(_query(env, "SELECT 1", sqlite_dirs=(str(allowed),)))
    assert error.type == "CredentialError" and "outside" in error.message
    error = await fails(_query(env, "SELECT 1"))
    assert "not enabled" in error.message


@pytest.fixture
async def mariadb_url() -> AsyncIterator[str]:
    if not reachable(MARIADB):
        unavailable(f"MariaDB is not reachable at {MARIADB}")
    import aiomysql

    name = f"flowmill_t_{uuid.uuid4().hex[:10]}"
    conn = await aiomysql.connect(host="127.0.0.1", port=3306, user="root")
    async with conn.cursor() as cur:
        await cur.execute(f"CREATE DATABASE `{name}`")
    try:
        yield f"{MARIADB}/{name}"
    finally:
        async with conn.cursor() as cur:
            await cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        conn.close()


async def test_connectors_database_query_mariadb(env: Env, mariadb_url: str) -> None:
    await env.vault.create("acme", "db", "database", {"url": mariadb_url})
    await _round_trip(env)


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("postgresql://u:p@db.example/x?host=127.0.0.1", "not allowed: host"),
        ("mysql://u@db.example/x?unix_socket=/run/mysqld.sock", "not allowed: unix_socket"),
        ("oracle://u@db.example/x", "unsupported database"),
        ("postgresql:///x", "no host"),
    ],
)
async def test_connectors_database_query_refuses_urls_that_would_escape(
    env: Env, url: str, words: str
) -> None:
    await env.vault.create("acme", "db", "database", {"url": url})
    error = await fails(_query(env, "SELECT 1"))
    assert words in error.message and not error.retriable


async def test_connectors_database_query_host_is_ssrf_guarded(env: Env, postgres_url: str) -> None:
    await env.vault.create("acme", "db", "database", {"url": postgres_url})
    async with GuardedHttpClient(HttpSettings()) as strict:
        services = NodeServices(
            http=strict, credentials=CredentialAccess(env.vault, strict), network=strict.guard
        )
        config = {"credential": "db", "sql": "SELECT 1"}
        error = await fails(run_node(DatabaseQueryNode(), config, services))
    assert error.type == "SsrfBlocked"

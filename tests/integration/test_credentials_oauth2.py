"""OAuth2 tokens against a real token endpoint on loopback, on SQLite and PostgreSQL:
refreshed before expiry and after a 401, sealed back, one refresh for many callers (in
one process and across two)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from flowmill.credentials.crypto import Keyring
from flowmill.credentials.oauth2 import CredentialAccess, OAuth2Error
from flowmill.credentials.vault import CredentialVault
from flowmill.net.http import GuardedHttpClient, HttpSettings
from flowmill.store import migrate
from flowmill.store.database import Database, connect
from flowmill.store.tables import event_store
from flowmill.store.tenants import TenantStore
from flowmill.store.workflows import WorkflowRepository
from tests.stubs_support import Answer, Stub, stub_server, token_answer

REFRESH = "rt_first_0123456789abcdef"
CLIENT_SECRET = "cs_oauth_secret_0123456789"


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = connect(database_url)
    await migrate.upgrade(database)
    await TenantStore(database, WorkflowRepository(database)).ensure("acme")
    try:
        yield database
    finally:
        await database.close()


@pytest.fixture
async def http() -> AsyncIterator[GuardedHttpClient]:
    async with GuardedHttpClient(HttpSettings(allow_cidrs=("127.0.0.1/32",))) as client:
        yield client


@pytest.fixture
def vault(db: Database) -> CredentialVault:
    return CredentialVault(db, Keyring.generate())


def _grant(stub: Stub, *, expires_in_s: float, access: str = "at_old") -> dict[str, Any]:
    return {
        "grant_type": "authorization_code",
        "token_url": f"{stub.url}/oauth/token",
        "client_id": "app",
        "client_secret": CLIENT_SECRET,
        "access_token": access,
        "refresh_token": REFRESH,
        "expires_at": (datetime.now(UTC) + timedelta(seconds=expires_in_s)).isoformat(),
    }


async def test_oauth2_token_refreshed_before_expiry_and_sealed_back(
    vault: CredentialVault, http: GuardedHttpClient
) -> None:
    with stub_server({"POST /oauth/token": token_answer("at_new", 3600, "rt_rotated")}) as stub:
        await vault.create("acme", "gmail", "oauth2", _grant(stub, expires_in_s=30))
        access = CredentialAccess(vault, http)
        assert await access.access_token("acme", "gmail") == "at_new"
        (call,) = stub.calls("POST", "/oauth/token")
        assert call.form() == {
            "grant_type": "refresh_token",
            "refresh_token": REFRESH,
            "client_id": "app",
            "client_secret": CLIENT_SECRET,
        }
        # sealed back: the next caller gets it without a refresh, rotated token kept
        assert await access.access_token("acme", "gmail") == "at_new"
        assert len(stub.calls("POST", "/oauth/token")) == 1
        _, data = await vault.resolve("acme", "gmail")
        assert data["refresh_token"] == "rt_rotated" and data["access_token"] == "at_new"
        assert datetime.fromisoformat(data["expires_at"]) > datetime.now(UTC) + timedelta(
            minutes=50
        )


async def test_oauth2_token_refreshed_after_a_401_unless_already_refreshed(
    vault: CredentialVault, http: GuardedHttpClient
) -> None:
    with stub_server({"POST /oauth/token": token_answer("at_after_401")}) as stub:
        await vault.create("acme", "crm", "oauth2", _grant(stub, expires_in_s=3600))
        access = CredentialAccess(vault, http)
        assert await access.access_token("acme", "crm") == "at_old"  # still valid
        assert not stub.requests
        assert await access.access_token("acme", "crm", rejected="at_old") == "at_after_401"
        # a late caller who also saw the old token refused gets the new one, no refresh
        assert await access.access_token("acme", "crm", rejected="at_old") == "at_after_401"
        assert len(stub.calls("POST", "/oauth/token")) == 1


async def test_oauth2_ten_steps_at_once_make_one_refresh(
    vault: CredentialVault, http: GuardedHttpClient, db: Database
) -> None:
    slow = token_answer("at_shared")
    slow.delay_s = 0.3  # the refresh is under way while the others arrive
    with stub_server({"POST /oauth/token": slow}) as stub:
        await vault.create("acme", "api", "oauth2", _grant(stub, expires_in_s=-5))
        # two "processes": separate services sharing only the database
        first, second = CredentialAccess(vault, http), CredentialAccess(vault, http)
        tokens = await asyncio.gather(
            *((first if i % 2 else second).access_token("acme", "api") for i in range(10))
        )
        assert tokens == ["at_shared"] * 10
        assert len(stub.calls("POST", "/oauth/token")) == 1
        assert first.refreshes + second.refreshes == 1
    rows = await db.read(
        lambda c: c.execute(
            sa.select(event_store.c.event_type).where(
                event_store.c.event_type == "credential.refreshed"
            )
        ).all()
    )
    assert len(rows) == 1


async def test_oauth2_a_refresh_finished_between_read_and_claim_is_not_repeated(
    vault: CredentialVault, http: GuardedHttpClient, db: Database
) -> None:
    """Process B reads the expired token; process A refreshes and releases its claim
    before B claims: B's claim succeeds, but its token is stale. B must read again, not
    refresh a second time (a rotating provider would revoke the grant)."""
    with stub_server({"POST /oauth/token": token_answer("at_new")}) as stub:
        await vault.create("acme", "api", "oauth2", _grant(stub, expires_in_s=-5))
        first = CredentialAccess(vault, http)

        class LateClaim:
            """B's vault: A's whole refresh happens just before B's claim."""

            def __getattr__(self, name: str) -> Any:
                return getattr(vault, name)

            async def take_refresh_lease(self, *args: Any) -> bool:
                assert await first.access_token("acme", "api") == "at_new"
                return await vault.take_refresh_lease(*args)

        second = CredentialAccess(LateClaim(), http)  # type: ignore[arg-type]
        assert await second.access_token("acme", "api") == "at_new"
        assert len(stub.calls("POST", "/oauth/token")) == 1
        assert (first.refreshes, second.refreshes) == (1, 0)


async def test_oauth2_client_credentials_with_basic_client_auth(
    vault: CredentialVault, http: GuardedHttpClient
) -> None:
    with stub_server({"POST /token": token_answer("at_cc", 60)}) as stub:
        data = {
            "grant_type": "client_credentials",
            "token_url": f"{stub.url}/token",
            "client_id": "svc",
            "client_secret": CLIENT_SECRET,
            "scope": "messages.send",
            "client_auth": "basic",
        }
        await vault.create("acme", "svc", "oauth2", data)
        access = CredentialAccess(vault, http)
        assert await access.access_token("acme", "svc") == "at_cc"
        (call,) = stub.requests
        assert call.form() == {"grant_type": "client_credentials", "scope": "messages.send"}
        assert call.headers["authorization"].startswith("Basic ")
        # expires in 60 s, inside the 60 s margin: the next use refreshes again
        assert await access.access_token("acme", "svc") == "at_cc"
        assert len(stub.requests) == 2


async def test_oauth2_refused_refresh_is_not_retriable_and_releases_the_claim(
    vault: CredentialVault, http: GuardedHttpClient
) -> None:
    refused = Answer(400, {"error": "invalid_grant", "error_description": "revoked"})
    with stub_server({"POST /oauth/token": [refused, token_answer("at_ok")]}) as stub:
        await vault.create("acme", "gone", "oauth2", _grant(stub, expires_in_s=-1))
        access = CredentialAccess(vault, http)
        with pytest.raises(OAuth2Error) as caught:
            await access.access_token("acme", "gone")
        assert not caught.value.retriable and "invalid_grant" in str(caught.value)
        assert REFRESH not in str(caught.value) and CLIENT_SECRET not in str(caught.value)
        assert await access.access_token("acme", "gone") == "at_ok"  # claim was released


async def test_oauth2_token_url_is_ssrf_guarded(vault: CredentialVault) -> None:
    async with GuardedHttpClient(HttpSettings()) as strict:
        with stub_server({"POST /oauth/token": token_answer("x")}) as stub:
            await vault.create("acme", "internal", "oauth2", _grant(stub, expires_in_s=-1))
            with pytest.raises(OAuth2Error) as caught:
                await CredentialAccess(vault, strict).access_token("acme", "internal")
            assert not caught.value.retriable
            assert stub.requests == []


async def test_oauth2_other_tenant_cannot_get_a_token(
    vault: CredentialVault, http: GuardedHttpClient, db: Database
) -> None:
    await TenantStore(db, WorkflowRepository(db)).ensure("globex")
    with stub_server({"POST /oauth/token": token_answer("x")}) as stub:
        await vault.create("acme", "mine", "oauth2", _grant(stub, expires_in_s=3600))
        with pytest.raises(LookupError):
            await CredentialAccess(vault, http).access_token("globex", "mine")


async def test_oauth2_ten_steps_of_one_execution_share_one_refresh(database_url: str) -> None:
    """Ten ``gmail_send`` nodes fanned out from one trigger, run by the engine at once
    with an expired token: one refresh, ten sends with the new token."""
    from tests.api_support import open_api

    slow = token_answer("ya29.fresh")
    slow.delay_s = 0.3
    sent = Answer(200, {"id": "m", "threadId": "t"})
    with stub_server(
        {"POST /oauth/token": slow, "POST /gmail/v1/users/me/messages/send": sent}
    ) as stub:
        async with open_api(
            database_url,
            sandbox_enabled=False,
            http_allow_cidrs=["127.0.0.1/32"],
            secret_keys="k1:QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE=",
        ) as api:
            data = _grant(stub, expires_in_s=-10)
            r = await api.a.post(
                "/api/credentials", json={"name": "gmail", "type": "oauth2", "data": data}
            )
            assert r.status_code == 201, r.text
            mailers = [
                {"id": f"mail{i}", "type": "gmail_send", "config": {
                    "credential": "gmail", "to": f"c{i}@example.com", "subject": "hi",
                    "text": "hello", "base_url": stub.url}}
                for i in range(10)
            ]  # fmt: skip
            doc = {
                "name": "fan-out",
                "nodes": [{"id": "t", "type": "trigger"}, *mailers],
                "edges": [{"source": "t", "target": m["id"]} for m in mailers],
            }
            done = await api.run(await api.workflow(doc), {}, wait=30)
            assert done["status"] == "succeeded", done
        sends = stub.calls("POST", "/gmail/v1/users/me/messages/send")
        assert len(sends) == 10
        assert {s.headers["authorization"] for s in sends} == {"Bearer ya29.fresh"}
        assert len(stub.calls("POST", "/oauth/token")) == 1

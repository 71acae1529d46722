"""``/api/credentials`` on SQLite and PostgreSQL: create, list, get (hint only),
update, rotate, delete; tenant scoping; every decryption recorded; secrets never in an
answer or an event."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from flowmill.credentials.use import CredentialUse
from flowmill.store.tables import credentials, event_store
from tests.api_support import Api, open_api

SECRET = "sk_live_0123456789abcdefWXYZ"
CLIENT_SECRET = "cs_9876543210fedcbaQRST"


@pytest.fixture
async def api(database_url: str) -> Any:
    async with open_api(
        database_url, worker=False, secret_keys=_keys(), sandbox_enabled=False
    ) as a:
        yield a


def _keys() -> str:
    return "k1:" + "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE="


async def _events(api: Api) -> list[dict[str, Any]]:
    rows = await api.runtime.db.read(
        lambda c: c.execute(sa.select(event_store).order_by(event_store.c.sequence_number)).all()
    )
    return [{**r.payload, "type": r.event_type, "tenant": r.tenant_id} for r in rows]


async def test_api_credentials_lifecycle_shows_hints_never_secrets(api: Api) -> None:
    r = await api.a.post(
        "/api/credentials", json={"name": "openai", "type": "bearer", "data": {"token": SECRET}}
    )
    assert r.status_code == 201, r.text
    made = r.json()
    assert made["hint"] == "…WXYZ" and made["details"] == {} and made["type"] == "bearer"
    cid = made["id"]
    answers = [r.text]
    for path in ("/api/credentials", f"/api/credentials/{cid}"):
        got = await api.a.get(path)
        assert got.status_code == 200
        answers.append(got.text)
    r = await api.a.patch(f"/api/credentials/{cid}", json={"name": "openai-prod"})
    assert r.status_code == 200 and r.json()["name"] == "openai-prod"
    answers.append(r.text)
    new_secret = "sk_live_new_0000000000ABCD"
    r = await api.a.post(f"/api/credentials/{cid}/rotate", json={"data": {"token": new_secret}})
    assert r.status_code == 200 and r.json()["hint"] == "…ABCD"
    answers.append(r.text)
    kind, data = await api.runtime.credentials.resolve("tenant-a", "openai-prod")
    assert (kind, data) == ("bearer", {"token": new_secret})
    r = await api.a.post(f"/api/credentials/{cid}/rotate")  # re-seal only
    assert r.status_code == 200
    assert (await api.runtime.credentials.resolve("tenant-a", cid))[1] == {"token": new_secret}
    assert (await api.a.delete(f"/api/credentials/{cid}")).status_code == 204
    assert (await api.a.get(f"/api/credentials/{cid}")).status_code == 404
    events = await _events(api)
    for text in [*answers, str(events)]:
        assert SECRET not in text and new_secret not in text
    kinds = [e["type"] for e in events if e["type"].startswith("credential.")]
    assert kinds[0] == "credential.created" and kinds[-1] == "credential.deleted"
    assert "credential.rotated" in kinds and "credential.updated" in kinds


async def test_api_credentials_oauth2_details_shown_and_partial_update_keeps_secret(
    api: Api,
) -> None:
    data = {
        "grant_type": "client_credentials",
        "token_url": "https://auth.example.com/token",
        "client_id": "app-1",
        "client_secret": CLIENT_SECRET,
        "scope": "read",
    }
    r = await api.a.post("/api/credentials", json={"name": "crm", "type": "oauth2", "data": data})
    assert r.status_code == 201, r.text
    shown = r.json()
    assert shown["details"]["client_id"] == "app-1" and shown["details"]["scope"] == "read"
    assert "client_secret" not in shown["details"] and CLIENT_SECRET not in r.text
    r = await api.a.patch(f"/api/credentials/{shown['id']}", json={"data": {"scope": "write"}})
    assert r.status_code == 200 and r.json()["details"]["scope"] == "write"
    _, opened = await api.runtime.credentials.resolve("tenant-a", "crm")
    assert opened["client_secret"] == CLIENT_SECRET and opened["scope"] == "write"


async def test_api_credentials_another_tenants_credential_is_a_404(api: Api) -> None:
    r = await api.a.post(
        "/api/credentials", json={"name": "mine", "type": "bearer", "data": {"token": SECRET}}
    )
    cid = r.json()["id"]
    assert (await api.b.get(f"/api/credentials/{cid}")).status_code == 404
    assert (await api.b.patch(f"/api/credentials/{cid}", json={"name": "x"})).status_code == 404
    assert (await api.b.post(f"/api/credentials/{cid}/rotate")).status_code == 404
    assert (await api.b.delete(f"/api/credentials/{cid}")).status_code == 404
    assert (await api.b.get("/api/credentials")).json()["items"] == []
    with pytest.raises(LookupError):
        await api.runtime.credentials.resolve("tenant-b", cid)
    with pytest.raises(LookupError):
        await api.runtime.credentials.resolve("tenant-b", "mine")
    assert (await api.a.get(f"/api/credentials/{cid}")).status_code == 200


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "x", "type": "basic", "data": {"username": "u"}}, "body.data.password"),
        ({"name": "x", "type": "nope", "data": {}}, "body.type"),
        ({"name": "", "type": "bearer", "data": {"token": "t"}}, "body.name"),
        (
            {
                "name": "x",
                "type": "oauth2",
                "data": {
                    "grant_type": "client_credentials",
                    "token_url": "not a url",
                    "client_id": "c",
                    "client_secret": "s",
                },
            },
            "body.data.token_url",
        ),
        ({"name": "x", "type": "smtp", "data": {"host": "h", "port": 0}}, "body.data.port"),
    ],
)
async def test_api_credentials_bad_input_names_the_field_and_writes_nothing(
    api: Api, body: dict[str, Any], field: str
) -> None:
    r = await api.a.post("/api/credentials", json=body)
    assert r.status_code == 422, r.text
    assert field in [d["field"] for d in r.json()["error"]["details"]]
    rows = await api.runtime.db.read(lambda c: c.execute(sa.select(credentials)).all())
    assert rows == []


async def test_api_credentials_duplicate_name_is_a_conflict(api: Api) -> None:
    body = {"name": "dup", "type": "bearer", "data": {"token": SECRET}}
    assert (await api.a.post("/api/credentials", json=body)).status_code == 201
    r = await api.a.post("/api/credentials", json=body)
    assert r.status_code == 409 and r.json()["error"]["details"][0]["field"] == "body.name"
    # the same name in another tenant is another credential
    assert (await api.b.post("/api/credentials", json=body)).status_code == 201


async def test_api_credentials_every_decryption_is_recorded_with_who(api: Api) -> None:
    r = await api.a.post(
        "/api/credentials", json={"name": "k", "type": "bearer", "data": {"token": SECRET}}
    )
    cid = r.json()["id"]
    use = CredentialUse("node", execution_id="ex-1", node_id="reply", attempt=2)
    await api.runtime.credentials.resolve("tenant-a", "k", use)
    await api.runtime.credentials.resolve("tenant-a", cid, CredentialUse("webhook", trigger_id="t"))
    used = [e for e in await _events(api) if e["type"] == "credential.used"]
    assert [
        (e["tenant"], e["credential_id"], e["actor"], e.get("execution_id"), e.get("node_id"))
        for e in used
    ] == [("tenant-a", cid, "node", "ex-1", "reply"), ("tenant-a", cid, "webhook", None, None)]
    assert used[0]["attempt"] == 2 and used[1]["trigger_id"] == "t"
    assert SECRET not in str(used)

"""Authentication: API keys (hashed, revocable) and JWT (pinned algorithm, iss/aud/exp,
JWKS), on the app over SQLite."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import jwt
import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from flowmill.api.app import build_context
from flowmill.config import Settings
from flowmill.runtime import open_runtime
from flowmill.store.tables import api_keys
from flowmill.testing import StubServer
from tests.api_support import Api, client, open_api

SECRET = "s" * 40
ISS, AUD = "https://issuer.test", "flowmill-api"


pytestmark = pytest.mark.api_settings(worker=False)


def claims(**over: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"iss": ISS, "aud": AUD, "exp": now + 300, "sub": "user-1", "tenant_id": "org-1"} | over


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hand_signed(header: dict[str, Any], payload: dict[str, Any], key: bytes | None) -> str:
    """A token built by hand, to forge what PyJWT refuses to produce."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    if key is None:
        return signing_input + "."
    sig = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(sig)}"


async def test_auth_missing_or_garbage_credentials_are_401(api: Api) -> None:
    r = await api.anon.get("/api/workflows")
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == "Bearer"
    assert r.json()["error"]["code"] == "unauthorized"
    for token in ("nonsense", "fm_00000000_" + "0" * 48, "a.b.c"):
        r = await api.anon.get("/api/workflows", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 401, token
    r = await api.anon.get("/api/workflows", headers={"Authorization": "Basic dXNlcjpwdw=="})
    assert r.status_code == 401
    assert (await api.anon.get("/health")).status_code == 200  # liveness needs no key


async def test_auth_keys_are_stored_hashed_shown_once_and_revocable(api: Api) -> None:
    r = await api.a.post("/api/keys", json={"name": "ci"})
    assert r.status_code == 201
    created = r.json()
    key = created["key"]
    assert key.startswith(created["prefix"] + "_")
    listed = (await api.a.get("/api/keys")).json()["items"]
    assert created["id"] in [k["id"] for k in listed]
    assert all("key" not in k for k in listed)

    rows = await api.runtime.db.read(lambda c: c.execute(sa.select(api_keys)).all())
    stored = next(r for r in rows if str(r.id) == created["id"])
    assert stored.key_hash == hashlib.sha256(key.encode()).hexdigest()
    assert all(key not in str(tuple(r)) for r in rows)

    async with client(api.app, key) as c:
        me = (await c.get("/api/tenant")).json()
        assert (me["id"], me["auth"]) == ("tenant-a", "api_key")
        revoked = await api.a.delete(f"/api/keys/{created['id']}")
        assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
        assert (await c.get("/api/tenant")).status_code == 401
    # Another tenant's key cannot be revoked (or seen) by id.
    other = (await api.b.post("/api/keys", json={})).json()
    assert (await api.a.delete(f"/api/keys/{other['id']}")).status_code == 404
    assert other["id"] not in [k["id"] for k in (await api.a.get("/api/keys")).json()["items"]]


async def test_auth_key_last_used_is_recorded(api: Api) -> None:
    await api.a.get("/api/tenant")
    listed = (await api.a.get("/api/keys")).json()["items"]
    assert any(k["last_used_at"] for k in listed)


# --- JWT --------------------------------------------------------------------------------


@pytest.fixture
async def hs_api(sqlite_url: str) -> AsyncIterator[Api]:
    async with open_api(
        sqlite_url,
        worker=False,
        jwt_algorithm="HS256",
        jwt_secret=SECRET,
        jwt_issuer=ISS,
        jwt_audience=AUD,
    ) as api:
        yield api


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_api_auth_jwt_hs256_token_names_the_tenant(hs_api: Api) -> None:
    token = jwt.encode(claims(), SECRET, algorithm="HS256")
    r = await hs_api.anon.get("/api/tenant", headers=bearer(token))
    assert r.status_code == 200, r.text
    assert (r.json()["id"], r.json()["auth"]) == ("org-1", "jwt")
    made = await hs_api.anon.post("/api/workflows", headers=bearer(token), json={"name": "Mine"})
    assert made.status_code == 201
    # Tenant A's key does not see org-1's workflow.
    assert (await hs_api.a.get(f"/api/workflows/{made.json()['id']}")).status_code == 404


@pytest.mark.parametrize(
    ("why", "token"),
    [
        ("expired", lambda: jwt.encode(claims(exp=int(time.time()) - 120), SECRET, "HS256")),
        ("wrong issuer", lambda: jwt.encode(claims(iss="https://evil.test"), SECRET, "HS256")),
        ("wrong audience", lambda: jwt.encode(claims(aud="other"), SECRET, "HS256")),
        ("no exp", lambda: jwt.encode({k: v for k, v in claims().items() if k != "exp"}, SECRET)),
        ("wrong secret", lambda: jwt.encode(claims(), "x" * 40, "HS256")),
        ("no tenant", lambda: jwt.encode(claims(tenant_id=None), SECRET, "HS256")),
        ("bad tenant", lambda: jwt.encode(claims(tenant_id="../x"), SECRET, "HS256")),
        ("alg none", lambda: hand_signed({"alg": "none", "typ": "JWT"}, claims(), None)),
        ("not yet valid", lambda: jwt.encode(claims(nbf=int(time.time()) + 600), SECRET)),
    ],
)
async def test_api_auth_jwt_rejects(hs_api: Api, why: str, token: Any) -> None:
    r = await hs_api.anon.get("/api/tenant", headers=bearer(token()))
    assert r.status_code == 401, why
    assert r.json()["error"]["code"] == "unauthorized"


async def test_api_auth_jwt_is_refused_when_not_configured(api: Api) -> None:
    token = jwt.encode(claims(), SECRET, algorithm="HS256")
    assert (await api.anon.get("/api/tenant", headers=bearer(token))).status_code == 401


async def test_api_auth_jwt_settings_must_pin_issuer_and_audience(sqlite_url: str) -> None:
    settings = Settings(database_url=sqlite_url, jwt_algorithm="HS256", jwt_secret=SECRET)
    async with open_runtime(settings) as rt:
        with pytest.raises(ValueError, match="ISSUER"):
            build_context(rt)


# --- RS256 and JWKS ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def jwks_url(rsa_key: rsa.RSAPrivateKey) -> Iterator[str]:
    """A local HTTP server answering with the key set (JWKS format)."""
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(rsa_key.public_key()))
    keys = {"keys": [{**jwk, "kid": "k1", "use": "sig", "alg": "RS256"}]}
    with StubServer({"GET /.well-known/jwks.json": (200, keys)}, name="jwks") as server:
        yield server.url("/.well-known/jwks.json")


@pytest.fixture
async def rs_api(sqlite_url: str, jwks_url: str) -> AsyncIterator[Api]:
    async with open_api(
        sqlite_url,
        worker=False,
        jwt_algorithm="RS256",
        jwt_jwks_url=jwks_url,
        jwt_issuer=ISS,
        jwt_audience=AUD,
    ) as api:
        yield api


async def test_api_auth_jwt_rs256_verified_with_the_jwks(
    rs_api: Api, rsa_key: rsa.RSAPrivateKey
) -> None:
    token = jwt.encode(claims(), rsa_key, algorithm="RS256", headers={"kid": "k1"})
    r = await rs_api.anon.get("/api/tenant", headers=bearer(token))
    assert r.status_code == 200, r.text
    assert r.json()["id"] == "org-1"
    unknown_kid = jwt.encode(claims(), rsa_key, algorithm="RS256", headers={"kid": "k9"})
    assert (await rs_api.anon.get("/api/tenant", headers=bearer(unknown_kid))).status_code == 401
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = jwt.encode(claims(), other_key, algorithm="RS256", headers={"kid": "k1"})
    assert (await rs_api.anon.get("/api/tenant", headers=bearer(forged))).status_code == 401


async def test_api_auth_jwt_rs256_refuses_hs256_signed_with_the_public_key(
    rs_api: Api, rsa_key: rsa.RSAPrivateKey
) -> None:
    public_pem = rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    forged = hand_signed({"alg": "HS256", "typ": "JWT", "kid": "k1"}, claims(), public_pem)
    r = await rs_api.anon.get("/api/tenant", headers=bearer(forged))
    assert r.status_code == 401
    none = hand_signed({"alg": "none", "kid": "k1"}, claims(), None)
    assert (await rs_api.anon.get("/api/tenant", headers=bearer(none))).status_code == 401


async def test_api_auth_jwt_rs256_with_a_configured_public_key(
    sqlite_url: str, rsa_key: rsa.RSAPrivateKey
) -> None:
    public_pem = rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    async with open_api(
        sqlite_url,
        worker=False,
        jwt_algorithm="RS256",
        jwt_public_key=public_pem.decode(),
        jwt_issuer=ISS,
        jwt_audience=AUD,
    ) as api:
        token = jwt.encode(claims(tenant_id="org-2"), rsa_key, algorithm="RS256")
        r = await api.anon.get("/api/tenant", headers=bearer(token))
        assert r.json()["id"] == "org-2"
        forged = hand_signed({"alg": "HS256"}, claims(), public_pem)
        assert (await api.anon.get("/api/tenant", headers=bearer(forged))).status_code == 401

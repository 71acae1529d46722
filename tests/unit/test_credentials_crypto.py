"""Sealing credentials: what must not open, opens nothing."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

import pytest

from flowmill.credentials import kinds
from flowmill.credentials.crypto import CredentialError, Keyring, load_or_create_keyring

AAD = b"tenant-a\x00cred-1"


def test_credentials_seal_then_open() -> None:
    ring = Keyring.generate("k1")
    kid, blob = ring.seal(b"s3cret", AAD)
    assert kid == "k1"
    assert b"s3cret" not in blob
    assert ring.open(kid, blob, AAD) == b"s3cret"


def test_credentials_same_secret_seals_differently_each_time() -> None:
    ring = Keyring.generate()
    assert ring.seal(b"x", AAD)[1] != ring.seal(b"x", AAD)[1]


@pytest.mark.parametrize("flip", [0, 5, 12, 20, -1])
def test_credentials_tampered_blob_does_not_open(flip: int) -> None:
    ring = Keyring.generate("k1")
    _, blob = ring.seal(b"s3cret-value", AAD)
    damaged = bytearray(blob)
    damaged[flip] ^= 0x01
    with pytest.raises(CredentialError, match="does not open"):
        ring.open("k1", bytes(damaged), AAD)


@pytest.mark.parametrize("aad", [b"tenant-b\x00cred-1", b"tenant-a\x00cred-2", b""])
def test_credentials_blob_moved_to_another_tenant_or_row_does_not_open(aad: bytes) -> None:
    ring = Keyring.generate("k1")
    _, blob = ring.seal(b"s3cret", AAD)
    with pytest.raises(CredentialError):
        ring.open("k1", blob, aad)


def test_credentials_wrong_key_and_unknown_key_id() -> None:
    _, blob = Keyring.generate("k1").seal(b"s3cret", AAD)
    with pytest.raises(CredentialError):
        Keyring.generate("k1").open("k1", blob, AAD)  # same id, another key
    with pytest.raises(CredentialError, match="not configured"):
        Keyring.generate("k2").open("k1", blob, AAD)
    with pytest.raises(CredentialError, match="truncated"):
        Keyring.generate("k1").open("k1", blob[:10], AAD)


def test_credentials_rotation_ring_opens_old_and_seals_new() -> None:
    old = Keyring.generate("old")
    kid, blob = old.seal(b"v", AAD)
    new_key = base64.b64encode(os.urandom(32)).decode()
    rotated = Keyring.parse(f"new:{new_key},{old.spec()}")
    assert rotated.active == "new"
    assert rotated.open(kid, blob, AAD) == b"v"
    assert rotated.seal(b"v", AAD)[0] == "new"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "no keys"),
        ("nokey", "<key id>:<base64 key>"),
        ("k1:not base64!!", "not valid base64"),
        ("k1:" + base64.b64encode(b"short").decode(), "must be 32 bytes"),
    ],
)
def test_credentials_bad_key_spec(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as e:
        Keyring.parse(spec)
    assert "not base64!!" not in str(e.value)  # key material never echoed


def test_credentials_embedded_key_file_is_private_and_stable(tmp_path: Path) -> None:
    path = tmp_path / "home" / "secret.key"
    first = load_or_create_keyring(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_keyring(path).spec() == first.spec()


def test_credentials_kind_errors_name_fields_not_values() -> None:
    with pytest.raises(ValueError, match="token") as e:
        kinds.validate("bearer", {"tokn": "hunter2-secret"})
    assert "hunter2-secret" not in str(e.value)
    with pytest.raises(ValueError, match="unknown credential type"):
        kinds.validate("telepathy", {})


@pytest.mark.parametrize(
    ("kind", "data", "headers", "query"),
    [
        ("bearer", {"token": "t"}, {"Authorization": "Bearer t"}, {}),
        ("basic", {"username": "u", "password": "p"}, {"Authorization": "Basic dTpw"}, {}),
        ("header", {"name": "X-Api-Key", "value": "v"}, {"X-Api-Key": "v"}, {}),
        ("query", {"name": "api_key", "value": "v"}, {}, {"api_key": "v"}),
    ],
)
def test_credentials_apply_to_request(
    kind: str, data: dict[str, str], headers: dict[str, str], query: dict[str, str]
) -> None:
    h: dict[str, str] = {}
    q: dict[str, object] = {}
    kinds.apply_to_request(kind, data, h, q)
    assert (h, q) == (headers, query)

"""The credential vault on real databases: sealed at rest, tenant-scoped, rotatable."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from flowmill.credentials.crypto import CredentialError, Keyring
from flowmill.credentials.vault import CredentialVault, DuplicateCredentialError
from flowmill.store import migrate
from flowmill.store.database import connect
from flowmill.store.tables import credentials, tenants
from flowmill.store.workflows import WorkflowRepository

SECRET = "sk_live_do-not-leak-4242"


@pytest.fixture
async def vault(database_url: str):  # type: ignore[no-untyped-def]
    db = connect(database_url)
    await migrate.upgrade(db)
    repo = WorkflowRepository(db)
    for t in ("acme", "globex"):
        await repo.ensure_tenant(t)
    yield CredentialVault(db, Keyring.generate("k1"))
    await db.close()


async def test_credentials_vault_round_trip_without_showing_the_secret(
    vault: CredentialVault,
) -> None:
    info = await vault.create("acme", "stripe", "bearer", {"token": SECRET})
    assert SECRET not in repr(info)
    assert [c.name for c in await vault.list("acme")] == ["stripe"]
    assert await vault.resolve("acme", "stripe") == ("bearer", {"token": SECRET})


async def test_credentials_vault_is_tenant_scoped(vault: CredentialVault) -> None:
    info = await vault.create("acme", "stripe", "bearer", {"token": SECRET})
    with pytest.raises(CredentialError, match="no credential named"):
        await vault.resolve("globex", "stripe")
    assert await vault.get("globex", info.id) is None
    assert await vault.list("globex") == []
    assert await vault.delete("globex", info.id) is False
    assert await vault.replace("globex", info.id, {"token": "hijack"}) is None
    assert await vault.resolve("acme", "stripe") == ("bearer", {"token": SECRET})


async def test_credentials_vault_rejects_duplicates_and_bad_data(vault: CredentialVault) -> None:
    await vault.create("acme", "x", "header", {"name": "X-Key", "value": "v"})
    with pytest.raises(DuplicateCredentialError):
        await vault.create("acme", "x", "bearer", {"token": "t"})
    with pytest.raises(ValueError, match="password"):
        await vault.create("acme", "y", "basic", {"username": "u"})
    await vault.create("globex", "x", "bearer", {"token": "t"})  # names are per tenant


async def test_credentials_ciphertext_copied_into_another_tenant_row_does_not_open(
    vault: CredentialVault,
) -> None:
    await vault.create("acme", "stripe", "bearer", {"token": SECRET})
    await vault.create("globex", "stripe", "bearer", {"token": "globex-own"})
    ct = credentials

    def _steal(conn: sa.Connection) -> None:
        blob, kid = conn.execute(
            sa.select(ct.c.ciphertext, ct.c.key_id).where(ct.c.tenant_id == "acme")
        ).one()
        conn.execute(
            ct.update().where(ct.c.tenant_id == "globex").values(ciphertext=blob, key_id=kid)
        )

    await vault.db.write(_steal)
    with pytest.raises(CredentialError, match="does not open"):
        await vault.resolve("globex", "stripe")


async def test_credentials_rotation_reseals_everything(vault: CredentialVault) -> None:
    for i in range(3):
        await vault.create("acme", f"c{i}", "bearer", {"token": f"t{i}"})
    new = Keyring.generate("k2")
    assert vault.keyring is not None
    vault.keyring = Keyring({**new.keys, **vault.keyring.keys}, "k2")
    assert await vault.rotate() == 3
    assert await vault.rotate() == 0
    vault.keyring = new  # the old key can go now
    assert [await vault.resolve("acme", f"c{i}") for i in range(3)] == [
        ("bearer", {"token": f"t{i}"}) for i in range(3)
    ]


async def test_credentials_no_key_is_a_clear_error(vault: CredentialVault) -> None:
    vault.keyring = None
    with pytest.raises(CredentialError, match="FLOWMILL_SECRET_KEYS"):
        await vault.create("acme", "x", "bearer", {"token": "t"})


async def test_credentials_secret_never_written_in_clear(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    db = connect(url)
    await migrate.upgrade(db)
    await db.write(
        lambda c: c.execute(
            tenants.insert().values(id="acme", name="acme", created_at=sa.func.now(), event_seq=0)
        )
    )
    vault = CredentialVault(db, Keyring.generate())
    await vault.create("acme", "stripe", "bearer", {"token": SECRET})
    await db.close()
    for f in tmp_path.glob("db.sqlite*"):
        assert SECRET.encode() not in f.read_bytes(), f.name

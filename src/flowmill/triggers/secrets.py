"""Webhook secrets at rest: sealed with the credentials keyring (AES-256-GCM).

A trigger may hold several secrets while one is rotated (any may verify). The sealed
blob records the id of the key that sealed it and is bound to its tenant and trigger
row, so copied into another row it no longer opens.
"""

from __future__ import annotations

from collections.abc import Sequence

from flowmill import jsonutil
from flowmill.credentials.crypto import CredentialError, Keyring

_MAGIC = b"fmts1\x00"


def _aad(tenant_id: str, trigger_id: str) -> bytes:
    return f"flowmill-trigger-secret\x00{tenant_id}\x00{trigger_id}".encode()


def seal_secrets(
    keyring: Keyring | None, tenant_id: str, trigger_id: str, secrets: Sequence[str]
) -> bytes:
    """Seal ``secrets`` (newest first) for one trigger row.

    Raises:
        CredentialError: No keyring is configured.
    """
    if keyring is None:
        raise CredentialError(
            "no encryption key is configured: set FLOWMILL_SECRET_KEYS to store webhook "
            "secrets (see docs/credentials.md)"
        )
    kid, blob = keyring.seal(jsonutil.dumpb(list(secrets)), _aad(tenant_id, trigger_id))
    return _MAGIC + kid.encode() + b"\x00" + blob


def open_secrets(
    keyring: Keyring | None, tenant_id: str, trigger_id: str, sealed: bytes | None
) -> tuple[str, ...]:
    """The secrets of a trigger row (empty when it has none).

    Raises:
        CredentialError: No keyring, an unknown key, or altered data.
    """
    if not sealed:
        return ()
    if keyring is None:
        raise CredentialError("no encryption key is configured to open webhook secrets")
    if not sealed.startswith(_MAGIC) or b"\x00" not in sealed[len(_MAGIC) :]:
        raise CredentialError("the sealed webhook secret is not in a known format")
    kid, _, blob = sealed[len(_MAGIC) :].partition(b"\x00")
    values = jsonutil.loads(keyring.open(kid.decode(), blob, _aad(tenant_id, trigger_id)))
    return tuple(str(v) for v in values)


def secret_hint(secret: str) -> str:
    """What may be shown of a secret: its last four characters."""
    return "…" + secret[-4:] if len(secret) >= 12 else "…"

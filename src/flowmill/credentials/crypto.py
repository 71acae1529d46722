"""AES-256-GCM with named keys, so keys can rotate without a flag day.

Each ciphertext records the id of the key that sealed it. The first key of the ring
seals new secrets; every key of the ring opens old ones, until ``rotate`` has re-sealed
them all and the old key can be dropped. The associated data binds a ciphertext to its
tenant and row: copied into another tenant's row, it no longer opens.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from flowmill.domain.errors import FlowmillError

NONCE_BYTES = 12
KEY_BYTES = 32


class CredentialError(FlowmillError):
    """A secret cannot be sealed or opened (no key, wrong key, tampered data)."""


@dataclass(frozen=True)
class Keyring:
    """Named AES-256 keys; ``active`` seals, all of them open.

    Attributes:
        keys: Key id → 32 random bytes.
        active: Id of the key that seals new secrets.
    """

    keys: Mapping[str, bytes]
    active: str

    def __post_init__(self) -> None:
        if self.active not in self.keys:
            raise ValueError(f"active key {self.active!r} is not in the ring")
        for kid, key in self.keys.items():
            if len(key) != KEY_BYTES:
                raise ValueError(f"key {kid!r} must be {KEY_BYTES} bytes, not {len(key)}")

    @classmethod
    def parse(cls, spec: str) -> Keyring:
        """Read ``"kid1:base64key,kid2:base64key"``; the first key is the active one.

        Raises:
            ValueError: Malformed spec or key (the message never includes key material).
        """
        keys: dict[str, bytes] = {}
        order: list[str] = []
        for part in (p.strip() for p in spec.split(",")):
            if not part:
                continue
            kid, sep, encoded = part.partition(":")
            if not sep or not kid.strip():
                raise ValueError("each key must be written as <key id>:<base64 key>")
            try:
                key = base64.b64decode(encoded.strip(), validate=True)
            except (binascii.Error, ValueError) as e:
                raise ValueError(f"key {kid.strip()!r} is not valid base64") from e
            keys[kid.strip()] = key
            order.append(kid.strip())
        if not order:
            raise ValueError("no keys given")
        return cls(keys, order[0])

    @classmethod
    def generate(cls, key_id: str | None = None) -> Keyring:
        """A ring with one new random key."""
        kid = key_id or f"k{secrets.token_hex(4)}"
        return cls({kid: AESGCM.generate_key(bit_length=256)}, kid)

    def spec(self) -> str:
        """The ring written back as ``"kid:base64,..."`` (active first)."""
        order = [self.active] + [k for k in self.keys if k != self.active]
        return ",".join(f"{k}:{base64.b64encode(self.keys[k]).decode()}" for k in order)

    def seal(self, plaintext: bytes, aad: bytes) -> tuple[str, bytes]:
        """Encrypt with the active key. Returns (key id, nonce + ciphertext + tag)."""
        nonce = os.urandom(NONCE_BYTES)
        blob = nonce + AESGCM(self.keys[self.active]).encrypt(nonce, plaintext, aad)
        return self.active, blob

    def open(self, key_id: str, blob: bytes, aad: bytes) -> bytes:
        """Decrypt what :meth:`seal` produced.

        Raises:
            CredentialError: Unknown key id, or the data or its binding was altered.
        """
        key = self.keys.get(key_id)
        if key is None:
            raise CredentialError(f"the key {key_id!r} that sealed this secret is not configured")
        if len(blob) <= NONCE_BYTES:
            raise CredentialError("the sealed secret is truncated")
        try:
            return AESGCM(key).decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], aad)
        except InvalidTag as e:
            raise CredentialError("the sealed secret does not open: altered, or moved") from e


def load_or_create_keyring(path: Path) -> Keyring:
    """The embedded default: a key file beside the database, made on first use (0600)."""
    if path.exists():
        return Keyring.parse(path.read_text().strip())
    ring = Keyring.generate()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(ring.spec() + "\n")
    return ring

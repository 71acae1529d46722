"""Who opens a credential: recorded with each decryption (a leaf module, so the engine's
ports can name it without importing the vault)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class CredentialUse:
    """Who opens a credential; recorded with the decryption as ``credential.used``.

    Attributes:
        actor: ``node``, ``webhook`` (verifying a delivery), ``api``...
        execution_id: The execution of the node, if any.
        node_id: The node.
        attempt: The node's attempt.
        trigger_id: The webhook trigger verifying a delivery.
    """

    actor: str
    execution_id: str | None = None
    node_id: str | None = None
    attempt: int | None = None
    trigger_id: str | None = None

    def payload(self) -> dict[str, Any]:
        """The event payload fields (unset ones left out)."""
        return {k: v for k, v in self.__dict__.items() if v is not None}

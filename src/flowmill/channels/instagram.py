"""What an Instagram messaging webhook says, read from its payload. Pure.

Meta delivers ``{"object": "instagram", "entry": [{"id": <the business account id>,
"time", "messaging": [{"sender": {"id": <the customer's IGSID>}, "recipient": {"id":
<the account>}, "timestamp", "message": {"mid", "text", "is_echo"?}}]}]}``. An echo
(``is_echo``) is the business's own message, sent back to it: answering it would make
the agent talk to itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

KIND = "instagram"


@dataclass(frozen=True)
class InstagramMessage:
    """The first messaging event of a delivery."""

    account_id: str
    customer_id: str
    text: str | None
    message_id: str | None
    echo: bool


def _first(value: Any) -> Any:
    return value[0] if isinstance(value, list) and value else None


def read(payload: Any) -> InstagramMessage | None:
    """The message of an Instagram webhook payload; ``None`` if it is not one."""
    if not isinstance(payload, dict) or payload.get("object") != KIND:
        return None
    entry = _first(payload.get("entry"))
    if not isinstance(entry, dict):
        return None
    event = _first(entry.get("messaging"))
    if not isinstance(event, dict):
        return None
    sender = (event.get("sender") or {}).get("id")
    recipient = (event.get("recipient") or {}).get("id")
    account = entry.get("id") or recipient
    if sender is None or account is None:
        return None
    raw = event.get("message")
    message: dict[str, Any] = raw if isinstance(raw, dict) else {}
    text = message.get("text")
    return InstagramMessage(
        account_id=str(account),
        customer_id=str(sender),
        text=text if isinstance(text, str) else None,
        message_id=str(message["mid"]) if message.get("mid") is not None else None,
        echo=bool(message.get("is_echo")),
    )

"""What the mail connectors share: recipient lists, a stable Message-ID, the message."""

from __future__ import annotations

import hashlib
from email.message import EmailMessage
from typing import Any

from flowmill.engine.templates import stringify
from flowmill.nodes.base import NodeContext
from flowmill.nodes.connectors._service import config_error

MAX_ADDRESSES = 100


def addresses(value: Any) -> list[str]:
    """Addresses from an address, a comma-separated list or a list.

    Raises:
        NodeError: One is not an address (or holds a line break).
    """
    if value is None:
        return []
    items = value if isinstance(value, list) else stringify(value).split(",")
    out = [stringify(v).strip() for v in items if stringify(v).strip()]
    for a in out:
        if "@" not in a or any(c in a for c in "\r\n\x00"):
            raise config_error(f"{a[:100]!r} is not an e-mail address")
    if len(out) > MAX_ADDRESSES:
        raise config_error(f"more than {MAX_ADDRESSES} addresses")
    return out


def message_id(ctx: NodeContext) -> str:
    """The same ``Message-ID`` for every attempt of this node in this execution."""
    digest = hashlib.sha256(f"{ctx.execution_id}:{ctx.node.id}".encode()).hexdigest()[:32]
    return f"<{digest}@flowmill>"


def build_message(ctx: NodeContext, r: dict[str, Any]) -> EmailMessage:
    """The RFC 5322 message of a rendered config: ``to``, ``cc``, ``bcc``, ``from``,
    ``reply_to``, ``subject``, ``text`` and/or ``html``."""
    msg = EmailMessage()
    to = addresses(r.get("to"))
    if not to:
        raise config_error("to rendered to no address")
    msg["To"] = ", ".join(to)
    for header, key in (("Cc", "cc"), ("Bcc", "bcc")):
        found = addresses(r.get(key))
        if found:
            msg[header] = ", ".join(found)
    if r.get("from"):
        msg["From"] = stringify(r["from"])
    if r.get("reply_to"):
        msg["Reply-To"] = stringify(r["reply_to"])
    msg["Subject"] = stringify(r.get("subject") or "")
    msg["Message-ID"] = message_id(ctx)
    text, html = r.get("text"), r.get("html")
    if text is None and html is None:
        raise config_error("give text or html")
    msg.set_content(stringify(text) if text is not None else "")
    if html is not None:
        msg.add_alternative(stringify(html), subtype="html")
    return msg

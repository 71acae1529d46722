"""The reference to a blob, as it travels in place of the value.

``{"$flowmill_blob": {"id", "size", "media_type", "kind", "url"}}``: a one-key object, so
a path that stops at it (``{{trigger.data}}``) passes the reference on unchanged, and a
path that goes into it finds no key and asks for the blob to be loaded. ``kind`` says how
the bytes decode when touched: ``json``, ``text``, or ``base64`` (binary, as the HTTP
node outputs bytes). ``url`` is the API's download link, so an API answer shows a link and
a size instead of megabytes. A reference names its blob only within the execution's own
tenant: every lookup filters on the tenant, so a forged reference finds nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

BLOB_KEY = "$flowmill_blob"
#: Values larger than this (bytes, encoded) are stored as blobs: the setting's default.
DEFAULT_THRESHOLD_BYTES = 256 * 1024
#: Default of the size caps (webhook body, HTTP response, node output): high, because
#: what passes the threshold is streamed to the blob store, not held in memory.
DEFAULT_CAP_BYTES = 512 * 1024 * 1024
Kind = Literal["json", "text", "base64"]
KINDS: tuple[str, ...] = ("json", "text", "base64")


@dataclass(frozen=True)
class BlobRef:
    """A stored blob, as nodes and API clients see it.

    Attributes:
        id: The blob's id (tenant-scoped).
        size: Its length in bytes.
        media_type: The media type it arrived with.
        kind: How it decodes when touched.
    """

    id: str
    size: int
    media_type: str
    kind: Kind

    @property
    def url(self) -> str:
        """The API path that downloads it."""
        return f"/api/blobs/{self.id}"

    def to_value(self) -> dict[str, Any]:
        """The reference as a JSON value."""
        return {
            BLOB_KEY: {
                "id": self.id,
                "size": self.size,
                "media_type": self.media_type,
                "kind": self.kind,
                "url": self.url,
            }
        }

    @classmethod
    def from_value(cls, value: Any) -> BlobRef | None:
        """The reference ``value`` holds, or ``None`` when it is no reference."""
        if not is_blob(value):
            return None
        inner = value[BLOB_KEY]
        kind = inner.get("kind")
        if not (
            isinstance(inner.get("id"), str)
            and isinstance(inner.get("size"), int)
            and kind in KINDS
        ):
            return None
        return cls(inner["id"], inner["size"], str(inner.get("media_type") or ""), kind)


def is_blob(value: Any) -> bool:
    """Whether ``value`` is a blob reference (cheap: one type and one key check)."""
    return type(value) is dict and len(value) == 1 and type(value.get(BLOB_KEY)) is dict


def kind_of(media_type: str) -> Kind:
    """How bytes of ``media_type`` decode: JSON, text, or binary (base64)."""
    media = media_type.split(";", 1)[0].strip().lower()
    if media == "application/json" or media.endswith("+json"):
        return "json"
    if media.startswith("text/") or media in ("application/xml", "application/javascript"):
        return "text"
    return "base64"

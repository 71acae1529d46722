"""Reading a verified body: JSON or form decoding, and dotted paths into the result.

Only called after verification passed, so a malformed body is an authentic sender's
mistake (recorded, answered 400), never a reason to doubt the signature.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl

from flowmill import jsonutil
from flowmill.domain.errors import Invalid
from flowmill.triggers.providers.request import IncomingWebhook

FORM_TYPE = "application/x-www-form-urlencoded"
_MISSING = object()
_SEGMENT = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


class PayloadError(Invalid):
    """The body does not decode as its content type says."""


def is_json_type(content_type: str) -> bool:
    """``application/json`` and the ``+json`` family (``application/cloudevents+json``)."""
    return content_type == "application/json" or content_type.endswith("+json")


def parse_form(body: bytes) -> dict[str, Any]:
    """Decode a form body; a repeated field becomes a list, blank values are kept.

    Raises:
        PayloadError: The body is not UTF-8.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as e:
        raise PayloadError("form body is not UTF-8") from e
    out: dict[str, Any] = {}
    for key, value in parse_qsl(text, keep_blank_values=True):
        if key in out:
            previous = out[key]
            out[key] = [*previous, value] if isinstance(previous, list) else [previous, value]
        else:
            out[key] = value
    return out


def parse_body(request: IncomingWebhook) -> Any:
    """The body as data: JSON, a form as a dict, other text as ``str``.

    A body without a JSON or form content type is tried as JSON when it looks like
    JSON (some senders omit the header), else given as text; bytes that are not
    UTF-8 give ``None`` (the raw body is recorded anyway).

    Raises:
        PayloadError: The content type says JSON or form and the body is not.
    """
    body = request.body
    if not body.strip():
        return None
    content_type = request.content_type
    if is_json_type(content_type):
        try:
            return jsonutil.loads(body)
        except ValueError as e:
            raise PayloadError("body is not valid JSON") from e
    if content_type == FORM_TYPE:
        return parse_form(body)
    if body.lstrip()[:1] in (b"{", b"["):
        try:
            return jsonutil.loads(body)
        except ValueError:
            pass
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return None


def parse_path(path: str) -> tuple[str | int, ...]:
    """Split ``a.b[0].c`` (or ``$.a.b.0.c``) into keys and list indexes.

    Raises:
        ValueError: Empty path or characters outside the syntax.
    """
    text = path.strip()
    if text.startswith("$"):
        text = text[1:].lstrip(".")
    if not text:
        raise ValueError("a JSON path needs at least one key, e.g. 'data.id'")
    parts: list[str | int] = []
    position = 0
    while position < len(text):
        if text[position] == "." and parts and position + 1 < len(text):
            position += 1
        match = _SEGMENT.match(text, position)
        if match is None:
            raise ValueError(f"cannot read JSON path {path!r} at character {position + 1}")
        key, index = match.groups()
        parts.append(int(index) if index is not None else int(key) if key.isdigit() else key)
        position = match.end()
    return tuple(parts)


def lookup(data: Any, path: tuple[str | int, ...]) -> Any:
    """The value at ``path`` in ``data``, or ``None`` when any step is missing.

    A numeric step indexes a list and also matches a string key of the same digits
    in an object (``"0"``), since paths are written by hand.
    """
    current = data
    for step in path:
        if isinstance(current, dict):
            current = current.get(step if isinstance(step, str) else str(step), _MISSING)
        elif isinstance(current, list) and isinstance(step, int) and 0 <= step < len(current):
            current = current[step]
        else:
            return None
        if current is _MISSING:
            return None
    return current

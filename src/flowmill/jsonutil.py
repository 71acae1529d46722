"""JSON through one helper (orjson), so every layer encodes the same way."""

from __future__ import annotations

from typing import Any

import orjson

_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY


def _default(obj: Any) -> Any:
    if isinstance(obj, set | frozenset | tuple):
        return list(obj)
    if isinstance(obj, bytes):
        return obj.decode("utf-8", "replace")
    raise TypeError(f"{type(obj).__name__} is not JSON serializable")


def dumps(obj: Any) -> str:
    """Encode to a JSON string."""
    return orjson.dumps(obj, default=_default, option=_OPTIONS).decode()


def dumpb(obj: Any, *, indent: bool = False) -> bytes:
    """Encode to JSON bytes."""
    opts = _OPTIONS | (orjson.OPT_INDENT_2 if indent else 0)
    return orjson.dumps(obj, default=_default, option=opts)


def loads(data: str | bytes) -> Any:
    """Decode JSON text or bytes."""
    return orjson.loads(data)

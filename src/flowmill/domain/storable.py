"""JSON that can be stored: the checks behind every value Flowmill accepts from outside.

JSON parses into values the database or the encoder refuse: NUL characters
(PostgreSQL text and JSONB), lone surrogates (not UTF-8), integers beyond 64 bits
(orjson), NaN and infinities (not JSON), and nesting deep enough to exhaust a
recursive encoder. The API refuses them at the edge (``api.jsonvalue``: a 422 naming
the field instead of a 500 on write); webhook dispatch refuses such a payload for good.
Pure, so every layer may use it.
"""

from __future__ import annotations

import math
from typing import Any

from flowmill.domain.errors import UnstorableJson

MAX_DEPTH = 64
_INT_MIN = -(2**63)
_INT_MAX = 2**64 - 1


def check_text(value: str) -> str:
    """Refuse text that cannot be stored: NUL characters and lone surrogates."""
    if "\x00" in value:
        raise UnstorableJson("must not contain NUL (\\u0000) characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise UnstorableJson("must be valid Unicode (no lone surrogates)") from None
    return value


def check_json(value: Any) -> Any:
    """Walk a parsed JSON value (iteratively) and raise :class:`UnstorableJson` (a
    ``ValueError``, which pydantic reports as a validation error) at the first part
    that could not be stored."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            check_text(item)
        elif isinstance(item, bool) or item is None:
            continue
        elif isinstance(item, int):
            if not _INT_MIN <= item <= _INT_MAX:
                raise UnstorableJson("integers must fit in 64 bits")
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise UnstorableJson("numbers must be finite")
        elif isinstance(item, dict | list):
            if depth > MAX_DEPTH:
                raise UnstorableJson(f"must not nest deeper than {MAX_DEPTH} levels")
            if isinstance(item, dict):
                for k, v in item.items():
                    if not isinstance(k, str):
                        raise UnstorableJson("object keys must be strings")
                    check_text(k)
                    stack.append((v, depth + 1))
            else:
                stack.extend((v, depth + 1) for v in item)
        else:
            raise UnstorableJson(f"unsupported JSON value of type {type(item).__name__}")
    return value

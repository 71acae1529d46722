"""Arbitrary JSON accepted from clients, checked so that storing it cannot fail later.

JSON parses into values the database or the encoder refuse: NUL characters
(PostgreSQL text and JSONB), lone surrogates (not UTF-8), integers beyond 64 bits
(orjson), NaN and infinities (not JSON), and nesting deep enough to exhaust a
recursive encoder. Refusing them at the edge turns what would be a 500 on write into a
422 naming the field.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator

from flowmill.domain.storable import check_json, check_text

JsonValue = Annotated[Any, AfterValidator(check_json)]
"""Any JSON value, checked by :func:`check_json`."""

JsonObject = Annotated[dict[str, Any], AfterValidator(check_json)]
"""A JSON object, checked by :func:`check_json`."""

SafeStr = Annotated[str, AfterValidator(check_text)]
"""Text that can be stored (no NUL, no lone surrogates)."""

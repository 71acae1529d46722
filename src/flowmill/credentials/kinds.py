"""Credential types: what a secret holds, and how an HTTP request uses it."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError


class _Kind(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Header(_Kind):
    """Any header, e.g. ``X-Api-Key``."""

    name: str = Field(min_length=1, max_length=200)
    value: str = Field(min_length=1)


class Bearer(_Kind):
    """``Authorization: Bearer <token>``."""

    token: str = Field(min_length=1)


class Basic(_Kind):
    """``Authorization: Basic <user:password>``."""

    username: str
    password: str


class Query(_Kind):
    """A query parameter, e.g. ``?api_key=...``."""

    name: str = Field(min_length=1, max_length=200)
    value: str = Field(min_length=1)


KINDS: dict[str, type[_Kind]] = {
    "header": Header,
    "bearer": Bearer,
    "basic": Basic,
    "query": Query,
}


def validate(kind: str, data: Mapping[str, Any]) -> dict[str, Any]:
    """Check ``data`` against its kind's schema.

    Raises:
        ValueError: Unknown kind, or data that does not fit it (fields named, values not).
    """
    schema = KINDS.get(kind)
    if schema is None:
        raise ValueError(f"unknown credential type {kind!r}; known: {', '.join(KINDS)}")
    try:
        return schema.model_validate(dict(data)).model_dump()
    except ValidationError as e:
        fields = ", ".join(".".join(str(p) for p in err["loc"]) or kind for err in e.errors())
        raise ValueError(f"invalid {kind} credential: check {fields}") from None


def apply_to_request(
    kind: str, data: Mapping[str, Any], headers: dict[str, str], query: dict[str, Any]
) -> None:
    """Add the credential to an outgoing request's headers or query, in place."""
    if kind == "header":
        headers[data["name"]] = data["value"]
    elif kind == "bearer":
        headers["Authorization"] = f"Bearer {data['token']}"
    elif kind == "basic":
        raw = f"{data['username']}:{data['password']}".encode()
        headers["Authorization"] = f"Basic {base64.b64encode(raw).decode()}"
    elif kind == "query":
        query[data["name"]] = data["value"]
    else:
        raise ValueError(f"credential type {kind!r} cannot be used by an HTTP request")

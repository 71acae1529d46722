"""Credential types: what a secret holds, what may be shown of it, how a request uses it.

Every kind declares which of its fields are secret. Only the others are ever shown
(:func:`public_view`), plus a hint (:func:`hint`) of the main secret: its last four
characters when it is long enough that they give nothing away.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar, Literal

from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field, ValidationError, model_validator


class _Kind(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    #: Fields never shown; the first is the one the hint is made of.
    secret_fields: ClassVar[tuple[str, ...]] = ()


class Header(_Kind):
    """Any header, e.g. ``X-Api-Key``."""

    secret_fields = ("value",)
    name: str = Field(min_length=1, max_length=200)
    value: str = Field(min_length=1)


class Bearer(_Kind):
    """An API key or bearer token: ``Authorization: Bearer <token>``."""

    secret_fields = ("token",)
    token: str = Field(min_length=1)


class Basic(_Kind):
    """``Authorization: Basic <user:password>``."""

    secret_fields = ("password",)
    username: str
    password: str


class Query(_Kind):
    """A query parameter, e.g. ``?api_key=...``."""

    secret_fields = ("value",)
    name: str = Field(min_length=1, max_length=200)
    value: str = Field(min_length=1)


class Secret(_Kind):
    """A shared secret that signs or verifies (a webhook's app secret)."""

    secret_fields = ("secret",)
    secret: str = Field(min_length=1)


class OAuth2(_Kind):
    """OAuth 2.0: client credentials, or tokens of an authorization-code grant.

    The node gets a fresh access token: refreshed before ``expires_at`` and after a 401,
    the new token sealed back into this credential (:mod:`flowmill.credentials.oauth2`).
    """

    secret_fields = ("access_token", "client_secret", "refresh_token")
    grant_type: Literal["client_credentials", "authorization_code"]
    token_url: AnyHttpUrl
    client_id: str = Field(min_length=1)
    client_secret: str | None = Field(None, min_length=1)
    scope: str | None = None
    audience: str | None = None
    # client_secret_post: id and secret in the form; client_secret_basic: in Basic auth
    client_auth: Literal["body", "basic"] = "body"
    access_token: str | None = Field(None, min_length=1)
    refresh_token: str | None = Field(None, min_length=1)
    expires_at: datetime | None = None

    @model_validator(mode="after")
    def _usable(self) -> OAuth2:
        if self.grant_type == "client_credentials" and not self.client_secret:
            raise ValueError("client_secret is required for client_credentials")
        if self.grant_type == "authorization_code" and not (
            self.refresh_token or self.access_token
        ):
            raise ValueError("give the refresh_token (and access_token) of the grant")
        if self.expires_at is not None and self.expires_at.tzinfo is None:
            raise ValueError("expires_at needs a time zone (e.g. 2026-01-31T12:00:00Z)")
        return self


class DatabaseUrl(_Kind):
    """A database connection URL (``postgresql://``, ``mysql://``, ``sqlite:///``)."""

    secret_fields = ("url",)
    url: str = Field(min_length=1, max_length=2000)


class Smtp(_Kind):
    """An SMTP server account."""

    secret_fields = ("password",)
    host: str = Field(min_length=1, max_length=255)
    port: int = Field(587, ge=1, le=65535)
    # starttls: plain connection upgraded (port 587); tls: TLS from the start (465)
    security: Literal["starttls", "tls", "none"] = "starttls"
    username: str | None = None
    password: str | None = None


CredentialKind = Literal[
    "header", "bearer", "basic", "query", "secret", "oauth2", "database", "smtp"
]
"""The name of a credential type: a key of :data:`KINDS` (a test keeps the two equal)."""

KINDS: dict[str, type[_Kind]] = {
    "header": Header,
    "bearer": Bearer,
    "basic": Basic,
    "query": Query,
    "secret": Secret,
    "oauth2": OAuth2,
    "database": DatabaseUrl,
    "smtp": Smtp,
}
HINT_MIN_LENGTH = 12


def validate(kind: str, data: Mapping[str, Any]) -> dict[str, Any]:
    """Check ``data`` against its kind's schema.

    Raises:
        ValueError: Unknown kind, or data that does not fit it (fields named, values not).
    """
    schema = KINDS.get(kind)
    if schema is None:
        raise ValueError(f"unknown credential type {kind!r}; known: {', '.join(KINDS)}")
    try:
        return schema.model_validate(dict(data)).model_dump(mode="json", exclude_none=True)
    except ValidationError as e:
        # not chained: pydantic's message would quote the (secret) values
        fields = ", ".join(invalid_fields(kind, e))
        raise ValueError(f"invalid {kind} credential: check {fields}") from None


def invalid_fields(kind: str, error: ValidationError) -> list[str]:
    """The fields a validation error is about (never their values)."""
    return [".".join(str(p) for p in err["loc"]) or kind for err in error.errors()]


def problems(kind: str, data: Mapping[str, Any]) -> list[dict[str, str]]:
    """What is wrong with ``data`` for ``kind``: ``{"field", "message", "code"}`` items
    naming fields under ``data`` (messages never quote the values)."""
    schema = KINDS.get(kind)
    if schema is None:
        return [
            {
                "field": "type",
                "message": f"unknown credential type; known: {', '.join(KINDS)}",
                "code": "unknown_type",
            }
        ]
    try:
        schema.model_validate(dict(data))
    except ValidationError as e:
        return [
            {
                "field": ".".join(["data", *(str(p) for p in err["loc"])]),
                "message": err["msg"],
                "code": err["type"],
            }
            for err in e.errors()
        ]
    return []


def secret_fields(kind: str) -> tuple[str, ...]:
    """The fields of ``kind`` that are never shown."""
    schema = KINDS.get(kind)
    return schema.secret_fields if schema is not None else ()


def public_view(kind: str, data: Mapping[str, Any]) -> dict[str, Any]:
    """What may be shown of a credential's data: every field but the secret ones (a
    database URL is shown with its password masked)."""
    hidden = set(secret_fields(kind))
    out = {k: v for k, v in data.items() if k not in hidden}
    if kind == "database" and isinstance(data.get("url"), str):
        out["url"] = _masked_url(data["url"])
    return out


def main_secret(kind: str, data: Mapping[str, Any]) -> str | None:
    """The one secret a connector sends as its key: a bearer token, a header's or query
    parameter's value, a shared secret, a password, an OAuth2 access token."""
    for name in secret_fields(kind):
        value = data.get(name)
        if isinstance(value, str) and value:
            return value
    return None


def hint(kind: str, data: Mapping[str, Any]) -> str | None:
    """``"…wxyz"``: the last four characters of the main secret, when it is long enough
    that they say nothing useful about it; ``"…"`` otherwise; ``None`` without one."""
    for name in secret_fields(kind):
        value = data.get(name)
        if isinstance(value, str) and value:
            return f"…{value[-4:]}" if len(value) >= HINT_MIN_LENGTH else "…"
    return None


def _masked_url(url: str) -> str:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return "(unparsable URL)"


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
    elif kind == "oauth2" and data.get("access_token"):
        headers["Authorization"] = f"Bearer {data['access_token']}"
    else:
        raise ValueError(f"credential type {kind!r} cannot be used by an HTTP request")

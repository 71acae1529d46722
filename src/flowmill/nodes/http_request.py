"""``http_request``: call an HTTP API through the SSRF-guarded client.

Output: ``{"status", "headers", "data", "url", "elapsed_ms"}``, the body parsed as JSON
when the response is JSON. See ``docs/http.md`` for the whole reference.
"""

from __future__ import annotations

import base64
import functools
import re
from collections.abc import AsyncIterator, Mapping
from typing import Any, Literal
from urllib.parse import urlencode

from pydantic import Field, field_validator, model_validator

from flowmill import jsonutil
from flowmill.blobs.ref import Kind, kind_of
from flowmill.blobs.store import Owner
from flowmill.credentials.crypto import CredentialError
from flowmill.credentials.kinds import apply_to_request
from flowmill.domain.errors import CredentialFailure, NodeError
from flowmill.engine.services import HttpResponse
from flowmill.engine.templates import stringify
from flowmill.net.errors import HttpError, InvalidRequest, InvalidResponse, InvalidUrl
from flowmill.nodes.base import NodeConfig, NodeContext, NodeType
from flowmill.nodes.fields import credential_field

Method = Literal["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]

#: Methods with side effects: they carry the idempotency header.
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
#: Statuses another attempt may fix (besides every 5xx).
RETRIABLE_STATUSES = frozenset({408, 429})
EXCERPT_CHARS = 1000

_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_TEXT_TYPES = frozenset(
    {
        "application/xml",
        "application/javascript",
        "application/ecmascript",
        "application/x-www-form-urlencoded",
        "application/graphql",
        "application/yaml",
        "application/x-yaml",
    }
)


class HttpRequestConfig(NodeConfig):
    """Config of ``http_request`` nodes. Strings may be ``{{ }}`` templates.

    Give at most one body: ``body`` (a string is sent as text, anything else as JSON),
    ``json`` (always JSON), ``text`` or ``form`` (URL-encoded fields).
    """

    method: Method = "GET"
    url: str
    headers: dict[str, Any] = Field(default_factory=dict)
    query: dict[str, Any] = Field(default_factory=dict)
    body: Any = None
    json_body: Any = Field(default=None, alias="json")
    text: str | None = None
    form: dict[str, Any] | None = None
    timeout_s: float | None = Field(default=None, gt=0)
    follow_redirects: bool = True
    response_format: Literal["auto", "json", "text", "binary"] = "auto"
    fail_on_status: bool = True
    idempotency_header: str | None = "Idempotency-Key"
    credential: str | None = credential_field(
        "header", "bearer", "basic", "query", "oauth2", default=None, min_length=1, max_length=200
    )

    @field_validator("method", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("idempotency_header")
    @classmethod
    def _header_name(cls, value: str | None) -> str | None:
        if value is not None and value != "" and not _TOKEN.match(value):
            raise ValueError(f"{value!r} is not a valid header name")
        return value or None

    @model_validator(mode="after")
    def _one_body(self) -> HttpRequestConfig:
        given = [
            name
            for name, value in (
                ("body", self.body),
                ("json", self.json_body),
                ("text", self.text),
                ("form", self.form),
            )
            if value is not None
        ]
        if len(given) > 1:
            raise ValueError(f"give at most one of body, json, text or form (got {given})")
        return self


class HttpRequestNode(NodeType[HttpRequestConfig]):
    """Sends one request and outputs the response."""

    type_name = "http_request"
    Config = HttpRequestConfig
    default_timeout_s = 300.0
    description = "Call an HTTP API; outputs status, headers, body, url and elapsed_ms."

    def config_issues(self, config: HttpRequestConfig, *, expressions_enabled: bool) -> list[str]:
        issues = super().config_issues(config, expressions_enabled=expressions_enabled)
        url = config.url.strip()
        if "{{" not in url and not url.lower().startswith(("http://", "https://")):
            issues.append(f"url must start with http:// or https:// (got {url[:100]!r})")
        return issues

    async def execute(self, ctx: NodeContext, config: HttpRequestConfig) -> Any:
        rendered = await ctx.render(
            {
                "url": config.url,
                "headers": config.headers,
                "query": config.query,
                "body": config.body,
                "json": config.json_body,
                "text": config.text,
                "form": config.form,
            }
        )
        url = rendered["url"]
        if not isinstance(url, str) or not url.strip():
            raise InvalidUrl(f"url rendered to {url!r}, not a URL")
        headers = _headers(rendered["headers"])
        content, content_type = _content(rendered)
        if content_type is not None and not _has(headers, "content-type"):
            headers["Content-Type"] = content_type
        key_header = config.idempotency_header
        if key_header and config.method in UNSAFE_METHODS and not _has(headers, key_header):
            headers[key_header] = ctx.idempotency_key
        params = _query(rendered["query"])
        if config.credential is not None:
            await _use_credential(ctx, config.credential, headers, params)
        send = functools.partial(
            ctx.services.http.request,
            config.method,
            url.strip(),
            headers=headers,
            params=params,
            content=content,
            follow_redirects=config.follow_redirects,
            **_spilling(ctx, config.response_format),
        )
        response = await (send() if config.timeout_s is None else send(timeout_s=config.timeout_s))
        shown = _without_query(response.url)
        ctx.log.info(
            f"{config.method} {shown} → {response.status}",
            status=response.status,
            elapsed_ms=response.elapsed_ms,
        )
        if config.fail_on_status and response.status >= 400:
            raise _status_error(config.method, shown, response)
        return {
            "status": response.status,
            "headers": response.headers,
            # "data", like the seeds' axios runner: examples read input.data.id
            "data": response.spilled
            if response.spilled is not None
            else _parse_body(ctx, config.response_format, response),
            "url": response.url,
            "elapsed_ms": response.elapsed_ms,
        }


_KIND_OF_FORMAT: dict[str, Kind] = {"binary": "base64", "text": "text", "json": "json"}


def _spilling(ctx: NodeContext, fmt: str) -> dict[str, Any]:
    """Arguments that stream a body above the blob threshold into the blob store (its
    reference is then the output's ``data``, decoded as ``fmt`` says when touched)."""
    blobs = ctx.services.blobs
    if blobs is None:
        return {}
    owner = Owner(execution_id=ctx.execution_id, step_key=f"{ctx.idempotency_key}:$.data")

    async def to_blob(stream: AsyncIterator[bytes], *, headers: Mapping[str, str]) -> Any:
        media = _header(headers, "content-type") or "application/octet-stream"
        kind = _KIND_OF_FORMAT.get(fmt) or kind_of(media)
        ref = await blobs.write(ctx.tenant_id, owner, stream, media_type=media, kind=kind)
        return ref.to_value()

    return {"spill": to_blob, "spill_after": blobs.threshold}


def _header(headers: Mapping[str, str], name: str) -> str:
    return next((v for k, v in headers.items() if k.lower() == name), "")


def _headers(raw: Any) -> dict[str, str]:
    """Rendered header values as text; ``null`` drops the header."""
    if not isinstance(raw, Mapping):
        raise InvalidRequest("headers must be an object")
    return {str(k): stringify(v) for k, v in raw.items() if v is not None}


async def _use_credential(
    ctx: NodeContext, name: str, headers: dict[str, str], params: dict[str, Any]
) -> None:
    """Open the execution's tenant's credential ``name`` and put it on the request.

    The secret is decrypted here, for this request only; it is never logged or output.
    """
    vault = ctx.services.credentials
    if vault is None:
        raise CredentialFailure("credentials are not available here")
    try:
        kind, secret = await vault.resolve(ctx.tenant_id, name, ctx.credential_use())
        apply_to_request(kind, secret, headers, params)
    except (CredentialError, ValueError) as e:
        raise CredentialFailure(str(e)) from None


def _query(raw: Any) -> dict[str, str | list[str]]:
    """Rendered query values: lists repeat the parameter, ``null`` drops it."""
    if not isinstance(raw, Mapping):
        raise InvalidRequest("query must be an object")
    out: dict[str, str | list[str]] = {}
    for key, value in raw.items():
        if value is None:
            continue
        if isinstance(value, list):
            out[str(key)] = [stringify(v) for v in value if v is not None]
        else:
            out[str(key)] = stringify(value)
    return out


def _content(rendered: Mapping[str, Any]) -> tuple[bytes | None, str | None]:
    """The request body and its default ``Content-Type``."""
    if rendered["json"] is not None:
        return jsonutil.dumpb(rendered["json"]), "application/json"
    if rendered["text"] is not None:
        return stringify(rendered["text"]).encode(), "text/plain; charset=utf-8"
    form = rendered["form"]
    if form is not None:
        if not isinstance(form, Mapping):
            raise InvalidRequest("form must be an object")
        pairs = [
            (str(k), stringify(item))
            for k, v in form.items()
            for item in (v if isinstance(v, list) else [v])
            if item is not None
        ]
        return urlencode(pairs).encode(), "application/x-www-form-urlencoded"
    body = rendered["body"]
    if body is None:
        return None, None
    if isinstance(body, str):
        return body.encode(), "text/plain; charset=utf-8"
    return jsonutil.dumpb(body), "application/json"


def _has(headers: Mapping[str, str], name: str) -> bool:
    lowered = name.lower()
    return any(k.lower() == lowered for k in headers)


def _without_query(url: str) -> str:
    """A URL for messages and logs: the query may hold secrets (API keys)."""
    return url.split("?", 1)[0].split("#", 1)[0]


def _status_error(method: str, url: str, response: HttpResponse) -> NodeError:
    status = response.status
    details: dict[str, Any] = {
        "status": status,
        "url": url,
        "body": response.body[: EXCERPT_CHARS * 4].decode("utf-8", "replace")[:EXCERPT_CHARS],
    }
    retry_after = response.headers.get("retry-after")
    if retry_after:
        details["retry_after"] = retry_after
    return HttpError(
        f"{method} {url} returned HTTP {status}",
        retriable=status >= 500 or status in RETRIABLE_STATUSES,
        details=details,
    )


def _media(headers: Mapping[str, str]) -> tuple[str, str | None]:
    """The media type (lower case) and charset of the response."""
    media, _, params = headers.get("content-type", "").partition(";")
    charset = None
    for param in params.split(";"):
        key, _, value = param.strip().partition("=")
        if key.lower() == "charset" and value:
            charset = value.strip().strip('"')
    return media.strip().lower(), charset


def _is_json(media: str) -> bool:
    return media in ("application/json", "text/json") or media.endswith("+json")


def _is_text(media: str, charset: str | None) -> bool:
    return (
        media.startswith("text/")
        or media in _TEXT_TYPES
        or media.endswith("+xml")
        or charset is not None
    )


def _decode(data: bytes, charset: str | None) -> str:
    try:
        return data.decode(charset or "utf-8", "replace")
    except LookupError:  # an unknown charset name
        return data.decode("utf-8", "replace")


def _load_json(data: bytes, charset: str | None) -> Any:
    if charset and charset.lower().replace("-", "") not in ("utf8", "usascii", "ascii"):
        return jsonutil.loads(_decode(data, charset))
    return jsonutil.loads(data.removeprefix(b"\xef\xbb\xbf"))


def _parse_body(ctx: NodeContext, fmt: str, response: HttpResponse) -> Any:
    """The body as the node outputs it (``response_format``)."""
    data = response.body
    media, charset = _media(response.headers)
    if fmt == "binary":
        return base64.b64encode(data).decode("ascii")
    if fmt == "text":
        return _decode(data, charset)
    if not data:
        return None
    if fmt == "json":
        try:
            return _load_json(data, charset)
        except ValueError as e:
            raise InvalidResponse(
                f"the response is not JSON: {e}",
                body=_decode(data[: EXCERPT_CHARS * 4], charset)[:EXCERPT_CHARS],
            ) from e
    # auto
    if _is_json(media):
        try:
            return _load_json(data, charset)
        except ValueError:
            ctx.log.warn("the response says JSON but is not; output as text")
            return _decode(data, charset)
    if _is_text(media, charset):
        return _decode(data, charset)
    if not media:
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            pass
    return base64.b64encode(data).decode("ascii")

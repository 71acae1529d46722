"""What every HTTP connector shares: authenticate with a credential, send through the
SSRF-guarded client, refresh an OAuth2 token once after a 401, and turn the service's
answer into a node error that says whether a retry helps (and when, by Retry-After).

The credential is opened for this one call (recorded as ``credential.used``); its
secret goes into a header and nowhere else: not into outputs, logs or error messages.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from flowmill import jsonutil
from flowmill.credentials import kinds
from flowmill.credentials.crypto import CredentialError
from flowmill.domain.errors import CredentialFailure, InvalidConfig, NodeError
from flowmill.engine.services import HttpResponse
from flowmill.engine.templates import stringify
from flowmill.net.retry_after import retry_after_s
from flowmill.nodes.base import NodeContext

EXCERPT = 300


class ServiceError(NodeError):
    """A service refused or failed a call; ``details`` carry its status and code."""

    def __init__(
        self,
        message: str,
        *,
        retriable: bool,
        status: int | None = None,
        code: Any = None,
        retry_after: float | None = None,
    ) -> None:
        details: dict[str, Any] = {}
        if status is not None:
            details["status"] = status
        if code is not None:
            details["code"] = code
        if retry_after is not None:
            details["retry_after_s"] = retry_after
        super().__init__(message, type="ServiceError", retriable=retriable, details=details)


def config_error(message: str) -> NodeError:
    """A node config that renders to something unusable (never retried)."""
    return InvalidConfig(message)


def required(rendered: Mapping[str, Any], *names: str) -> None:
    """Refuse fields that rendered to nothing."""
    for name in names:
        value = rendered.get(name)
        if value is None or (isinstance(value, str) and not value.strip()):
            raise config_error(f"{name} rendered to nothing; set it in the node's config")


@dataclass
class Opened:
    """A credential opened for one call: its type and data, and the token sent."""

    ref: str
    kind: str
    data: dict[str, Any]
    token: str | None = None


async def open_credential(ctx: NodeContext, ref: str) -> Opened:
    """Open the tenant's credential ``ref`` (id or name) for this attempt.

    Raises:
        NodeError: ``CredentialError``: missing, of another tenant, or unopenable.
    """
    vault = ctx.services.credentials
    if vault is None:
        raise CredentialFailure("credentials are not available here")
    try:
        kind, data = await vault.resolve(ctx.tenant_id, ref, ctx.credential_use())
    except CredentialError as e:
        raise CredentialFailure(str(e)) from None
    return Opened(ref, kind, data)


async def _authorize(
    ctx: NodeContext,
    cred: Opened,
    headers: dict[str, str],
    params: dict[str, Any],
    rejected: str | None,
) -> None:
    if cred.kind == "oauth2":
        vault = ctx.services.credentials
        assert vault is not None
        try:
            cred.token = await vault.access_token(
                ctx.tenant_id, cred.ref, ctx.credential_use(), rejected=rejected
            )
        except CredentialError as e:
            raise CredentialFailure(
                str(e), retriable=bool(getattr(e, "retriable", False))
            ) from None
        headers["Authorization"] = f"Bearer {cred.token}"
        return
    try:
        kinds.apply_to_request(cred.kind, cred.data, headers, params)
    except ValueError as e:
        raise CredentialFailure(str(e)) from None
    cred.token = kinds.main_secret(cred.kind, cred.data)


async def call(
    ctx: NodeContext,
    cred: Opened,
    method: str,
    url: str,
    *,
    json_body: Any = None,
    form: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
    timeout_s: float = 30.0,
) -> HttpResponse:
    """Send one request with the credential; after a 401 with an OAuth2 token, refresh
    it (once, whoever else also needs it) and send again."""
    from urllib.parse import urlencode

    content: bytes | None = None
    base_headers = {"Accept": "application/json", **(headers or {})}
    if json_body is not None:
        content = jsonutil.dumpb(json_body)
        base_headers["Content-Type"] = "application/json"
    elif form is not None:
        content = urlencode(form).encode()
        base_headers["Content-Type"] = "application/x-www-form-urlencoded"
    rejected: str | None = None
    for _ in range(2):
        sent_headers = dict(base_headers)
        params: dict[str, Any] = {}
        await _authorize(ctx, cred, sent_headers, params, rejected)
        response = await ctx.services.http.request(
            method,
            url,
            headers=sent_headers,
            params=params or None,
            content=content,
            timeout_s=timeout_s,
            follow_redirects=False,
        )
        if response.status == 401 and cred.kind == "oauth2" and rejected is None:
            rejected = cred.token
            ctx.log.info("the service refused the access token; refreshing it once")
            continue
        return response
    return response


def parse(response: HttpResponse) -> Any:
    """The JSON body, or ``None`` when there is none (or it is not JSON)."""
    if not response.body:
        return None
    try:
        return jsonutil.loads(response.body)
    except ValueError:
        return None


def excerpt(text: Any, secret: str | None) -> str:
    """A service's message, cut short, never holding the credential's secret."""
    shown = stringify(text) if text is not None else ""
    if secret:
        shown = shown.replace(secret, "[redacted]")
    return shown[:EXCERPT]


def http_failure(
    service: str,
    response: HttpResponse,
    cred: Opened,
    describe: Callable[[Any], tuple[str | None, Any]],
    *,
    retriable_codes: frozenset[Any] = frozenset(),
) -> ServiceError:
    """The error of a failed answer: 429 and 5xx retriable (after Retry-After), other
    4xx not, unless the service's own code says it is transient.

    ``describe(body)`` returns the service's (message, code).
    """
    message, code = describe(parse(response))
    status = response.status
    retriable = status == 429 or status >= 500 or status == 408 or code in retriable_codes
    if status in (401, 403) and code not in retriable_codes:
        text = f"{service} refused the credential (HTTP {status})"
        if message:
            text += f": {excerpt(message, cred.token)}"
    else:
        text = f"{service} answered HTTP {status}"
        if message:
            text += f": {excerpt(message, cred.token)}"
    return ServiceError(
        text,
        retriable=retriable,
        status=status,
        code=code,
        retry_after=retry_after_s(response.headers) if retriable else None,
    )

"""OAuth 2.0 tokens for nodes: fresh access tokens, refreshed once however many ask.

An ``oauth2`` credential holds the client (``token_url``, ``client_id``,
``client_secret``) and, for an authorization-code grant, the user's ``refresh_token``;
the current ``access_token`` and its ``expires_at`` are sealed with them. A node asks
:class:`CredentialAccess` for a token:

- a token valid for more than ``refresh_skew_s`` is handed out as it is;
- one that expires sooner, or that the service just refused (a 401: the caller passes
  it as ``rejected``), is refreshed at the token endpoint (RFC 6749 §6 with the refresh
  token, §4.4 client credentials otherwise) and the result sealed back.

One refresh serves everyone who needed it. In a process, callers of one credential
queue on a lock and the ones after the first find the new token. Across processes, the
refresher first claims the credential's ``refresh_lease_until`` in the database; the
others wait until the token they read is fresh, or the claim lapses. This matters:
providers that rotate refresh tokens revoke the whole grant when one is used twice.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from flowmill import jsonutil
from flowmill.clock import Clock, SystemClock
from flowmill.credentials.crypto import CredentialError
from flowmill.credentials.use import CredentialUse
from flowmill.credentials.vault import CredentialVault, OpenedCredential
from flowmill.domain.errors import NodeError

if TYPE_CHECKING:
    from flowmill.engine.services import HttpClient


class OAuth2Error(CredentialError):
    """A token could not be had; ``retriable`` says whether a later try may work."""

    def __init__(self, message: str, *, retriable: bool) -> None:
        super().__init__(message)
        self.retriable = retriable


def needs_refresh(
    data: Mapping[str, Any], now: datetime, skew_s: float, rejected: str | None = None
) -> bool:
    """Whether the sealed token cannot be handed out as it is."""
    token = data.get("access_token")
    if not token or token == rejected:
        return True
    expires = data.get("expires_at")
    if expires is None:
        return False
    return datetime.fromisoformat(str(expires)) - timedelta(seconds=skew_s) <= now


def token_request(data: Mapping[str, Any]) -> tuple[dict[str, str], bytes]:
    """Headers and form body of a refresh (or client-credentials) request."""
    form: dict[str, str] = {}
    if data.get("refresh_token"):
        form["grant_type"] = "refresh_token"
        form["refresh_token"] = str(data["refresh_token"])
    elif data.get("grant_type") == "client_credentials":
        form["grant_type"] = "client_credentials"
    else:
        raise OAuth2Error(
            "the access token expired and the credential holds no refresh_token",
            retriable=False,
        )
    for key in ("scope", "audience"):
        if data.get(key):
            form[key] = str(data[key])
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "Accept": "application/json",
    }
    secret = data.get("client_secret")
    if data.get("client_auth") == "basic":
        raw = f"{data['client_id']}:{secret or ''}".encode()
        headers["Authorization"] = f"Basic {base64.b64encode(raw).decode()}"
    else:
        form["client_id"] = str(data["client_id"])
        if secret:
            form["client_secret"] = str(secret)
    return headers, urlencode(form).encode()


def refreshed(data: Mapping[str, Any], answer: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """The credential's data after a successful token response.

    Raises:
        OAuth2Error: The answer has no access token.
    """
    token = answer.get("access_token")
    if not isinstance(token, str) or not token:
        raise OAuth2Error("the token endpoint answered without an access_token", retriable=False)
    out = dict(data)
    out["access_token"] = token
    if isinstance(answer.get("refresh_token"), str) and answer["refresh_token"]:
        out["refresh_token"] = answer["refresh_token"]  # rotated
    expires_in = answer.get("expires_in")
    if isinstance(expires_in, int | float) and not isinstance(expires_in, bool):
        out["expires_at"] = (now + timedelta(seconds=float(expires_in))).isoformat()
    else:
        out.pop("expires_at", None)
    return out


async def fetch_token(
    http: HttpClient, data: Mapping[str, Any], now: datetime, *, timeout_s: float = 30.0
) -> dict[str, Any]:
    """Ask the token endpoint for a new access token; the new credential data.

    Raises:
        OAuth2Error: Refused (``invalid_grant``... not retriable) or unavailable.
    """
    headers, body = token_request(data)
    try:
        response = await http.request(
            "POST",
            str(data["token_url"]),
            headers=headers,
            content=body,
            timeout_s=timeout_s,
            follow_redirects=False,
        )
    except NodeError as e:  # SSRF refusal, connection failure, timeout
        raise OAuth2Error(
            f"the token endpoint cannot be reached: {e}", retriable=e.retriable
        ) from e
    try:
        answer = jsonutil.loads(response.body) if response.body else {}
    except ValueError:
        answer = {}
    if response.status >= 400 or not isinstance(answer, dict):
        error = answer.get("error") if isinstance(answer, dict) else None
        retriable = response.status >= 500 or response.status == 429
        # The error code and description are the provider's words about the grant, never
        # a secret; the body is not repeated (some providers echo the request).
        described = answer.get("error_description") if isinstance(answer, dict) else None
        why = f"{error}: {described}" if error and described else (error or "no reason given")
        raise OAuth2Error(
            f"the token endpoint refused the refresh (HTTP {response.status}, {str(why)[:200]})",
            retriable=retriable,
        )
    return refreshed(data, answer, now)


class CredentialAccess:
    """What nodes use to open credentials: audited decryption and fresh OAuth2 tokens.

    Implements the engine's ``CredentialResolver`` port.

    Args:
        vault: The credential store.
        http: The SSRF-guarded HTTP client (token endpoints are tenants' URLs).
        clock: Time.
        refresh_skew_s: A token expiring within this many seconds is refreshed first.
        lease_s: How long a refresh may take before others take over.
    """

    def __init__(
        self,
        vault: CredentialVault,
        http: HttpClient,
        clock: Clock | None = None,
        *,
        refresh_skew_s: float = 60.0,
        lease_s: float = 30.0,
    ) -> None:
        self.vault = vault
        self.http = http
        self.clock = clock or SystemClock()
        self.refresh_skew_s = refresh_skew_s
        self.lease_s = lease_s
        self.refreshes = 0  # token endpoint calls made by this process
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}

    async def resolve(
        self, tenant_id: str, ref: str, use: CredentialUse | None = None
    ) -> tuple[str, dict[str, Any]]:
        """(type, secret data) of the tenant's credential ``ref`` (id or name)."""
        return await self.vault.resolve(tenant_id, ref, use)

    async def access_token(
        self,
        tenant_id: str,
        ref: str,
        use: CredentialUse | None = None,
        *,
        rejected: str | None = None,
    ) -> str:
        """A usable access token of an ``oauth2`` credential (refreshed if needed).

        Args:
            tenant_id: The tenant.
            ref: The credential's id or name.
            use: Who asks (recorded).
            rejected: A token the service just refused: never handed out again.

        Raises:
            CredentialError: Not an ``oauth2`` credential, or no token can be had
                (:class:`OAuth2Error` says whether a retry may help).
        """
        opened = await self.vault.open(tenant_id, ref, use)
        _check_kind(opened)
        now = self.clock.now()
        if not needs_refresh(opened.data, now, self.refresh_skew_s, rejected):
            return str(opened.data["access_token"])
        lock = self._locks.setdefault((tenant_id, opened.id), asyncio.Lock())
        async with lock:
            return await self._refresh(tenant_id, opened.id, use, rejected)

    async def _refresh(
        self, tenant_id: str, credential_id: str, use: CredentialUse | None, rejected: str | None
    ) -> str:
        give_up = self.clock.monotonic() + self.lease_s + 5
        while True:
            # Read again under the lock: whoever held it may have refreshed already.
            seen = await self._updated_at(tenant_id, credential_id)
            opened = await self.vault.open(tenant_id, credential_id, use)
            now = self.clock.now()
            if not needs_refresh(opened.data, now, self.refresh_skew_s, rejected):
                return str(opened.data["access_token"])
            until = now + timedelta(seconds=self.lease_s)
            if await self.vault.take_refresh_lease(tenant_id, credential_id, until):
                if await self._updated_at(tenant_id, credential_id) != seen:
                    # Another process refreshed (and released its claim) between our read
                    # and our claim: the token we read is stale, so read again.
                    await self.vault.release_refresh_lease(tenant_id, credential_id)
                    rejected = None
                    continue
                try:
                    self.refreshes += 1
                    new = await fetch_token(self.http, opened.data, now)
                except BaseException:
                    await self.vault.release_refresh_lease(tenant_id, credential_id)
                    raise
                await self.vault.store_refreshed(tenant_id, credential_id, new)
                return str(new["access_token"])
            if self.clock.monotonic() > give_up:
                raise OAuth2Error(
                    "another process's token refresh did not finish in time", retriable=True
                )
            await self.clock.sleep(0.1)

    async def _updated_at(self, tenant_id: str, credential_id: str) -> object:
        info = await self.vault.get(tenant_id, credential_id)
        return info.updated_at if info is not None else None


def _check_kind(opened: OpenedCredential) -> None:
    if opened.type != "oauth2":
        raise CredentialError(
            f"credential {opened.name!r} is of type {opened.type!r}; an OAuth2 token "
            "needs an oauth2 credential"
        )

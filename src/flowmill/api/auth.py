"""Who is calling: API keys and JWT bearer tokens, each resolving to one tenant.

``Authorization: Bearer fm_...`` is an API key, checked against its stored hash.
Anything else is read as a JWT, accepted only when JWT is configured, verified with the
one configured algorithm (never the token's own choice: that is how ``alg=none`` and
HS256-signed-with-the-RSA-public-key forgeries get in), and only with the configured
issuer and audience and an unexpired ``exp``. The tenant comes from a configurable
claim; a tenant seen for the first time is created, since the identity provider is the
authority on tenants in that setup.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from typing import Any, Literal

import jwt
import structlog

from flowmill.api.errors import ApiError
from flowmill.config import Settings
from flowmill.store.api_keys import ApiKeyStore, looks_like_key
from flowmill.store.tenants import TENANT_ID_PATTERN, TenantStore

log = structlog.get_logger("flowmill.api.auth")
_CHALLENGE = {"WWW-Authenticate": "Bearer"}


@dataclass(frozen=True)
class Principal:
    """An authenticated caller.

    Attributes:
        tenant_id: Every query of the request is scoped to it.
        auth: How the caller proved it.
        subject: The API key id, or the token's ``sub``.
    """

    tenant_id: str
    auth: Literal["api_key", "jwt"]
    subject: str


def unauthorized(message: str) -> ApiError:
    """A 401 with the bearer challenge."""
    return ApiError(401, "unauthorized", message, headers=_CHALLENGE)


class JwtVerifier:
    """Verifies JWT bearer tokens against the settings.

    Raises:
        ValueError: On construction, when the settings are incomplete.
    """

    def __init__(self, settings: Settings) -> None:
        alg = settings.jwt_algorithm
        if alg is None:
            raise ValueError("FLOWMILL_JWT_ALGORITHM is not set")
        if not settings.jwt_issuer or not settings.jwt_audience:
            raise ValueError(
                "JWT needs FLOWMILL_JWT_ISSUER and FLOWMILL_JWT_AUDIENCE: tokens from any "
                "issuer or for any audience must not be accepted"
            )
        self.algorithm = alg
        self.issuer = settings.jwt_issuer
        self.audience = settings.jwt_audience
        self.tenant_claim = settings.jwt_tenant_claim
        self.leeway = settings.jwt_leeway_s
        self._key: Any = None
        self._jwks: jwt.PyJWKClient | None = None
        if alg == "HS256":
            if not settings.jwt_secret or len(settings.jwt_secret) < 32:
                raise ValueError("HS256 needs FLOWMILL_JWT_SECRET of at least 32 characters")
            self._key = settings.jwt_secret
        elif settings.jwt_jwks_url:
            self._jwks = jwt.PyJWKClient(
                settings.jwt_jwks_url,
                cache_keys=True,
                lifespan=max(1, int(settings.jwt_jwks_cache_s)),
                timeout=5,
            )
        elif settings.jwt_public_key:
            self._key = settings.jwt_public_key
        else:
            raise ValueError("RS256 needs FLOWMILL_JWT_JWKS_URL or FLOWMILL_JWT_PUBLIC_KEY")

    async def _signing_key(self, token: str) -> Any:
        if self._jwks is None:
            return self._key
        jwks = self._jwks
        try:
            # PyJWKClient fetches with urllib (blocking): keep it off the event loop.
            signing = await asyncio.to_thread(jwks.get_signing_key_from_jwt, token)
        except jwt.PyJWKClientConnectionError as e:
            log.warning("cannot fetch the JWKS", error=str(e))
            raise ApiError(503, "unavailable", "cannot fetch the token signing keys") from e
        except jwt.PyJWKClientError as e:
            raise unauthorized(f"token signing key not found: {e}") from e
        return signing.key

    async def verify(self, token: str) -> dict[str, Any]:
        """The token's claims.

        Raises:
            ApiError: 401 when the token is not acceptable.
        """
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as e:
            raise unauthorized("the bearer token is neither an API key nor a JWT") from e
        if header.get("alg") != self.algorithm:
            raise unauthorized(f"token algorithm must be {self.algorithm}")
        key = await self._signing_key(token)
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[self.algorithm],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError as e:
            raise unauthorized("token expired") from e
        except jwt.PyJWTError as e:
            raise unauthorized(f"token rejected: {e}") from e
        return claims

    def tenant_of(self, claims: dict[str, Any]) -> str:
        """The tenant a verified token speaks for.

        Raises:
            ApiError: 401 when the claim is missing or malformed.
        """
        tenant = claims.get(self.tenant_claim)
        if not isinstance(tenant, str) or not re.match(TENANT_ID_PATTERN, tenant):
            raise unauthorized(f"token has no valid {self.tenant_claim!r} claim")
        return tenant


class Authenticator:
    """Turns an ``Authorization`` header into a :class:`Principal`."""

    def __init__(
        self, keys: ApiKeyStore, tenants: TenantStore, verifier: JwtVerifier | None
    ) -> None:
        self.keys = keys
        self.tenants = tenants
        self.verifier = verifier
        self._known_tenants: set[str] = set()

    async def authenticate(self, token: str | None) -> Principal:
        """Check a bearer token.

        Raises:
            ApiError: 401 when it is missing or not acceptable.
        """
        if not token:
            raise unauthorized("missing bearer token: send Authorization: Bearer <API key>")
        if looks_like_key(token):
            record = await self.keys.authenticate(token)
            if record is None:
                raise unauthorized("unknown or revoked API key")
            return Principal(record.tenant_id, "api_key", record.id)
        if self.verifier is None:
            raise unauthorized("not an API key (JWT bearer tokens are not enabled)")
        claims = await self.verifier.verify(token)
        tenant = self.verifier.tenant_of(claims)
        if tenant not in self._known_tenants:
            await self.tenants.ensure(tenant)
            self._known_tenants.add(tenant)
        return Principal(tenant, "jwt", str(claims.get("sub", "")))

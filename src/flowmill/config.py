"""Settings: one class, every field a ``FLOWMILL_*`` environment variable.

The embedded defaults need no configuration at all: a SQLite file under ``.flowmill/``
in the working directory and an in-process queue.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    """Flowmill's configuration.

    Attributes:
        home: Directory of the embedded database and other local state.
        database_url: ``sqlite:///path`` or ``postgresql://user@host/db``; default is a
            SQLite file in ``home``.
        redis_url: When set, jobs go through BullMQ on this Redis (distributed mode).
        sqlite_synchronous: ``NORMAL`` survives process crashes (WAL); ``FULL`` also
            survives power loss, at a cost per commit.
        http_allow_hosts: Host names outbound HTTP may reach despite the SSRF guard.
        http_allow_cidrs: Networks outbound HTTP may reach despite the SSRF guard.
        max_request_bytes: Largest request body the API accepts (413 beyond).
        api_max_wait_s: Longest ``?wait=`` an execute request may ask for.
        jwt_algorithm: Accept JWT bearer tokens signed with this one algorithm; unset
            means API keys only. ``HS256`` needs ``jwt_secret``; ``RS256`` needs
            ``jwt_jwks_url`` or ``jwt_public_key``.
        jwt_issuer: Required ``iss`` of accepted tokens.
        jwt_audience: Required ``aud`` of accepted tokens.
        jwt_tenant_claim: Claim naming the caller's tenant.
    """

    model_config = SettingsConfigDict(env_prefix="FLOWMILL_", extra="ignore")

    home: Path = Path(".flowmill")
    database_url: str | None = None
    redis_url: str | None = None
    sqlite_synchronous: Literal["NORMAL", "FULL"] = "NORMAL"
    db_pool_size: int = Field(10, ge=1, le=200)
    auto_migrate: bool = True

    host: str = "127.0.0.1"
    port: int = Field(3000, ge=1, le=65535)
    concurrency: int = Field(16, ge=1, le=1024)
    shutdown_grace_s: float = Field(10.0, ge=0)
    sweep_interval_s: float = Field(1.0, gt=0)
    dead_worker_after_s: float = Field(15.0, gt=0)
    max_output_bytes: int = Field(16 * 1024 * 1024, ge=1024)

    http_allow_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)
    http_allow_cidrs: Annotated[list[str], NoDecode] = Field(default_factory=list)
    http_max_response_bytes: int = Field(10 * 1024 * 1024, ge=1024)

    # --- HTTP API (flowmill serve) ---
    max_request_bytes: int = Field(1024 * 1024, ge=1024)
    api_max_wait_s: float = Field(60.0, ge=0)
    jwt_algorithm: Literal["HS256", "RS256"] | None = None
    jwt_secret: str | None = None
    jwt_public_key: str | None = None
    jwt_jwks_url: str | None = None
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    jwt_tenant_claim: str = "tenant_id"
    jwt_leeway_s: float = Field(30.0, ge=0)
    jwt_jwks_cache_s: float = Field(300.0, ge=0)

    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["console", "json"] = "console"

    @field_validator("http_allow_hosts", "http_allow_cidrs", mode="before")
    @classmethod
    def _comma_list(cls, v: object) -> object:
        if isinstance(v, str):
            return [p.strip() for p in v.split(",") if p.strip()]
        return v

    @property
    def database(self) -> str:
        """The database URL in effect."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.home / 'flowmill.db').resolve()}"

    @property
    def distributed(self) -> bool:
        """Whether jobs go through Redis (BullMQ) rather than an in-process queue."""
        return bool(self.redis_url)

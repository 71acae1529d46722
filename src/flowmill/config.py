"""Settings: one class, every field a ``FLOWMILL_*`` environment variable.

The embedded defaults need no configuration at all: a SQLite file under ``.flowmill/``
in the working directory and an in-process queue.
"""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from flowmill.blobs.ref import DEFAULT_CAP_BYTES, DEFAULT_THRESHOLD_BYTES
from flowmill.constants import NODE_QUEUE, QUEUE_NAME_PATTERN, TRIGGER_QUEUE
from flowmill.credentials.crypto import Keyring, load_or_create_keyring
from flowmill.engine.control import ControlSettings
from flowmill.engine.options import EngineOptions
from flowmill.quotas import Quotas
from flowmill.retention.policy import RetentionPolicies, RetentionPolicy
from flowmill.sandbox.limits import CodeLimits
from flowmill.sandbox.settings import SandboxSettings


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
        secret_keys: Keys sealing credentials at rest, ``"kid1:base64,kid2:base64"``;
            the first seals, all open (rotation). Default for an embedded SQLite
            database: a key file ``secret.key`` in ``home``, made on first use.
        sandbox_enabled: Run user code (JavaScript, Python) and ``{{ }}`` expressions in
            the sandbox; off, such workflows do not validate.
        sandbox_allow_rlimit_only_python: Let Python code nodes run without bubblewrap
            (rlimits and seccomp only). Off by default: see docs/sandbox.md.
        max_request_bytes: Largest request body the API accepts (413 beyond).
        api_max_wait_s: Longest ``?wait=`` an execute request may ask for.
        jwt_algorithm: Accept JWT bearer tokens signed with this one algorithm; unset
            means API keys only. ``HS256`` needs ``jwt_secret``; ``RS256`` needs
            ``jwt_jwks_url`` or ``jwt_public_key``.
        jwt_issuer: Required ``iss`` of accepted tokens.
        jwt_audience: Required ``aud`` of accepted tokens.
        jwt_tenant_claim: Claim naming the caller's tenant.
        webhook_max_body_bytes: Largest webhook request body (413 beyond).
        webhook_cache_s: How long the ingress reuses a resolved webhook (a deactivated
            one may still record requests this long; dispatch checks again).
        webhook_recovery_s: A webhook event still ``received`` this long after it
            arrived is dispatched by the trigger service (its job was lost).
        webhook_max_wait_s: Longest a ``last_node``/``response_node`` webhook waits.
        wait_fallback_s: Longest pause between database reads of a request waiting for
            an answer (``?wait=``, late webhook respond modes). News of the end wakes it
            at once; this read only catches news lost on the way.
        retention_enabled: Prune old finished records in the background (``flowmill
            serve``/``scheduler``, one replica at a time); ``flowmill prune`` works
            either way. See docs/retention.md.
        retention_executions_days: Finished executions (with node runs and logs)
            are kept this long after they ended; 0 keeps them for ever.
        retention_failed_executions_days: The same for failed ones; unset: as
            ``retention_executions_days``.
        retention_webhook_events_days: Dispatched or refused webhook events.
        retention_webhook_bodies_days: Raw bodies of dispatched webhook events.
        retention_store_events_days: The event store, below every consumer's cursor.
        retention_tenants: Per-tenant overrides, JSON: ``{"acme":
            {"executions_days": 90}}`` (field names as above, without ``retention_``).
        retention_interval_s: Pause between background prunes.
        retention_batch: Rows deleted per transaction (each a short write lock).
        retention_pause_s: Pause between batches, so other writers get their turn.
        scheduler_tick_s: Longest pause between rounds of the trigger service.
        scheduler_lease_s: Lease of the leading trigger service replica; a dead
            leader is replaced within this time.
        orphan_grace_s: Distributed mode: a live step absent from the queue this long
            after it was written is put back (its worker died between commit and
            enqueue, or Redis lost it in a restart).
        queue_prefix: Redis key prefix of the BullMQ queues (``bull``, as Node.js
            BullMQ, so Node.js producers find them).
        queue_keep_completed: Completed jobs kept in Redis for dashboards (0: none).
        queue_keep_completed_s: Completed jobs older than this are removed.
        queue_keep_failed: Failed jobs kept in Redis (they carry the failure reason).
        queue_keep_failed_s: Failed jobs older than this are removed.
        queue_lock_s: A job whose worker stops renewing its lock this long is stalled
            and goes back to wait (a worker killed mid-step is noticed this fast).
        queue_stalled_check_s: How often workers look for stalled jobs.
        queue_trigger: Name of the BullMQ queue of trigger jobs (the seed documents'
            ``workflow-trigger`` works; every process must use the same names).
        queue_node: Name of the BullMQ queue of step jobs (the seeds'
            ``workflow-node-execution``).
        connector_sqlite_dirs: Directories whose SQLite files ``database_query`` nodes
            may open; empty (the default) refuses SQLite URLs.
        connector_max_rows: Rows a ``database_query`` node returns at most.
        tenant_api_requests_per_minute: Default quota of a tenant's API requests per
            minute and API process (0: unlimited); 429 with ``Retry-After`` beyond.
        tenant_webhook_requests_per_minute: Default quota of webhook deliveries per
            tenant, minute and process (0: unlimited).
        tenant_starts_per_minute: Default quota of executions a tenant starts through
            the API per minute and process (0: unlimited).
        tenant_concurrent_executions: Default cap of one tenant's executions live at
            once across the deployment (0: none); further starts wait in ``queued``.
        tenant_concurrent_steps: Default cap of one tenant's steps running at once in
            one worker process (0: none; fair ordering applies anyway).
        tenant_sandbox_concurrency: Default cap of one tenant's code evaluations at once
            in one process's sandbox pools (0: none).
        admin_key: Bearer token of the admin API (``/api/admin/...``, per-tenant
            quotas); unset, the admin API answers 404.
        faults: Test mode only: store and queue calls fail or stall on purpose, e.g.
            ``store=0.02,queue=0.02,stall_s=1`` (see ``flowmill.faults``).
        projections_enabled: Keep the read models (analytics) up to date in this process
            (``serve``, ``scheduler``; one replica leads at a time).
        projector_interval_s: Longest pause between projector rounds.
        projector_batch: Events per projector transaction (default 5,000 on
            PostgreSQL; 500 on SQLite, where a transaction blocks every other writer).
        projector_lease_s: Lease of the leading projector replica.
        socket_enabled: Serve Socket.IO at ``/api/socket`` (needs ``flowmill[realtime]``).
        socket_compression: Offer per-message deflate on WebSocket connections (Socket.IO
            and any other). Off by default, as in Socket.IO's own server: its events are
            small, and compressing each frame for each recipient cost about a fifth of
            the server's CPU per recipient (``bench/read_side.py``).
        cors_origins: Browser origins allowed to open Socket.IO connections
            (comma-separated; ``*`` for any); none means same-origin only.
        metrics_enabled: Count and time executions, steps, queues, webhooks, commits.
        metrics_tenant_label: Add a ``tenant`` label to per-execution metrics (one
            series per tenant: mind the cardinality).
        metrics_token: When set, ``/metrics`` asks for ``Authorization: Bearer <it>``.
        metrics_port: ``flowmill worker`` / ``scheduler``: serve ``/health``, ``/ready``
            and ``/metrics`` on this port (0: off).
        metrics_host: Address that port binds to.
        queue_metrics_interval_s: How often queue depths are read for the metrics.
        loop_lag_threshold_ms: Event-loop stalls longer than this are logged with what
            was running.
        otel_enabled: Export OpenTelemetry traces (one per execution, a span per step).
        otel_endpoint: OTLP/HTTP traces endpoint.
        max_child_depth: How deep child executions (loop iterations, sub-workflow calls)
            may nest; deeper starts fail with ``ChildDepthExceeded``.
        loop_max_iterations: Cap on a loop node's ``max_iterations``.
        control_poll_s: A parent parked on its children looks at them this often even
            without a wake (a wake lost in a crash costs at most this long).
        loop_drive_s: How long one run of a loop step runs its inline body's
            iterations itself before it yields its worker (0: every iteration through
            the queue).
        public_url: The API's base URL as users reach it (resume URLs point there);
            default ``http://{host}:{port}``.
        blob_store: Where values above ``blob_threshold_bytes`` go (docs/payloads.md):
            ``auto`` (files for SQLite, the database for PostgreSQL), ``files``,
            ``database``, ``s3``, or ``off`` (values stay inline, within the caps).
        blob_threshold_bytes: Values larger than this (JSON-encoded; raw bytes for
            webhook bodies and HTTP responses) are stored once as blobs and passed by
            reference.
        blob_dir: Directory of the ``files`` store; default ``blobs/`` beside the SQLite
            file (``<home>/blobs``).
        blob_s3_endpoint: S3-compatible endpoint URL of the ``s3`` store.
        blob_s3_bucket: Its bucket (it must exist).
        blob_s3_access_key: Access key id.
        blob_s3_secret_key: Secret access key.
        blob_s3_region: Signing region.
        blob_s3_prefix: Prepended to every object key.
        max_output_bytes: Largest node output (its blobs included).
        http_max_response_bytes: Largest HTTP response body a node reads.
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
    concurrency: int = Field(EngineOptions.concurrency, ge=1, le=1024)
    shutdown_grace_s: float = Field(EngineOptions.shutdown_grace_s, ge=0)
    sweep_interval_s: float = Field(EngineOptions.sweep_interval_s, gt=0)
    dead_worker_after_s: float = Field(EngineOptions.dead_after_s, gt=0)
    orphan_grace_s: float = Field(EngineOptions.orphan_grace_s, gt=0)
    max_output_bytes: int = Field(EngineOptions.max_output_bytes, ge=1024)
    max_child_depth: int = Field(16, ge=1, le=1000)
    loop_max_iterations: int = Field(100_000, ge=1)
    control_poll_s: float = Field(60.0, gt=0)
    loop_drive_s: float = Field(0.5, ge=0, le=60)
    public_url: str | None = None

    secret_keys: str = Field("", repr=False)

    http_allow_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)
    http_allow_cidrs: Annotated[list[str], NoDecode] = Field(default_factory=list)
    http_max_response_bytes: int = Field(DEFAULT_CAP_BYTES, ge=1024)

    sandbox_enabled: bool = True
    sandbox_timeout_s: float = Field(CodeLimits.timeout_s, gt=0)
    sandbox_max_timeout_s: float = Field(60.0, gt=0)
    sandbox_memory_mb: int = Field(CodeLimits.memory_mb, ge=16)
    sandbox_max_memory_mb: int = Field(1024, ge=16)
    sandbox_max_output_bytes: int = Field(CodeLimits.max_output_bytes, ge=1024)
    sandbox_js_workers: int = Field(0, ge=0)
    sandbox_js_reserve_workers: int = Field(1, ge=0)
    sandbox_nice: int = Field(10, ge=0, le=19)
    sandbox_bwrap: str = ""
    sandbox_allow_rlimit_only_python: bool = False
    sandbox_python_executable: str = ""
    # --- tenants' quotas (flowmill.quotas; overrides per tenant in the database) ---
    tenant_api_requests_per_minute: int = Field(0, ge=0)
    tenant_webhook_requests_per_minute: int = Field(0, ge=0)
    tenant_starts_per_minute: int = Field(0, ge=0)
    tenant_concurrent_executions: int = Field(0, ge=0)
    tenant_concurrent_steps: int = Field(0, ge=0)
    tenant_sandbox_concurrency: int = Field(0, ge=0)
    admin_key: str = Field("", repr=False)
    faults: str = ""
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

    # --- triggers: webhooks, schedules, events ---
    webhook_max_body_bytes: int = Field(DEFAULT_CAP_BYTES, ge=1024)
    webhook_cache_s: float = Field(1.0, ge=0)
    webhook_recovery_s: float = Field(10.0, gt=0)
    webhook_max_wait_s: float = Field(30.0, ge=0)
    wait_fallback_s: float = Field(EngineOptions.wait_fallback_s, gt=0)
    scheduler_tick_s: float = Field(1.0, gt=0)

    # --- large payloads (docs/payloads.md) ---
    blob_store: Literal["auto", "files", "database", "s3", "off"] = "auto"
    blob_threshold_bytes: int = Field(DEFAULT_THRESHOLD_BYTES, ge=1024)
    blob_dir: Path | None = None
    blob_s3_endpoint: str = ""
    blob_s3_bucket: str = ""
    blob_s3_access_key: str = Field("", repr=False)
    blob_s3_secret_key: str = Field("", repr=False)
    blob_s3_region: str = "us-east-1"
    blob_s3_prefix: str = ""

    # --- retention (docs/retention.md) ---
    retention_enabled: bool = True
    retention_executions_days: float = Field(RetentionPolicy.executions_days, ge=0)
    retention_failed_executions_days: float | None = Field(None, ge=0)
    retention_webhook_events_days: float = Field(RetentionPolicy.webhook_events_days, ge=0)
    retention_webhook_bodies_days: float = Field(RetentionPolicy.webhook_bodies_days, ge=0)
    retention_store_events_days: float = Field(RetentionPolicy.store_events_days, ge=0)
    retention_tenants: dict[str, dict[str, float | None]] = Field(default_factory=dict)
    retention_interval_s: float = Field(3600.0, gt=0)
    retention_batch: int = Field(200, ge=1, le=10_000)
    retention_pause_s: float = Field(0.01, ge=0)
    scheduler_lease_s: float = Field(15.0, gt=0)

    # --- distributed queue (BullMQ on Redis) ---
    queue_prefix: str = Field("bull", min_length=1)
    queue_keep_completed: int = Field(1000, ge=0)
    queue_keep_completed_s: int = Field(24 * 3600, ge=1)
    queue_keep_failed: int = Field(10_000, ge=0)
    queue_keep_failed_s: int = Field(7 * 24 * 3600, ge=1)
    queue_lock_s: float = Field(30.0, ge=1)
    queue_stalled_check_s: float = Field(30.0, ge=0.5)
    queue_trigger: str = Field(TRIGGER_QUEUE, pattern=QUEUE_NAME_PATTERN)
    queue_node: str = Field(NODE_QUEUE, pattern=QUEUE_NAME_PATTERN)

    # --- connector nodes ---
    connector_sqlite_dirs: Annotated[list[str], NoDecode] = Field(default_factory=list)
    connector_max_rows: int = Field(1000, ge=1, le=100_000)

    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["console", "json"] = "console"

    # --- read side: projections, live events, metrics, diagnostics (docs/observability.md)
    projections_enabled: bool = True
    projector_interval_s: float = Field(1.0, gt=0)
    projector_batch: int | None = Field(None, ge=1, le=100_000)
    projector_lease_s: float = Field(15.0, gt=0)
    socket_enabled: bool = True
    socket_compression: bool = False
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    metrics_enabled: bool = True
    metrics_tenant_label: bool = False
    metrics_token: str = Field("", repr=False)
    metrics_port: int = Field(0, ge=0, le=65535)
    metrics_host: str = "127.0.0.1"
    queue_metrics_interval_s: float = Field(5.0, gt=0)
    loop_lag_threshold_ms: float = Field(250.0, gt=0)
    otel_enabled: bool = False
    otel_endpoint: str = "http://127.0.0.1:4318/v1/traces"

    @field_validator(
        "http_allow_hosts",
        "http_allow_cidrs",
        "connector_sqlite_dirs",
        "cors_origins",
        mode="before",
    )
    @classmethod
    def _comma_list(cls, v: object) -> object:
        if isinstance(v, str):
            return [p.strip() for p in v.split(",") if p.strip()]
        return v

    @field_validator("retention_tenants")
    @classmethod
    def _known_retention_fields(
        cls, v: dict[str, dict[str, float | None]]
    ) -> dict[str, dict[str, float | None]]:
        RetentionPolicies(RetentionPolicy(), v)  # a misspelled field fails at start-up
        return v

    @property
    def database(self) -> str:
        """The database URL in effect."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.home / 'flowmill.db').resolve()}"

    def sandbox_settings(self) -> SandboxSettings:
        """The sandbox's own settings, from the ``FLOWMILL_SANDBOX_*`` variables."""
        return SandboxSettings(
            timeout_s=self.sandbox_timeout_s,
            max_timeout_s=self.sandbox_max_timeout_s,
            memory_mb=self.sandbox_memory_mb,
            max_memory_mb=self.sandbox_max_memory_mb,
            max_output_bytes=self.sandbox_max_output_bytes,
            js_workers=self.sandbox_js_workers,
            js_reserve_workers=self.sandbox_js_reserve_workers,
            nice=self.sandbox_nice,
            bwrap=self.sandbox_bwrap,
            allow_rlimit_only_python=self.sandbox_allow_rlimit_only_python,
            python_executable=self.sandbox_python_executable,
        )

    def quota_defaults(self) -> Quotas:
        """Quotas of a tenant without overrides, from the ``FLOWMILL_TENANT_*`` settings."""
        return Quotas(
            api_requests_per_minute=self.tenant_api_requests_per_minute,
            webhook_requests_per_minute=self.tenant_webhook_requests_per_minute,
            starts_per_minute=self.tenant_starts_per_minute,
            concurrent_executions=self.tenant_concurrent_executions,
            concurrent_steps=self.tenant_concurrent_steps,
            sandbox_concurrency=self.tenant_sandbox_concurrency,
        )

    def retention(self) -> RetentionPolicies:
        """The retention policies, from the ``FLOWMILL_RETENTION_*`` settings.

        Raises:
            ValueError: a tenant's override names no policy field.
        """
        default = RetentionPolicy(
            executions_days=self.retention_executions_days,
            failed_executions_days=self.retention_failed_executions_days,
            webhook_events_days=self.retention_webhook_events_days,
            webhook_bodies_days=self.retention_webhook_bodies_days,
            store_events_days=self.retention_store_events_days,
        )
        return RetentionPolicies(default, self.retention_tenants)

    def keyring(self) -> Keyring | None:
        """The credential keys: from ``secret_keys``, else the embedded key file.

        PostgreSQL deployments must set ``FLOWMILL_SECRET_KEYS`` (every process needs the
        same keys), so there is no file default for them.
        """
        if self.secret_keys.strip():
            return Keyring.parse(self.secret_keys)
        if self.database.startswith("sqlite"):
            return load_or_create_keyring(self.home / "secret.key")
        return None

    def control_settings(self) -> ControlSettings:
        """Limits of the loop, sub_workflow and wait nodes."""
        return ControlSettings(
            max_depth=self.max_child_depth,
            max_iterations=self.loop_max_iterations,
            poll_s=self.control_poll_s,
            drive_s=self.loop_drive_s,
            public_url=self.public_url or f"http://{self.host}:{self.port}",
        )

    def resume_key(self) -> bytes | None:
        """Key of resume URLs, derived from the active credential key (so every process
        of a deployment agrees); ``None`` without keys (then each process makes one, and
        only the process that rendered a URL can check it)."""
        ring = self.keyring()
        if ring is None:
            return None
        return hmac.new(ring.keys[ring.active], b"flowmill resume url", hashlib.sha256).digest()

    @property
    def distributed(self) -> bool:
        """Whether jobs go through Redis (BullMQ) rather than an in-process queue."""
        return bool(self.redis_url)

"""Shared services handed to nodes through their context (ports, not globals)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from flowmill.clock import Clock, SystemClock
from flowmill.engine.templates import ExpressionEvaluator

# Value types of the sandbox, which is a leaf (it imports nothing of the engine); named
# here too, where nodes and the other services have always found them.
from flowmill.sandbox.limits import CodeLimits as CodeLimits
from flowmill.sandbox.limits import CodeResult as CodeResult

if TYPE_CHECKING:
    # annotations only: nodes and test fakes import this module and stay light
    from flowmill.agents.ports import AgentBackend
    from flowmill.credentials.use import CredentialUse
    from flowmill.net.ssrf import Target


@dataclass
class HttpResponse:
    """A response as nodes see it."""

    status: int
    headers: dict[str, str]
    body: bytes
    url: str
    elapsed_ms: float


class HttpClient(Protocol):
    """Outbound HTTP for nodes; the real one enforces the SSRF guard."""

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, Any] | None = None,
        content: bytes | None = None,
        timeout_s: float = 30.0,
        follow_redirects: bool = True,
        max_redirects: int = 5,
        max_response_bytes: int = 10 * 1024 * 1024,
    ) -> HttpResponse:
        """Send a request and read the whole (bounded) response."""
        ...


class CodeRunner(Protocol):
    """Runs untrusted user code in isolation (JavaScript, Python)."""

    async def run(
        self, language: str, code: str, scope: Mapping[str, Any], limits: CodeLimits
    ) -> CodeResult:
        """Run ``code`` with ``scope``'s names bound; return its JSON result.

        Raises:
            NodeError: ``SandboxTimeout``, ``SandboxMemoryExceeded`` or ``SandboxError``.
        """
        ...


class CredentialResolver(Protocol):
    """Opens a tenant's credential (by id or name) for the node that uses it; every
    opening is recorded with ``use`` (who, which node, which execution)."""

    async def resolve(
        self, tenant_id: str, ref: str, use: CredentialUse | None = None
    ) -> tuple[str, dict[str, Any]]:
        """(credential type, secret data).

        Raises:
            CredentialError: No such credential for the tenant, or it does not open.
        """
        ...

    async def access_token(
        self,
        tenant_id: str,
        ref: str,
        use: CredentialUse | None = None,
        *,
        rejected: str | None = None,
    ) -> str:
        """A fresh access token of an ``oauth2`` credential; ``rejected`` is a token the
        service just refused (401), which forces a refresh unless another caller has
        refreshed it already.

        Raises:
            CredentialError: Not an OAuth2 credential, or no token can be had.
        """
        ...


class AddressGuard(Protocol):
    """Vets a host before a non-HTTP connection (SMTP, databases) is opened to it."""

    async def vet_host(self, raw_host: str, port: int) -> Target:
        """Resolve ``raw_host``; check every address against the SSRF policy.

        Raises:
            SsrfBlocked: The host or one of its addresses is refused.
        """
        ...


@dataclass(frozen=True)
class ConnectorSettings:
    """Limits of connector nodes.

    Attributes:
        sqlite_dirs: Directories whose SQLite files ``database_query`` may open (none:
            SQLite URLs are refused, so a tenant cannot read the server's own files).
        max_rows: Rows a ``database_query`` returns at most.
        ssl_context: Certificates trusted by SMTP and database connections (the
            system's by default; tests give a private CA's).
    """

    sqlite_dirs: tuple[str, ...] = ()
    max_rows: int = 1000
    ssl_context: Any = None


class _NoHttp:
    async def request(self, method: str, url: str, **kwargs: Any) -> HttpResponse:
        raise RuntimeError("no HTTP client configured")


@dataclass
class NodeServices:
    """The services nodes may use.

    Attributes:
        http: Outbound HTTP (SSRF-guarded in production).
        expressions: Evaluator of ``{{ }}`` expressions (JS sandbox), if any.
        code: Sandbox for user code, if any.
        credentials: Opens tenants' credentials, if configured.
        network: Vets hosts of non-HTTP connections (the HTTP client's SSRF policy).
        agents: Agent configs, conversation history and LLM clients (agent nodes).
        settings: Limits of the connector nodes.
        clock: Time.
        code_limits: Default and maximum limits for code nodes.
    """

    http: HttpClient = field(default_factory=_NoHttp)
    expressions: ExpressionEvaluator | None = None
    code: CodeRunner | None = None
    credentials: CredentialResolver | None = None
    network: AddressGuard | None = None
    agents: AgentBackend | None = None
    connectors: ConnectorSettings = field(default_factory=lambda: ConnectorSettings())
    clock: Clock = field(default_factory=SystemClock)
    code_limits: CodeLimits = field(default_factory=CodeLimits)
    max_code_limits: CodeLimits = field(
        default_factory=lambda: CodeLimits(
            timeout_s=60.0, memory_mb=1024, max_output_bytes=16 * 1024 * 1024
        )
    )

    @property
    def sandbox_available(self) -> bool:
        """Whether code nodes and expressions can run here."""
        return self.code is not None

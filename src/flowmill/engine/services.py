"""Shared services handed to nodes through their context (ports, not globals)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from flowmill.clock import Clock, SystemClock
from flowmill.engine.templates import ExpressionEvaluator


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


@dataclass(frozen=True)
class CodeLimits:
    """Limits of one sandboxed evaluation."""

    timeout_s: float = 5.0
    memory_mb: int = 128
    max_output_bytes: int = 1024 * 1024


@dataclass
class CodeResult:
    """What sandboxed code returned and printed."""

    value: Any
    logs: list[str] = field(default_factory=list)


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
    """Opens a tenant's named credential for the node that uses it."""

    async def resolve(self, tenant_id: str, name: str) -> tuple[str, dict[str, Any]]:
        """(credential type, secret data).

        Raises:
            CredentialError: No such credential for the tenant, or it does not open.
        """
        ...


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
        clock: Time.
        code_limits: Default and maximum limits for code nodes.
    """

    http: HttpClient = field(default_factory=_NoHttp)
    expressions: ExpressionEvaluator | None = None
    code: CodeRunner | None = None
    credentials: CredentialResolver | None = None
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

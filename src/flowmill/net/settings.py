"""Settings of outbound HTTP (the lead wires them to the app's settings)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from flowmill.net.ssrf import SsrfPolicy

DEFAULT_USER_AGENT = "Flowmill/0.1"


@dataclass(frozen=True)
class HttpSettings:
    """Limits and the SSRF allow-list of outbound HTTP.

    Attributes:
        allow_hosts: Host names reachable whatever they resolve to, e.g.
            ``("crm.internal", "*.svc.cluster.local")``. Cloud metadata stays blocked.
        allow_cidrs: Non-public networks that may be reached, e.g. ``("10.0.0.0/8",)``.
        allowed_ports: When set, the only ports URLs may use (``(80, 443)``).
        allow_list_redirects: Whether a redirect may lead to an allow-listed (internal)
            destination other than the origin first requested. Off: a remote server
            cannot bounce a request into the internal network.
        max_redirects: Cap on redirects followed per request.
        max_response_bytes: Cap on a response body, after decompression.
        default_timeout_s: Whole-request time limit when the caller gives none.
        max_timeout_s: Cap on any caller's time limit.
        user_agent: ``User-Agent`` sent unless the caller sets one.
        max_connections: Open connections at most (a request waits for a slot).
        max_keepalive_connections: Idle connections kept for reuse.
        keepalive_expiry_s: How long an idle connection is kept.
    """

    allow_hosts: tuple[str, ...] = ()
    allow_cidrs: tuple[str, ...] = ()
    allowed_ports: tuple[int, ...] | None = None
    allow_list_redirects: bool = False
    max_redirects: int = 5
    max_response_bytes: int = 10 * 1024 * 1024
    default_timeout_s: float = 30.0
    max_timeout_s: float = 300.0
    user_agent: str = DEFAULT_USER_AGENT
    max_connections: int = 100
    max_keepalive_connections: int = 20
    keepalive_expiry_s: float = 5.0

    def __post_init__(self) -> None:
        # Lists from a settings loader become tuples, so the settings stay hashable.
        object.__setattr__(self, "allow_hosts", _tuple(self.allow_hosts))
        object.__setattr__(self, "allow_cidrs", _tuple(self.allow_cidrs))
        if self.allowed_ports is not None:
            object.__setattr__(self, "allowed_ports", tuple(self.allowed_ports))
        if self.max_redirects < 0:
            raise ValueError("max_redirects must be 0 or more")
        if self.max_response_bytes <= 0:
            raise ValueError("max_response_bytes must be positive")
        if not 0 < self.default_timeout_s <= self.max_timeout_s:
            raise ValueError("need 0 < default_timeout_s <= max_timeout_s")
        if self.max_connections <= 0 or self.max_keepalive_connections < 0:
            raise ValueError("connection limits must be positive")
        self.policy()  # reject a bad allow-list now, not at the first request

    def policy(self) -> SsrfPolicy:
        """The SSRF policy these settings describe."""
        return SsrfPolicy.build(self.allow_hosts, self.allow_cidrs, self.allowed_ports)

    def strict_policy(self) -> SsrfPolicy:
        """The policy for redirects that leave the first origin (no allow-list)."""
        if self.allow_list_redirects:
            return self.policy()
        return SsrfPolicy.build((), (), self.allowed_ports)


def _tuple(values: Iterable[str] | str) -> tuple[str, ...]:
    if isinstance(values, str):  # "a,b" from an environment variable
        values = values.split(",")
    return tuple(v.strip() for v in values if v.strip())

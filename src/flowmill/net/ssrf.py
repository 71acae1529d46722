"""The SSRF guard: which URLs and addresses outbound HTTP may reach.

Two layers, both here:

* :meth:`SsrfPolicy.check_url` — static checks of a URL (scheme, userinfo, host shape,
  port, literal addresses). No network.
* :meth:`SsrfGuard.vet_host` — resolves a host through a :class:`Resolver` and checks
  *every* address. The addresses it returns are the only ones a connection may use
  (see :mod:`flowmill.net.transport`), so a second DNS answer can never sneak in.

The allow-list (``allow_hosts``, ``allow_cidrs``) is for self-hosted installations
that call their own internal services.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import httpx

from flowmill.net.addresses import (
    IPAddress,
    IPNetwork,
    blocked_reason,
    is_metadata,
    parse_ip,
    without_scope,
)
from flowmill.net.errors import HttpConnectionError, InvalidUrl, OutboundHttpError, SsrfBlocked

ALLOWED_SCHEMES = frozenset({"http", "https"})
DEFAULT_PORTS = {"http": 80, "https": 443}

#: Names that mean "this machine" or a metadata service whatever DNS says (RFC 6761).
_DENIED_NAMES = frozenset({"localhost", "metadata.google.internal", "metadata.goog"})
_DENIED_SUFFIXES = (".localhost",)

_LABEL = re.compile(r"^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$")
# What inet_aton would read as a number: decimal, octal (leading 0) or hex (0x).
_NUMERIC_LABEL = re.compile(r"^(?:0x[0-9a-f]*|[0-9]+)$")
_CANONICAL_IPV4 = re.compile(r"^(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}"
                             r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])$")  # fmt: skip


class Resolver(Protocol):
    """Resolves a host name to addresses (a port, so tests and DNS64 setups can fake it)."""

    async def resolve(self, host: str, port: int) -> Sequence[IPAddress]:
        """Every address ``host`` resolves to, in preference order.

        Raises:
            OSError: Resolution failed (``socket.gaierror`` included).
        """
        ...


class SystemResolver:
    """The operating system's resolver, through ``loop.getaddrinfo``."""

    async def resolve(self, host: str, port: int) -> Sequence[IPAddress]:
        """Every address of ``host`` (IPv4 and IPv6), duplicates removed."""
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
        )
        seen: dict[IPAddress, None] = {}
        for _family, _type, _proto, _canon, sockaddr in infos:
            ip = parse_ip(str(sockaddr[0]))
            if ip is not None:
                seen.setdefault(ip, None)
        return list(seen)


@dataclass(frozen=True)
class Host:
    """A host as the guard sees it.

    Attributes:
        name: Lower-case ASCII (IDNA) name without a trailing dot, or the address text.
        ip: The address when the host is an IP literal.
    """

    name: str
    ip: IPAddress | None = None


@dataclass(frozen=True)
class Target:
    """A vetted destination: connect only to ``addresses``, in order."""

    host: Host
    port: int
    addresses: tuple[IPAddress, ...]


def normalise_host(raw: str) -> Host:
    """Check and normalise a URL host (as httpx parsed it: lower case, IDNA-encoded).

    Numeric forms other than a canonical dotted quad (``2130706433``, ``0x7f.1``,
    ``017700000001``, ``127.1``) are refused: resolvers read them as addresses, and
    each library reads them differently.

    Raises:
        InvalidUrl: There is no host.
        SsrfBlocked: The host is not a plain DNS name or IP address.
    """
    host = raw.strip("[]").lower()
    if not host:
        raise InvalidUrl("the URL has no host")
    if ":" in host:
        ip = parse_ip(host)
        if ip is None or "%" in host:
            raise SsrfBlocked(f"invalid IPv6 host {raw!r}", reason="invalid host")
        return Host(str(ip), ip)
    if _CANONICAL_IPV4.match(host):
        ip = parse_ip(host)
        assert ip is not None
        return Host(host, ip)
    name = host[:-1] if host.endswith(".") else host
    labels = name.split(".")
    if len(name) > 253 or not all(_LABEL.match(label) for label in labels):
        raise SsrfBlocked(f"invalid host name {raw!r}", reason="invalid host")
    if _NUMERIC_LABEL.match(labels[-1]):
        raise SsrfBlocked(
            f"host {raw!r} is a numeric address in a non-standard form",
            reason="ambiguous numeric host",
        )
    return Host(name)


def _host_pattern(entry: str) -> str:
    """An allow-list host entry normalised like URL hosts (``*.`` kept)."""
    wildcard = entry.startswith("*.")
    body = entry[2:] if wildcard else entry
    if any(c in body for c in ":/@?#*"):
        raise ValueError(f"allow-list host {entry!r} must be a bare host name (no port or path)")
    if wildcard and "." not in body.rstrip("."):
        # "*.com" would trust every name anyone can register under it.
        raise ValueError(f"allow-list wildcard {entry!r} is too broad; use *.<domain>.<tld>")
    try:
        encoded = httpx.URL(f"http://{body}/").raw_host.decode("ascii")
        name = normalise_host(encoded).name
    except (httpx.InvalidURL, UnicodeError, OutboundHttpError) as e:
        raise ValueError(f"invalid allow-list host {entry!r}") from e
    return f"*.{name}" if wildcard else name


@dataclass(frozen=True)
class SsrfPolicy:
    """What may be reached: public addresses, plus an allow-list.

    Attributes:
        allow_hosts: Host names trusted whatever they resolve to (``*.corp.example``
            matches subdomains). Metadata addresses stay blocked for them.
        allow_cidrs: Networks allowed although not public (``10.0.0.0/8``). A network
            covering a metadata address does not allow it; a ``/32`` (``/128``) naming
            it exactly does.
        allowed_ports: When set, the only ports URLs may use.
    """

    allow_hosts: frozenset[str] = frozenset()
    allow_cidrs: tuple[IPNetwork, ...] = ()
    allowed_ports: frozenset[int] | None = None
    _exact: frozenset[IPAddress] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        exact = {n.network_address for n in self.allow_cidrs if n.num_addresses == 1}
        object.__setattr__(self, "_exact", frozenset(exact))

    @classmethod
    def build(
        cls,
        allow_hosts: Iterable[str] = (),
        allow_cidrs: Iterable[str] = (),
        allowed_ports: Iterable[int] | None = None,
    ) -> SsrfPolicy:
        """A policy from settings text; IP addresses in ``allow_hosts`` count as CIDRs.

        Raises:
            ValueError: An entry is not a host name, address or network.
        """
        hosts: set[str] = set()
        cidrs: list[IPNetwork] = []
        for entry in allow_hosts:
            entry = entry.strip().lower()
            ip = parse_ip(entry.strip("[]"))
            if ip is not None:
                cidrs.append(ipaddress_network(str(ip)))
            elif entry in ("*", "*.") or not entry:
                raise ValueError(f"allow-list host {entry!r} would allow everything")
            else:
                hosts.add(_host_pattern(entry))
        for text in allow_cidrs:
            try:
                cidrs.append(ipaddress_network(text.strip()))
            except ValueError as e:
                raise ValueError(f"invalid allow-list CIDR {text!r}: {e}") from e
        ports = None
        if allowed_ports is not None:
            ports = frozenset(allowed_ports)
            if not all(0 < p < 65536 for p in ports):
                raise ValueError(f"invalid port in {sorted(ports)}")
        return cls(frozenset(hosts), tuple(cidrs), ports)

    def host_allowed(self, host: Host) -> bool:
        """Whether ``host`` is on the allow-list by name."""
        name = host.name
        if name in self.allow_hosts:
            return True
        parts = name.split(".")
        return any(f"*.{'.'.join(parts[i:])}" in self.allow_hosts for i in range(1, len(parts)))

    def address_problem(self, ip: IPAddress, *, host_allowed: bool = False) -> str | None:
        """Why a connection to ``ip`` is refused, or ``None`` when it may proceed."""
        plain = without_scope(ip)
        if plain in self._exact:
            return None
        if is_metadata(plain):
            return "cloud metadata"
        if host_allowed or any(plain in net for net in self.allow_cidrs):
            return None
        return blocked_reason(plain)

    def check_url(self, url: str | httpx.URL) -> httpx.URL:
        """Static checks of ``url``; no DNS. Returns it parsed.

        Raises:
            InvalidUrl: Not a URL, or no host.
            SsrfBlocked: Scheme, userinfo, host form, port or a literal address is refused.
        """
        try:
            parsed = url if isinstance(url, httpx.URL) else httpx.URL(url.strip())
        except (httpx.InvalidURL, UnicodeError, TypeError) as e:
            raise InvalidUrl(f"invalid URL: {e}") from e
        scheme = parsed.scheme
        if scheme not in ALLOWED_SCHEMES:
            raise SsrfBlocked(
                f"scheme {scheme or '(none)'!r} is not allowed; use http or https",
                reason="scheme",
            )
        if parsed.userinfo:
            # Parsers disagree on where userinfo ends (``a@b@c``, ``a\@b``); put
            # credentials in an Authorization header instead.
            raise SsrfBlocked(
                "credentials in the URL are not allowed; send an Authorization header",
                reason="userinfo",
            )
        host = normalise_host(parsed.raw_host.decode("ascii"))
        self.check_port(host, port_of(parsed))
        self.check_name(host)
        if host.ip is not None:
            problem = self.address_problem(host.ip)
            if problem:
                raise SsrfBlocked(
                    f"address {host.name} is {problem}{_ALLOW_HINT}", reason=problem, host=host.name
                )
        return parsed

    def check_port(self, host: Host, port: int) -> None:
        """Refuse out-of-range ports and, when configured, ports not listed."""
        if not 0 < port < 65536:
            raise SsrfBlocked(f"invalid port {port}", reason="port")
        if self.allowed_ports is not None and port not in self.allowed_ports:
            raise SsrfBlocked(f"port {port} is not allowed", reason="port", host=host.name)

    def check_name(self, host: Host) -> None:
        """Refuse names that always mean this machine or a metadata service."""
        if host.ip is not None or self.host_allowed(host):
            return
        if host.name in _DENIED_NAMES or host.name.endswith(_DENIED_SUFFIXES):
            raise SsrfBlocked(
                f"host {host.name!r} is not allowed{_ALLOW_HINT}",
                reason="denied name",
                host=host.name,
            )


# Self-hosted users calling their own services need to know the way out.
_ALLOW_HINT = (
    "; to let the HTTP node call internal hosts, list them in FLOWMILL_HTTP_ALLOW_HOSTS "
    "(or their networks in FLOWMILL_HTTP_ALLOW_CIDRS)"
)


def port_of(url: httpx.URL) -> int:
    """The port a URL connects to (its scheme's default when it names none)."""
    return url.port if url.port is not None else DEFAULT_PORTS.get(url.scheme, 0)


def ipaddress_network(text: str) -> IPNetwork:
    """A network from CIDR or address text (host bits must be zero)."""
    return ipaddress.ip_network(text, strict=True)


@dataclass
class SsrfGuard:
    """The policy plus a resolver: vets hosts right before a connection is opened."""

    policy: SsrfPolicy = field(default_factory=SsrfPolicy)
    resolver: Resolver = field(default_factory=SystemResolver)

    async def vet(self, url: str | httpx.URL) -> Target:
        """Check ``url`` statically, resolve its host and check every address."""
        parsed = self.policy.check_url(url)
        return await self.vet_host(parsed.raw_host.decode("ascii"), port_of(parsed))

    async def vet_host(self, raw_host: str, port: int) -> Target:
        """Resolve ``raw_host`` and check every address; return them, pinned.

        Any refused address refuses the host: a name with one internal address among
        public ones is how rebinding attacks start.

        Raises:
            SsrfBlocked: The host or one of its addresses is refused.
            HttpConnectionError: The name does not resolve.
        """
        host = normalise_host(raw_host)
        self.policy.check_port(host, port)
        self.policy.check_name(host)
        allowed_name = host.ip is None and self.policy.host_allowed(host)
        if host.ip is not None:
            addresses: Sequence[IPAddress] = (host.ip,)
        else:
            addresses = await self._resolve(raw_host, port, host)
        for ip in addresses:
            problem = self.policy.address_problem(ip, host_allowed=allowed_name)
            if problem:
                # The address is not named for resolved hosts: errors must not turn
                # the guard into a way to map internal DNS.
                shown = ip if host.ip is not None else None
                raise SsrfBlocked(
                    (
                        f"host {host.name!r} resolves to a {problem} address"
                        if shown is None
                        else f"address {shown} is {problem}"
                    )
                    + _ALLOW_HINT,
                    reason=problem,
                    host=host.name,
                )
        return Target(host, port, tuple(addresses))

    async def _resolve(self, raw_host: str, port: int, host: Host) -> Sequence[IPAddress]:
        try:
            addresses = await self.resolver.resolve(raw_host, port)
        except socket.gaierror as e:
            permanent = e.errno in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", None))
            raise HttpConnectionError(
                f"cannot resolve {host.name!r}: {e.strerror or e}",
                retriable=not permanent,
                host=host.name,
            ) from e
        except OSError as e:
            raise HttpConnectionError(f"cannot resolve {host.name!r}: {e}", host=host.name) from e
        if not addresses:
            raise HttpConnectionError(f"{host.name!r} has no addresses", host=host.name)
        return addresses

"""Which IP addresses outbound HTTP may reach: a pure classification.

The tables follow the IANA special-purpose address registries. IPv6 is allowed only
inside global unicast (``2000::/3``); addresses that embed an IPv4 address (mapped,
compatible, NAT64, 6to4) are judged by the IPv4 address they lead to, because that is
where the packets end up.
"""

from __future__ import annotations

import ipaddress
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network

#: Cloud instance-metadata and platform endpoints. Blocked even when an allowed CIDR
#: covers them; only an allow-list entry naming the exact address lets them through.
METADATA_ADDRESSES: frozenset[IPAddress] = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean, Oracle...
        "169.254.170.2",  # AWS ECS task metadata
        "169.254.170.23",  # AWS EKS pod identity agent
        "fd00:ec2::254",  # AWS IMDS over IPv6
        "fd00:ec2::23",  # AWS EKS pod identity agent over IPv6
        "100.100.100.200",  # Alibaba Cloud
        "168.63.129.16",  # Azure WireServer (a public address, hence listed)
        "192.0.0.192",  # Oracle Cloud
    )
)


def _table(*rows: tuple[str, str]) -> tuple[tuple[IPNetwork, str], ...]:
    return tuple((ipaddress.ip_network(cidr), reason) for cidr, reason in rows)


# Order matters where ranges nest: the first match names the reason.
_IPV4_BLOCKED = _table(
    ("0.0.0.0/8", "unspecified"),
    ("10.0.0.0/8", "private"),
    ("100.64.0.0/10", "shared address space (CGNAT)"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local"),
    ("172.16.0.0/12", "private"),
    ("192.0.0.0/24", "IETF protocol assignments"),
    ("192.0.2.0/24", "documentation"),
    ("192.88.99.0/24", "6to4 relay anycast"),
    ("192.168.0.0/16", "private"),
    ("198.18.0.0/15", "benchmarking"),
    ("198.51.100.0/24", "documentation"),
    ("203.0.113.0/24", "documentation"),
    ("224.0.0.0/4", "multicast"),
    ("255.255.255.255/32", "broadcast"),
    ("240.0.0.0/4", "reserved"),
)

_IPV6_BLOCKED = _table(
    ("::/128", "unspecified"),
    ("::1/128", "loopback"),
    ("::ffff:0:0:0/96", "IPv4-translated"),
    ("64:ff9b:1::/48", "local-use NAT64"),
    ("100::/64", "discard-only"),
    ("2001:db8::/32", "documentation"),
    ("2001::/23", "IETF protocol assignments (Teredo, ORCHID...)"),
    ("3fff::/20", "documentation"),
    ("5f00::/16", "segment routing"),
    ("fc00::/7", "unique-local"),
    ("fe80::/10", "link-local"),
    ("fec0::/10", "site-local"),
    ("ff00::/8", "multicast"),
)

_GLOBAL_UNICAST = IPv6Network("2000::/3")
_IPV4_COMPATIBLE = IPv6Network("::/96")
_NAT64 = IPv6Network("64:ff9b::/96")


def parse_ip(text: str) -> IPAddress | None:
    """``text`` as an IP address, or ``None`` when it is not one (zone ids are kept)."""
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def embedded_ipv4(ip: IPv6Address) -> tuple[IPv4Address, str] | None:
    """The IPv4 address an IPv6 address forwards to, and the form's name, if any."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped, "IPv4-mapped"
    if ip in _NAT64:
        return IPv4Address(int(ip) & 0xFFFFFFFF), "NAT64"
    if ip.sixtofour is not None:
        return ip.sixtofour, "6to4"
    if ip in _IPV4_COMPATIBLE and int(ip) > 1:  # :: and ::1 are themselves, not IPv4
        return IPv4Address(int(ip) & 0xFFFFFFFF), "IPv4-compatible"
    return None


def blocked_reason(ip: IPAddress) -> str | None:
    """Why ``ip`` is not a public address outbound HTTP may reach; ``None`` if it is.

    Examples:
        >>> blocked_reason(ipaddress.ip_address("10.1.2.3"))
        'private'
        >>> blocked_reason(ipaddress.ip_address("::ffff:127.0.0.1"))
        'IPv4-mapped loopback'
        >>> blocked_reason(ipaddress.ip_address("93.184.215.14")) is None
        True
    """
    ip = without_scope(ip)
    if ip in METADATA_ADDRESSES:
        return "cloud metadata"
    if isinstance(ip, IPv6Address):
        embedded = embedded_ipv4(ip)
        if embedded is not None:
            inner, form = embedded
            reason = blocked_reason(inner)
            return f"{form} {reason}" if reason else None
        for net, reason in _IPV6_BLOCKED:
            if ip in net:
                return reason
        if ip not in _GLOBAL_UNICAST:
            return "reserved"
    else:
        for net, reason in _IPV4_BLOCKED:
            if ip in net:
                return reason
    # Belt and braces: the standard library's view, for anything the tables miss.
    if not ip.is_global or ip.is_multicast or ip.is_reserved:
        return "not globally routable"
    return None


def is_metadata(ip: IPAddress) -> bool:
    """Whether ``ip`` is a cloud metadata endpoint, directly or through an IPv4 form."""
    ip = without_scope(ip)
    if ip in METADATA_ADDRESSES:
        return True
    if isinstance(ip, IPv6Address):
        embedded = embedded_ipv4(ip)
        return embedded is not None and embedded[0] in METADATA_ADDRESSES
    return False


def without_scope(ip: IPAddress) -> IPAddress:
    """``ip`` without an IPv6 zone id (``fe80::1%eth0`` → ``fe80::1``)."""
    if isinstance(ip, IPv6Address) and ip.scope_id:
        return IPv6Address(int(ip))
    return ip

"""The address classification behind the SSRF guard: pure, table-driven."""

from __future__ import annotations

import ipaddress

import pytest

from flowmill.net.addresses import blocked_reason, embedded_ipv4, is_metadata

BLOCKED = [
    ("0.0.0.0", "unspecified"),
    ("0.1.2.3", "unspecified"),
    ("10.0.0.1", "private"),
    ("10.255.255.255", "private"),
    ("100.64.0.1", "shared address space (CGNAT)"),
    ("100.127.255.254", "shared address space (CGNAT)"),
    ("127.0.0.1", "loopback"),
    ("127.255.255.254", "loopback"),
    ("169.254.0.1", "link-local"),
    ("172.16.0.1", "private"),
    ("172.31.255.255", "private"),
    ("192.0.0.8", "IETF protocol assignments"),
    ("192.0.2.10", "documentation"),
    ("192.88.99.1", "6to4 relay anycast"),
    ("192.168.1.1", "private"),
    ("198.18.0.1", "benchmarking"),
    ("198.51.100.7", "documentation"),
    ("203.0.113.9", "documentation"),
    ("224.0.0.1", "multicast"),
    ("239.255.255.250", "multicast"),
    ("240.0.0.1", "reserved"),
    ("255.255.255.255", "broadcast"),
    # cloud metadata, including the one that is a public address
    ("169.254.169.254", "cloud metadata"),
    ("169.254.170.2", "cloud metadata"),
    ("100.100.100.200", "cloud metadata"),
    ("168.63.129.16", "cloud metadata"),
    ("192.0.0.192", "cloud metadata"),
    ("fd00:ec2::254", "cloud metadata"),
    # IPv6
    ("::", "unspecified"),
    ("::1", "loopback"),
    ("fe80::1", "link-local"),
    ("fe80::1%eth0", "link-local"),
    ("febf:ffff::1", "link-local"),
    ("fec0::1", "site-local"),
    ("fc00::1", "unique-local"),
    ("fd12:3456::1", "unique-local"),
    ("ff02::1", "multicast"),
    ("ff0e::1", "multicast"),
    ("100::1", "discard-only"),
    ("2001:db8::1", "documentation"),
    ("3fff::1", "documentation"),
    ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "IETF protocol assignments (Teredo, ORCHID...)"),
    ("64:ff9b:1::1", "local-use NAT64"),
    ("::ffff:0:7f00:1", "IPv4-translated"),
    ("4000::1", "reserved"),  # outside global unicast 2000::/3
    ("1::1", "reserved"),
    # IPv6 forms that lead to IPv4 addresses are judged by the IPv4 address
    ("::ffff:127.0.0.1", "IPv4-mapped loopback"),
    ("::ffff:10.1.2.3", "IPv4-mapped private"),
    ("::ffff:169.254.169.254", "IPv4-mapped cloud metadata"),
    ("::ffff:0.0.0.0", "IPv4-mapped unspecified"),
    ("::127.0.0.1", "IPv4-compatible loopback"),
    ("::192.168.0.1", "IPv4-compatible private"),
    ("64:ff9b::127.0.0.1", "NAT64 loopback"),
    ("64:ff9b::10.0.0.1", "NAT64 private"),
    ("64:ff9b::a9fe:a9fe", "NAT64 cloud metadata"),
    ("2002:7f00:1::1", "6to4 loopback"),
    ("2002:c0a8:101::", "6to4 private"),
    ("2002:a9fe:a9fe::", "6to4 cloud metadata"),
]

PUBLIC = [
    "1.1.1.1",
    "8.8.8.8",
    "93.184.215.14",
    "100.63.255.255",  # just below CGNAT
    "100.128.0.0",  # just above CGNAT
    "172.15.255.255",
    "172.32.0.0",
    "169.253.255.255",
    "223.255.255.255",
    "2606:4700:4700::1111",
    "2a00:1450:4001:81c::200e",
    "::ffff:8.8.8.8",  # mapped public: it leads to a public address
    "64:ff9b::5db8:d70e",  # NAT64 of a public address (DNS64 networks)
    "2002:808:808::1",  # 6to4 of a public address
]


@pytest.mark.parametrize(("address", "reason"), BLOCKED)
def test_ssrf_addresses_blocked_addresses_name_their_reason(address: str, reason: str) -> None:
    assert blocked_reason(ipaddress.ip_address(address)) == reason


@pytest.mark.parametrize("address", PUBLIC)
def test_ssrf_addresses_public_addresses_pass(address: str) -> None:
    assert blocked_reason(ipaddress.ip_address(address)) is None


def test_ssrf_addresses_every_ipv4_loopback_and_private_address_is_blocked_at_the_edges() -> None:
    for cidr in ("127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10"):
        net = ipaddress.ip_network(cidr)
        for ip in (net.network_address, net.broadcast_address, net.network_address + 1):
            assert blocked_reason(ip) is not None, ip
            mapped = ipaddress.ip_address(f"::ffff:{ip}")
            assert blocked_reason(mapped) is not None, mapped


def test_ssrf_addresses_embedded_ipv4_forms() -> None:
    v6 = ipaddress.IPv6Address
    assert embedded_ipv4(v6("::ffff:1.2.3.4")) == (ipaddress.IPv4Address("1.2.3.4"), "IPv4-mapped")
    assert embedded_ipv4(v6("64:ff9b::102:304")) == (ipaddress.IPv4Address("1.2.3.4"), "NAT64")
    assert embedded_ipv4(v6("2002:102:304::")) == (ipaddress.IPv4Address("1.2.3.4"), "6to4")
    assert embedded_ipv4(v6("::1")) is None
    assert embedded_ipv4(v6("::")) is None
    assert embedded_ipv4(v6("2606:4700::1")) is None


def test_ssrf_addresses_metadata_detection_sees_through_ipv6_forms() -> None:
    for text in (
        "169.254.169.254",
        "::ffff:169.254.169.254",
        "64:ff9b::a9fe:a9fe",
        "fd00:ec2::254",
    ):
        assert is_metadata(ipaddress.ip_address(text)), text
    assert not is_metadata(ipaddress.ip_address("169.254.169.253"))

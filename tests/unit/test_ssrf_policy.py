"""The SSRF policy and guard with a fake resolver: attack URLs fail, real ones pass."""

from __future__ import annotations

import ipaddress
import socket

import pytest

from flowmill.net.errors import HttpConnectionError, OutboundHttpError, SsrfBlocked
from flowmill.net.settings import HttpSettings
from flowmill.net.ssrf import SsrfGuard, SsrfPolicy
from flowmill.testing import FakeResolver
from flowmill.testkit.dns import Answer

DNS: dict[str, Answer] = {
    "example.com": ["93.184.215.14"],
    "api.example.com": ["2606:2800:220:1:248:1893:25c8:1946", "93.184.215.14"],
    "xn--bcher-kva.example": ["93.184.215.14"],
    "under_score.example.com": ["93.184.215.14"],
    "1password.com": ["93.184.215.14"],
    "nat64-public.test": ["64:ff9b::5db8:d70e"],
    "mapped-public.test": ["::ffff:8.8.8.8"],
    # hostile answers
    "internal.test": ["10.0.0.5"],
    "mixed.test": ["93.184.215.14", "10.0.0.5"],
    "mixed6.test": ["2606:4700::1", "::1"],
    "loop.test": ["127.0.0.1"],
    "v6loop.test": ["::1"],
    "mapped.test": ["::ffff:127.0.0.1"],
    "compat.test": ["::127.0.0.1"],
    "meta.test": ["169.254.169.254"],
    "meta6.test": ["fd00:ec2::254"],
    "alibaba.test": ["100.100.100.200"],
    "nat64.test": ["64:ff9b::c0a8:101"],
    "sixtofour.test": ["2002:c0a8:101::1"],
    "cgnat.test": ["100.64.1.1"],
    "linklocal6.test": ["fe80::1%eth0"],
    "ula.test": ["fd12::1"],
    "zero.test": ["0.0.0.0"],
    "zero6.test": ["::"],
    "bcast.test": ["255.255.255.255"],
    "multicast.test": ["239.1.2.3"],
    "teredo.test": ["2001:0:4136:e378:8000:63bf:3fff:fdd2"],
    "a.corp.test": ["10.1.0.1"],
    "a.b.corp.test": ["10.1.0.2"],
    "corp.test": ["10.1.0.3"],
    "evilcorp.test": ["10.1.0.4"],
    "localhost": ["127.0.0.1"],
    "metadata.google.internal": ["169.254.169.254"],
    "sneaky-meta.corp.test": ["169.254.169.254"],
}


def guard(**settings: object) -> SsrfGuard:
    return SsrfGuard(HttpSettings(**settings).policy(), FakeResolver(DNS))  # type: ignore[arg-type]


ATTACKS = [
    # literal internal addresses
    "http://127.0.0.1/",
    "http://127.0.0.1:8080/admin",
    "http://127.255.255.254/",
    "http://0.0.0.0/",
    "http://10.0.0.1/",
    "http://172.16.5.4/",
    "http://192.168.1.1/",
    "http://100.64.0.1/",
    "http://169.254.169.254/latest/meta-data/",
    "http://169.254.1.1/",
    "http://224.0.0.1/",
    "http://255.255.255.255/",
    "http://240.0.0.1/",
    "http://100.100.100.200/latest/meta-data/",
    "http://168.63.129.16/machine",
    "http://192.0.0.192/",
    # IPv6 and IPv6 wrappers of IPv4
    "http://[::1]/",
    "http://[::]/",
    "http://[0:0:0:0:0:0:0:1]/",
    "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:7f00:1]/",
    "http://[0:0:0:0:0:ffff:127.0.0.1]/",
    "http://[::ffff:169.254.169.254]/",
    "http://[::127.0.0.1]/",
    "http://[64:ff9b::10.0.0.1]/",
    "http://[64:ff9b::a9fe:a9fe]/",
    "http://[2002:7f00:1::]/",
    "http://[2002:a9fe:a9fe::1]/",
    "http://[fe80::1]/",
    "http://[fe80::1%25eth0]/",
    "http://[fc00::1]/",
    "http://[fd00:ec2::254]/latest/meta-data/",
    "http://[ff02::1]/",
    "http://[2001:db8::1]/",
    "http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/",
    "http://[::ffff:0:7f00:1]/",
    # numeric forms resolvers read as addresses
    "http://2130706433/",
    "http://0x7f000001/",
    "http://0x7f.1/",
    "http://0x7f.0x0.0x0.0x1/",
    "http://017700000001/",
    "http://0177.0.0.1/",
    "http://0177.0000.0000.0001/",
    "http://127.1/",
    "http://127.0.1/",
    "http://0/",
    "http://127.0.0.1./",
    "http://127.000.000.001/",
    "http://3232235777/",  # 192.168.1.1
    "http://1.2.3.4.5/",
    "http://example.0x10/",
    # unicode look-alikes
    "http://\uff11\uff12\uff17.\uff10.\uff10.\uff11/",  # fullwidth digits
    "http://127。0。0。1/",
    "http://ⓛⓞⓒⓐⓛⓗⓞⓢⓣ/",
    # names that mean this machine or metadata
    "http://localhost/",
    "http://LOCALHOST:8080/",
    "http://localhost./",
    "http://foo.localhost/",
    "http://metadata.google.internal/computeMetadata/v1/",
    # userinfo confusion
    "http://evil.com@127.0.0.1/",
    "http://127.0.0.1@example.com/",
    "http://user:pass@example.com/",
    "http://evil.com\\@127.0.0.1/",
    "http://example.com%2f@127.0.0.1/",
    "http://a@b@example.com/",
    # schemes
    "file:///etc/passwd",
    "gopher://127.0.0.1:6379/_INFO",
    "ftp://example.com/",
    "dict://127.0.0.1:11211/stats",
    "ldap://example.com/",
    "ws://example.com/",
    "javascript:alert(1)",
    "data:text/plain,hi",
    "//example.com/x",
    "example.com",
    # ports and malformed hosts
    "http://example.com:0/",
    "http://example.com:65536/",
    "http://example.com:99999/",
    "http://example.com:-1/",
    "http://exa%2fmple.com/",
    "http://%31%32%37.0.0.1/",
    "http:///path",
    "http://[::1/",
    "http://exa mple.com/",
    "http://example.com\r\n.evil/",
    # names whose DNS answers are internal
    "http://internal.test/",
    "http://mixed.test/",
    "http://mixed6.test/",
    "http://loop.test/",
    "http://v6loop.test/",
    "http://mapped.test/",
    "http://compat.test/",
    "http://meta.test/",
    "http://meta6.test/",
    "http://alibaba.test/",
    "http://nat64.test/",
    "http://sixtofour.test/",
    "http://cgnat.test/",
    "http://linklocal6.test/",
    "http://ula.test/",
    "http://zero.test/",
    "http://zero6.test/",
    "http://bcast.test/",
    "http://multicast.test/",
    "http://teredo.test/",
]

LEGIT = [
    ("https://example.com/", ["93.184.215.14"]),
    ("HTTPS://EXAMPLE.COM:443/path?q=1#frag", ["93.184.215.14"]),
    ("http://example.com./", ["93.184.215.14"]),
    ("http://api.example.com:8080/x?y=1", ["2606:2800:220:1:248:1893:25c8:1946", "93.184.215.14"]),
    ("https://bücher.example/", ["93.184.215.14"]),
    ("https://xn--bcher-kva.example/", ["93.184.215.14"]),
    ("http://under_score.example.com/", ["93.184.215.14"]),
    ("http://1password.com/", ["93.184.215.14"]),
    ("http://93.184.215.14/", ["93.184.215.14"]),
    ("http://[2606:4700:4700::1111]:8443/", ["2606:4700:4700::1111"]),
    ("http://[::ffff:8.8.8.8]/", ["::ffff:8.8.8.8"]),
    ("http://nat64-public.test/", ["64:ff9b::5db8:d70e"]),
    ("http://mapped-public.test/", ["::ffff:8.8.8.8"]),
]


@pytest.mark.parametrize("url", ATTACKS)
async def test_ssrf_policy_attack_urls_are_refused(url: str) -> None:
    with pytest.raises(OutboundHttpError) as info:
        await guard().vet(url)
    assert info.value.retriable is False
    assert info.value.type in ("SsrfBlocked", "InvalidUrl")


@pytest.mark.parametrize(("url", "addresses"), LEGIT)
async def test_ssrf_policy_public_urls_pass_and_pin_every_address(
    url: str, addresses: list[str]
) -> None:
    target = await guard().vet(url)
    assert list(target.addresses) == [ipaddress.ip_address(a) for a in addresses]


async def test_ssrf_policy_literal_addresses_are_not_resolved() -> None:
    g = guard()
    await g.vet("http://93.184.215.14/")
    with pytest.raises(SsrfBlocked):
        await g.vet("http://10.0.0.1/")
    assert g.resolver.calls == []  # type: ignore[attr-defined]


async def test_ssrf_policy_the_resolver_gets_the_idna_name() -> None:
    g = guard()
    await g.vet("https://BÜCHER.example/")
    assert g.resolver.calls == ["xn--bcher-kva.example"]  # type: ignore[attr-defined]


async def test_ssrf_policy_errors_do_not_reveal_resolved_internal_addresses() -> None:
    with pytest.raises(SsrfBlocked) as info:
        await guard().vet("http://internal.test/")
    assert "10.0.0.5" not in str(info.value)
    assert "10.0.0.5" not in repr(info.value.details)
    assert info.value.details == {"reason": "private", "host": "internal.test"}


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8080/", "http://localhost/", "http://internal.test/"]
)
async def test_ssrf_policy_refusal_names_the_allow_list_settings(url: str) -> None:
    with pytest.raises(SsrfBlocked) as info:
        await guard().vet(url)
    assert "FLOWMILL_HTTP_ALLOW_HOSTS" in str(info.value)
    assert "FLOWMILL_HTTP_ALLOW_CIDRS" in str(info.value)


async def test_ssrf_policy_one_internal_address_among_public_ones_refuses_the_host() -> None:
    with pytest.raises(SsrfBlocked, match="private"):
        await guard().vet("http://mixed.test/")


# --- allow-list -------------------------------------------------------------------


async def test_ssrf_policy_allow_cidrs_let_internal_networks_through() -> None:
    g = guard(allow_cidrs=("10.0.0.0/8",))
    assert [str(a) for a in (await g.vet("http://internal.test/")).addresses] == ["10.0.0.5"]
    await g.vet("http://mixed.test/")
    await g.vet("http://10.9.9.9:5432/")
    with pytest.raises(SsrfBlocked):
        await g.vet("http://192.168.1.1/")
    with pytest.raises(SsrfBlocked):
        await g.vet("http://loop.test/")


async def test_ssrf_policy_a_cidr_covering_metadata_does_not_allow_metadata() -> None:
    g = guard(allow_cidrs=("169.254.0.0/16", "0.0.0.0/0", "::/0", "100.64.0.0/10"))
    await g.vet("http://169.254.1.1/")
    await g.vet("http://127.0.0.1/")
    await g.vet("http://[::1]/")
    for url in (
        "http://169.254.169.254/",
        "http://meta.test/",
        "http://[fd00:ec2::254]/",
        "http://[::ffff:169.254.169.254]/",
        "http://100.100.100.200/",
    ):
        with pytest.raises(SsrfBlocked, match="metadata"):
            await g.vet(url)


async def test_ssrf_policy_an_exact_metadata_address_can_be_allowed() -> None:
    g = guard(allow_cidrs=("169.254.169.254/32",))
    await g.vet("http://169.254.169.254/latest/meta-data/")
    await g.vet("http://meta.test/")


async def test_ssrf_policy_allow_hosts_trust_names_not_addresses() -> None:
    g = guard(allow_hosts=("internal.test", "localhost"))
    await g.vet("http://internal.test/")
    await g.vet("http://INTERNAL.TEST./x")
    await g.vet("http://localhost:8080/")
    with pytest.raises(SsrfBlocked):
        await g.vet("http://loop.test/")  # same address, name not allowed
    with pytest.raises(SsrfBlocked):
        await g.vet("http://10.0.0.5/")  # the address itself is not allowed


async def test_ssrf_policy_allow_host_wildcards_match_subdomains_only() -> None:
    g = guard(allow_hosts=("*.corp.test",))
    await g.vet("http://a.corp.test/")
    await g.vet("http://a.b.corp.test/")
    for url in ("http://corp.test/", "http://evilcorp.test/"):
        with pytest.raises(SsrfBlocked):
            await g.vet(url)


async def test_ssrf_policy_allowed_hosts_still_cannot_reach_metadata() -> None:
    g = guard(allow_hosts=("*.corp.test",))
    with pytest.raises(SsrfBlocked, match="metadata"):
        await g.vet("http://sneaky-meta.corp.test/")


async def test_ssrf_policy_metadata_names_are_refused_unless_allowed_by_name() -> None:
    with pytest.raises(SsrfBlocked):
        await guard(allow_cidrs=("169.254.169.254/32",)).vet("http://metadata.google.internal/")
    g = guard(allow_hosts=("metadata.google.internal",), allow_cidrs=("169.254.169.254/32",))
    await g.vet("http://metadata.google.internal/")


async def test_ssrf_policy_allow_hosts_accept_idna_and_addresses() -> None:
    g = guard(allow_hosts=("Bücher.Example.", "10.0.0.5"))
    policy = g.policy
    assert "xn--bcher-kva.example" in policy.allow_hosts
    assert ipaddress.ip_network("10.0.0.5/32") in policy.allow_cidrs
    await g.vet("http://internal.test/")


async def test_ssrf_policy_allowed_ports() -> None:
    g = guard(allowed_ports=(443,))
    await g.vet("https://example.com/")
    with pytest.raises(SsrfBlocked, match="port 80"):
        await g.vet("http://example.com/")
    with pytest.raises(SsrfBlocked, match="port 8443"):
        await g.vet("https://example.com:8443/")


@pytest.mark.parametrize(
    "settings",
    [
        {"allow_hosts": ("*",)},
        {"allow_hosts": ("*.com",)},
        {"allow_hosts": ("*.internal",)},
        {"allow_hosts": ("crm.internal:8080",)},
        {"allow_hosts": ("crm.internal/path",)},
        {"allow_hosts": ("*.*.corp.test",)},
        {"allow_hosts": ("a.*.corp.test",)},
        {"allow_hosts": ("exa mple.com",)},
        {"allow_hosts": ("2130706433",)},
        {"allow_cidrs": ("10.0.0.1/8",)},
        {"allow_cidrs": ("nonsense",)},
        {"allowed_ports": (0,)},
        {"max_response_bytes": 0},
        {"default_timeout_s": 500.0},
    ],
)
def test_ssrf_policy_bad_settings_fail_at_startup(settings: dict[str, object]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - any message naming the entry
        HttpSettings(**settings)  # type: ignore[arg-type]


def test_ssrf_policy_comma_separated_settings_are_split() -> None:
    s = HttpSettings(allow_hosts="a.test, *.b.test", allow_cidrs="10.0.0.0/8")  # type: ignore[arg-type]
    assert s.allow_hosts == ("a.test", "*.b.test")
    assert s.allow_cidrs == ("10.0.0.0/8",)


def test_ssrf_policy_strict_policy_drops_the_allow_list_unless_redirects_may_use_it() -> None:
    s = HttpSettings(allow_cidrs=("10.0.0.0/8",), allowed_ports=(443,))
    assert s.strict_policy() == SsrfPolicy.build((), (), (443,))
    relaxed = HttpSettings(allow_cidrs=("10.0.0.0/8",), allow_list_redirects=True)
    assert relaxed.strict_policy() == relaxed.policy()


# --- resolution failures -------------------------------------------------------------


async def test_ssrf_policy_unknown_names_are_connection_errors_not_retried() -> None:
    with pytest.raises(HttpConnectionError) as info:
        await guard().vet("http://no-such-host.test/")
    assert info.value.retriable is False


async def test_ssrf_policy_temporary_dns_failures_are_retriable() -> None:
    resolver = FakeResolver({"flaky.test": socket.gaierror(socket.EAI_AGAIN, "try again")})
    with pytest.raises(HttpConnectionError) as info:
        await SsrfGuard(SsrfPolicy(), resolver).vet("http://flaky.test/")
    assert info.value.retriable is True


async def test_ssrf_policy_an_empty_answer_is_a_connection_error() -> None:
    with pytest.raises(HttpConnectionError, match="no addresses"):
        await SsrfGuard(SsrfPolicy(), FakeResolver({"empty.test": []})).vet("http://empty.test/")


async def test_ssrf_policy_each_vet_resolves_again() -> None:
    # The guard never caches: the transport pins what one call returned.
    resolver = FakeResolver({"rebind.test": [["93.184.215.14"], ["127.0.0.1"]]})
    g = SsrfGuard(SsrfPolicy(), resolver)
    assert [str(a) for a in (await g.vet("http://rebind.test/")).addresses] == ["93.184.215.14"]
    with pytest.raises(SsrfBlocked, match="loopback"):
        await g.vet("http://rebind.test/")

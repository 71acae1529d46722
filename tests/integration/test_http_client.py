"""GuardedHttpClient against real servers on loopback: the guard must hold.

127.0.0.2 stands in for a public address (tests allow it with ``allow_cidrs``) and
127.0.0.1 is "internal". Servers record what they receive, so a blocked request is
proven never to have arrived.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from typing import Any

import httpcore
import pytest

from flowmill.net.addresses import IPAddress
from flowmill.net.errors import (
    HttpConnectionError,
    HttpTimeout,
    InvalidRequest,
    InvalidUrl,
    ResponseTooLarge,
    SsrfBlocked,
    TlsError,
    TooManyRedirects,
)
from flowmill.net.http import GuardedHttpClient, HttpSettings
from flowmill.net.ssrf import SystemResolver
from flowmill.testing import FakeResolver
from tests.conftest import unavailable
from tests.integration.http_servers import Certs, Servers, free_port, make_certs, system_tls

PUBLIC = "127.0.0.2/32"  # our stand-in for the internet
INTERNAL = "127.0.0.1/32"


class RecordingBackend(httpcore.AsyncNetworkBackend):
    """The real network, remembering where each connection went."""

    def __init__(self) -> None:
        self.inner = httpcore.AnyIOBackend()
        self.connects: list[tuple[str, int]] = []

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        self.connects.append((host, port))
        return await self.inner.connect_tcp(host, port, timeout, local_address, socket_options)

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


MakeClient = Callable[..., GuardedHttpClient]


@pytest.fixture
def servers() -> Iterator[Servers]:
    started = Servers()
    yield started
    started.stop()


@pytest.fixture
async def make_client() -> AsyncIterator[MakeClient]:
    clients: list[GuardedHttpClient] = []

    def make(
        resolver: Any = None, ssl_context: Any = None, backend: Any = None, **settings: Any
    ) -> GuardedHttpClient:
        client = GuardedHttpClient(
            HttpSettings(**settings),
            resolver=resolver,
            ssl_context=ssl_context or system_tls(),
            network_backend=backend,
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    made = make_certs(tmp_path_factory.mktemp("certs"), ["pinned.test"])
    if made is None:
        unavailable("needs the openssl command to make test certificates")
    return made


def body_json(response: Any) -> Any:
    return json.loads(response.body)


# --- blocked by default, allowed by the allow-list -----------------------------------


async def test_http_client_a_loopback_server_is_unreachable_by_default(
    servers: Servers, make_client: MakeClient
) -> None:
    internal = servers.start("internal")
    client = make_client()
    for url in (
        internal.url("/json"),
        internal.url("/json", host="localhost"),
        internal.url("/json", host="2130706433"),
        internal.url("/json", host="0x7f.1"),
        internal.url("/json", host="127.1"),
        internal.url("/json", host="[::ffff:127.0.0.1]"),
        internal.url("/json", host="0.0.0.0"),
    ):
        with pytest.raises(SsrfBlocked):
            await client.request("GET", url)
    assert internal.seen == []


async def test_http_client_names_resolving_internally_are_unreachable_through_the_real_resolver(
    servers: Servers, make_client: MakeClient
) -> None:
    internal = servers.start("internal")
    # This machine's own name is on no deny list; DNS (or /etc/hosts) says what it is.
    name = socket.gethostname()
    try:
        infos = socket.getaddrinfo(name, internal.port, type=socket.SOCK_STREAM)
    except OSError:
        unavailable("this machine's name does not resolve")
    if all(ipaddress.ip_address(info[4][0]).is_global for info in infos):
        unavailable("this machine's name resolves to a public address")
    client = make_client(resolver=SystemResolver())
    with pytest.raises(SsrfBlocked):
        await client.request("GET", internal.url("/json", host=name))
    with pytest.raises(SsrfBlocked):
        await client.request("GET", internal.url("/json", host="localhost."))
    assert internal.seen == []


async def test_http_client_an_ipv6_loopback_server_is_unreachable(
    servers: Servers, make_client: MakeClient
) -> None:
    try:
        v6 = servers.start("v6", "::1")
    except OSError:
        unavailable("no IPv6 loopback here")
    client = make_client()
    with pytest.raises(SsrfBlocked):
        await client.request("GET", v6.url("/json"))
    response = await make_client(allow_cidrs=("::1/128",)).request("GET", v6.url("/json"))
    assert body_json(response)["server"] == "v6"


async def test_http_client_allow_cidrs_reach_an_internal_server(
    servers: Servers, make_client: MakeClient
) -> None:
    internal = servers.start("internal")
    client = make_client(allow_cidrs=(INTERNAL,))
    response = await client.request("GET", internal.url("/json"))
    assert response.status == 200
    assert body_json(response) == {"ok": True, "server": "internal"}
    assert response.url == internal.url("/json")
    assert response.headers["content-type"] == "application/json"
    assert response.elapsed_ms > 0


async def test_http_client_allow_hosts_reach_an_internal_server_by_name(
    servers: Servers, make_client: MakeClient
) -> None:
    internal = servers.start("internal")
    client = make_client(resolver=SystemResolver(), allow_hosts=("localhost",))
    response = await client.request("GET", internal.url("/echo", host="localhost"))
    assert body_json(response)["headers"]["host"] == f"localhost:{internal.port}"
    with pytest.raises(SsrfBlocked):  # the name is allowed, not the address
        await client.request("GET", internal.url("/echo"))


async def test_http_client_proxy_environment_variables_cannot_route_around_the_guard(
    servers: Servers, make_client: MakeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    internal = servers.start("internal")
    public = servers.start("public", "127.0.0.2")
    monkeypatch.setenv("HTTP_PROXY", internal.url("/"))
    monkeypatch.setenv("ALL_PROXY", internal.url("/"))
    response = await make_client(allow_cidrs=(PUBLIC,)).request("GET", public.url("/json"))
    assert body_json(response)["server"] == "public"
    assert internal.seen == []


# --- pinning and DNS rebinding --------------------------------------------------------


async def test_http_client_dns_rebinding_cannot_switch_the_address_after_the_check(
    servers: Servers, make_client: MakeClient
) -> None:
    public, internal = servers.pair()
    # First answer public, every later answer internal: a check-then-connect client
    # that resolves twice would end up on the internal server.
    resolver = FakeResolver({"rebind.test": [["127.0.0.2"], ["127.0.0.1"]]})
    backend = RecordingBackend()
    client = make_client(resolver=resolver, backend=backend, allow_cidrs=(PUBLIC,))
    url = public.url("/echo", host="rebind.test")

    response = await client.request("GET", url)

    assert body_json(response)["server"] == "public"
    assert body_json(response)["headers"]["host"] == f"rebind.test:{public.port}"
    assert resolver.calls == ["rebind.test"]  # resolved once, for this connection
    assert backend.connects == [("127.0.0.2", public.port)]  # the vetted address
    assert internal.seen == []

    # A new connection resolves again, and the internal answer is refused.
    fresh = make_client(resolver=resolver, allow_cidrs=(PUBLIC,))
    with pytest.raises(SsrfBlocked, match="loopback"):
        await fresh.request("GET", url)
    assert internal.seen == []


async def test_http_client_concurrent_rebinding_never_reaches_the_internal_server(
    servers: Servers, make_client: MakeClient
) -> None:
    public, internal = servers.pair()

    class Flipping:
        """Public and internal answers in turn, as a rebinding DNS server would give."""

        calls = 0

        async def resolve(self, host: str, port: int) -> list[IPAddress]:
            Flipping.calls += 1
            answer = "127.0.0.1" if Flipping.calls % 2 else "127.0.0.2"
            await asyncio.sleep(0)  # let the other requests interleave
            return [ipaddress.ip_address(answer)]

    # No keep-alive: every request opens (and vets) its own connection.
    client = make_client(resolver=Flipping(), allow_cidrs=(PUBLIC,), max_keepalive_connections=0)
    url = public.url("/json", host="flip.test")
    results = await asyncio.gather(
        *(client.request("GET", url) for _ in range(30)), return_exceptions=True
    )
    blocked = [r for r in results if isinstance(r, SsrfBlocked)]
    served = [r for r in results if not isinstance(r, BaseException)]
    assert len(blocked) + len(served) == 30
    assert blocked
    assert served
    assert internal.seen == []
    assert len(public.seen) == len(served)


async def test_http_client_pooled_connections_are_not_shared_between_names_on_one_address(
    servers: Servers, make_client: MakeClient
) -> None:
    public = servers.start("public", "127.0.0.2")
    backend = RecordingBackend()
    resolver = FakeResolver({"a.test": "127.0.0.2", "b.test": "127.0.0.2"})
    client = make_client(resolver=resolver, backend=backend, allow_cidrs=(PUBLIC,))
    await client.request("GET", public.url("/json", host="a.test"))
    await client.request("GET", public.url("/json", host="b.test"))
    await client.request("GET", public.url("/json", host="a.test"))
    assert len(backend.connects) == 2  # one per name; a.test's was reused
    assert resolver.calls == ["a.test", "b.test"]


async def test_http_client_one_internal_answer_among_public_ones_refuses_the_request(
    servers: Servers, make_client: MakeClient
) -> None:
    public, internal = servers.pair()
    resolver = FakeResolver({"mixed.test": ["127.0.0.2", "127.0.0.1"]})
    client = make_client(resolver=resolver, allow_cidrs=(PUBLIC,))
    with pytest.raises(SsrfBlocked):
        await client.request("GET", public.url("/json", host="mixed.test"))
    assert public.seen == []
    assert internal.seen == []


async def test_http_client_unreachable_vetted_addresses_fall_back_to_the_next_vetted_one(
    servers: Servers, make_client: MakeClient
) -> None:
    public = servers.start("public", "127.0.0.2")
    resolver = FakeResolver({"multi.test": ["127.0.0.3", "127.0.0.2"]})  # nothing on .3
    backend = RecordingBackend()
    client = make_client(resolver=resolver, backend=backend, allow_cidrs=("127.0.0.0/30",))
    response = await client.request("GET", public.url("/json", host="multi.test"))
    assert body_json(response)["server"] == "public"
    assert backend.connects == [("127.0.0.3", public.port), ("127.0.0.2", public.port)]


async def test_http_client_tls_uses_the_name_for_sni_and_verification_while_connecting_to_the_ip(
    servers: Servers, make_client: MakeClient, certs: Certs
) -> None:
    sni: list[str] = []
    public = servers.start("tls", "127.0.0.2", tls=certs.server_context(sni))
    backend = RecordingBackend()
    client = make_client(
        resolver=FakeResolver({"pinned.test": "127.0.0.2"}),
        ssl_context=certs.client_context(),
        backend=backend,
        allow_cidrs=(PUBLIC,),
    )
    response = await client.request("GET", public.url("/echo", host="pinned.test"))
    assert response.url == f"https://pinned.test:{public.port}/echo"
    assert body_json(response)["headers"]["host"] == f"pinned.test:{public.port}"
    assert sni == ["pinned.test"]
    assert backend.connects == [("127.0.0.2", public.port)]


async def test_http_client_tls_certificates_are_still_verified(
    servers: Servers, make_client: MakeClient, certs: Certs
) -> None:
    public = servers.start("tls", "127.0.0.2", tls=certs.server_context([]))
    client = make_client(
        resolver=FakeResolver({"wrong.test": "127.0.0.2", "pinned.test": "127.0.0.2"}),
        ssl_context=certs.client_context(),
        allow_cidrs=(PUBLIC,),
    )
    for host in ("wrong.test", "127.0.0.2"):  # a name, and the address, not on the cert
        with pytest.raises(TlsError) as info:
            await client.request("GET", public.url("/json", host=host))
        assert info.value.retriable is False
    untrusting = make_client(
        resolver=FakeResolver({"pinned.test": "127.0.0.2"}), allow_cidrs=(PUBLIC,)
    )
    with pytest.raises(TlsError, match="certificate"):
        await untrusting.request("GET", public.url("/json", host="pinned.test"))


# --- redirects -----------------------------------------------------------------------


async def test_http_client_a_redirect_from_an_allowed_host_to_a_blocked_one_is_blocked(
    servers: Servers, make_client: MakeClient
) -> None:
    public, internal = servers.pair()
    client = make_client(allow_cidrs=(PUBLIC,), resolver=FakeResolver({"localhost": "127.0.0.1"}))
    for target in (
        internal.url("/json"),
        internal.url("/json", host="localhost"),
        internal.url("/json", host="2130706433"),
        internal.url("/json", host="[::1]"),
        internal.url("/json", host="[::ffff:127.0.0.1]"),
        "http://169.254.169.254/latest/meta-data/",
        "http://[fd00:ec2::254]/latest/meta-data/",
        "file:///etc/passwd",
        "gopher://127.0.0.1:6379/_FLUSHALL",
        f"http://user:pw@127.0.0.2:{public.port}/json",
    ):
        for code in (301, 302, 303, 307, 308):
            with pytest.raises(SsrfBlocked):
                await client.request("GET", public.url(f"/redirect?code={code}&to={target}"))
    assert internal.seen == []


async def test_http_client_a_redirect_to_a_name_that_resolves_internally_is_blocked(
    servers: Servers, make_client: MakeClient
) -> None:
    public, internal = servers.pair()
    resolver = FakeResolver({"evil.test": "127.0.0.1"})
    client = make_client(resolver=resolver, allow_cidrs=(PUBLIC,))
    target = internal.url("/json", host="evil.test")
    with pytest.raises(SsrfBlocked):
        await client.request("GET", public.url(f"/redirect?to={target}"))
    assert internal.seen == []


async def test_http_client_redirects_cannot_reach_the_allow_list_from_another_origin_by_default(
    servers: Servers, make_client: MakeClient
) -> None:
    public, internal = servers.pair()
    # Both allowed for direct calls; a remote server still cannot bounce us inside,
    # by address (caught before sending) or by name (caught when connecting).
    resolver = FakeResolver({"inside.test": "127.0.0.1"})
    client = make_client(resolver=resolver, allow_cidrs=(PUBLIC, INTERNAL))
    # Direct calls work, and leave pooled connections to the internal server behind...
    assert (await client.request("GET", internal.url("/json"))).status == 200
    assert (await client.request("GET", internal.url("/json", host="inside.test"))).status == 200
    seen = len(internal.seen)
    # ...which a redirect from another origin must not be able to borrow.
    for target in (internal.url("/json"), internal.url("/json", host="inside.test")):
        with pytest.raises(SsrfBlocked):
            await client.request("GET", public.url(f"/redirect?to={target}"))
    assert len(internal.seen) == seen


async def test_http_client_same_origin_redirects_inside_the_allow_list_are_followed(
    servers: Servers, make_client: MakeClient
) -> None:
    internal = servers.start("internal")
    client = make_client(allow_cidrs=(INTERNAL,))
    response = await client.request(
        "GET", internal.url("/redirect?to=/echo%3Fx=1"), headers={"Authorization": "Bearer t"}
    )
    echoed = body_json(response)
    assert echoed["path"] == "/echo?x=1"
    assert echoed["headers"]["authorization"] == "Bearer t"  # same origin: kept
    assert response.url == internal.url("/echo?x=1")


async def test_http_client_cross_origin_redirects_drop_credentials(
    servers: Servers, make_client: MakeClient
) -> None:
    public, internal = servers.pair()
    client = make_client(allow_cidrs=(PUBLIC, INTERNAL), allow_list_redirects=True)
    secret_headers = {
        "Authorization": "Bearer secret",
        "Cookie": "session=secret",
        "X-Api-Key": "secret",
        "Proxy-Authorization": "Basic secret",
        "Idempotency-Key": "exec:node:1",
        "Accept-Language": "fr",
    }
    response = await client.request(
        "POST",
        public.url(f"/redirect?code=307&to={internal.url('/echo')}"),
        headers={**secret_headers, "Content-Type": "application/json"},
        content=b'{"a": 1}',
    )
    echoed = body_json(response)
    assert echoed["server"] == "internal"
    assert echoed["method"] == "POST"
    assert echoed["body"] == '{"a": 1}'
    headers = echoed["headers"]
    assert "secret" not in json.dumps(headers)
    assert "idempotency-key" not in headers
    assert headers["accept-language"] == "fr"
    assert headers["content-type"] == "application/json"
    assert headers["host"] == f"127.0.0.1:{internal.port}"
    assert headers["user-agent"].startswith("Flowmill/")


@pytest.mark.parametrize(
    ("method", "code", "method_after", "body_kept"),
    [
        ("POST", 301, "GET", False),
        ("POST", 302, "GET", False),
        ("POST", 303, "GET", False),
        ("PUT", 303, "GET", False),
        ("POST", 307, "POST", True),
        ("PUT", 308, "PUT", True),
        ("PATCH", 302, "PATCH", True),
        ("HEAD", 303, "HEAD", False),
    ],
)
async def test_http_client_redirect_methods_and_bodies(
    servers: Servers,
    make_client: MakeClient,
    method: str,
    code: int,
    method_after: str,
    body_kept: bool,
) -> None:
    internal = servers.start("internal")
    client = make_client(allow_cidrs=(INTERNAL,))
    content = b"payload" if method != "HEAD" else None
    await client.request(
        method,
        internal.url(f"/redirect?code={code}&to=/echo"),
        headers={"Content-Type": "text/plain"},
        content=content,
    )
    last = internal.seen[-1]
    assert last.method == method_after
    assert (last.body == b"payload") is body_kept
    assert ("content-type" in last.headers) is body_kept


async def test_http_client_redirect_loops_stop(servers: Servers, make_client: MakeClient) -> None:
    internal = servers.start("internal")
    client = make_client(allow_cidrs=(INTERNAL,), max_redirects=3)
    with pytest.raises(TooManyRedirects) as info:
        await client.request("GET", internal.url("/loop"))
    assert info.value.retriable is False
    assert len(internal.seen) == 4  # the request and three redirects
    with pytest.raises(TooManyRedirects):
        await client.request("GET", internal.url("/loop"), max_redirects=50)
    assert len(internal.seen) == 8  # capped by the settings


async def test_http_client_not_following_returns_the_redirect(
    servers: Servers, make_client: MakeClient
) -> None:
    internal = servers.start("internal")
    client = make_client(allow_cidrs=(INTERNAL,))
    response = await client.request(
        "GET", internal.url("/redirect?to=http://169.254.169.254/"), follow_redirects=False
    )
    assert response.status == 302
    assert response.headers["location"] == "http://169.254.169.254/"
    assert len(internal.seen) == 1


async def test_http_client_an_unparseable_redirect_location_is_an_invalid_url(
    servers: Servers, make_client: MakeClient
) -> None:
    internal = servers.start("internal")
    client = make_client(allow_cidrs=(INTERNAL,))
    with pytest.raises(InvalidUrl):
        await client.request("GET", internal.url("/redirect?to=http://[::1"))


# --- limits --------------------------------------------------------------------------


@pytest.mark.parametrize("length", ["1", "0"])
async def test_http_client_bodies_over_the_limit_are_refused(
    servers: Servers, make_client: MakeClient, length: str
) -> None:
    internal = servers.start("internal")
    client = make_client(allow_cidrs=(INTERNAL,), max_response_bytes=100_000)
    ok = await client.request("GET", internal.url(f"/bytes?n=100000&length={length}"))
    assert len(ok.body) == 100_000
    with pytest.raises(ResponseTooLarge) as info:
        await client.request("GET", internal.url(f"/bytes?n=5000000&length={length}"))
    assert info.value.retriable is False
    # a per-request limit can only lower the settings' cap
    with pytest.raises(ResponseTooLarge):
        await client.request(
            "GET", internal.url(f"/bytes?n=1001&length={length}"), max_response_bytes=1000
        )
    with pytest.raises(ResponseTooLarge):
        await client.request(
            "GET", internal.url(f"/bytes?n=100001&length={length}"), max_response_bytes=10**9
        )


async def test_http_client_head_of_a_large_resource_is_fine(
    servers: Servers, make_client: MakeClient
) -> None:
    internal = servers.start("internal")
    client = make_client(allow_cidrs=(INTERNAL,), max_response_bytes=1000)
    response = await client.request("HEAD", internal.url("/bytes?n=5000000"))
    assert response.status == 200
    assert response.headers["content-length"] == "5000000"
    assert response.body == b""


async def test_http_client_a_gzip_bomb_is_refused_by_its_decompressed_size(
    servers: Servers, make_client: MakeClient
) -> None:
    internal = servers.start("internal")
    client = make_client(allow_cidrs=(INTERNAL,), max_response_bytes=1_000_000)
    small = await client.request("GET", internal.url("/gzip?n=1000"))
    assert small.body == b"\0" * 1000
    with pytest.raises(ResponseTooLarge):
        await client.request("GET", internal.url("/gzip?n=20000000"))  # ~20 KB on the wire


async def test_http_client_compressed_bodies_are_decoded(
    servers: Servers, make_client: MakeClient
) -> None:
    internal = servers.start("internal")
    client = make_client(allow_cidrs=(INTERNAL,))
    assert body_json(await client.request("GET", internal.url("/gzip-json"))) == {
        "compressed": True
    }
    assert (await client.request("GET", internal.url("/deflate-raw"))).body == b"raw deflate body"
    assert internal.seen[0].headers["accept-encoding"] == "gzip, deflate"


async def test_http_client_a_slow_response_times_out(
    servers: Servers, make_client: MakeClient
) -> None:
    internal = servers.start("internal")
    client = make_client(allow_cidrs=(INTERNAL,))
    started = time.monotonic()
    with pytest.raises(HttpTimeout) as info:
        await client.request("GET", internal.url("/slow?s=60"), timeout_s=0.3)
    assert time.monotonic() - started < 30  # gave up long before the server's 60 s
    assert info.value.retriable is True
    assert info.value.details["timeout_s"] == 0.3


async def test_http_client_a_dripping_response_hits_the_total_deadline(
    servers: Servers, make_client: MakeClient
) -> None:
    internal = servers.start("internal")
    client = make_client(allow_cidrs=(INTERNAL,))
    started = time.monotonic()
    with pytest.raises(HttpTimeout):
        await client.request("GET", internal.url("/drip"), timeout_s=0.4)
    assert time.monotonic() - started < 30  # the drip never ends: only the deadline did


async def test_http_client_slow_dns_times_out(make_client: MakeClient) -> None:
    resolver = FakeResolver({"slow.test": "127.0.0.2"}, delay=60)
    client = make_client(resolver=resolver, allow_cidrs=(PUBLIC,))
    with pytest.raises(HttpTimeout):
        await client.request("GET", "http://slow.test/", timeout_s=0.3)


async def test_http_client_timeouts_are_capped_by_the_settings(
    servers: Servers, make_client: MakeClient
) -> None:
    internal = servers.start("internal")
    client = make_client(allow_cidrs=(INTERNAL,), default_timeout_s=0.2, max_timeout_s=0.3)
    with pytest.raises(HttpTimeout) as info:
        await client.request("GET", internal.url("/slow?s=5"), timeout_s=100)
    assert info.value.details["timeout_s"] == 0.3


# --- connection failures ---------------------------------------------------------------


async def test_http_client_refused_connections_are_retriable(make_client: MakeClient) -> None:
    client = make_client(allow_cidrs=(INTERNAL,))
    with pytest.raises(HttpConnectionError) as info:
        await client.request("GET", f"http://127.0.0.1:{free_port()}/")
    assert info.value.retriable is True
    assert info.value.type == "ConnectionError"


async def test_http_client_a_server_hanging_up_is_a_retriable_connection_error(
    servers: Servers, make_client: MakeClient
) -> None:
    internal = servers.start("internal")
    client = make_client(allow_cidrs=(INTERNAL,))
    with pytest.raises(HttpConnectionError) as info:
        await client.request("GET", internal.url("/hangup"))
    assert info.value.retriable is True


# --- requests --------------------------------------------------------------------------


async def test_http_client_query_headers_and_body_are_sent(
    servers: Servers, make_client: MakeClient
) -> None:
    internal = servers.start("internal")
    client = make_client(allow_cidrs=(INTERNAL,), user_agent="Flowmill/test")
    response = await client.request(
        "post",
        internal.url("/echo?a=1"),
        params={"b": "two words", "c": ["x", "y"]},
        headers={"X-Name": "Zoë", "Content-Type": "text/plain"},
        content=b"hello",
    )
    echoed = body_json(response)
    assert echoed["method"] == "POST"
    assert echoed["path"] == "/echo?a=1&b=two+words&c=x&c=y"
    assert echoed["body"] == "hello"
    assert echoed["headers"]["user-agent"] == "Flowmill/test"
    assert echoed["headers"]["x-name"].encode("latin-1").decode() == "Zoë"  # sent as UTF-8


@pytest.mark.parametrize(
    "headers",
    [
        {"Host": "internal.example"},
        {"Content-Length": "5"},
        {"Transfer-Encoding": "chunked"},
        {"Connection": "upgrade"},
        {"X-Evil": "a\r\nHost: internal"},
        {"X-Evil": "a\nb"},
        {"Bad Name": "x"},
        {"X-Null": "a\x00b"},
    ],
)
async def test_http_client_dangerous_headers_are_refused(
    servers: Servers, make_client: MakeClient, headers: dict[str, str]
) -> None:
    internal = servers.start("internal")
    client = make_client(allow_cidrs=(INTERNAL,))
    with pytest.raises(InvalidRequest):
        await client.request("GET", internal.url("/echo"), headers=headers)
    assert internal.seen == []


async def test_http_client_invalid_methods_are_refused(make_client: MakeClient) -> None:
    with pytest.raises(InvalidRequest):
        await make_client().request("GET /x HTTP/1.1\r\n", "http://93.184.215.14/")


async def test_http_client_no_cookies_carry_over_between_requests(
    servers: Servers, make_client: MakeClient
) -> None:
    internal = servers.start("internal")
    client = make_client(allow_cidrs=(INTERNAL,))
    await client.request("GET", internal.url("/setcookie"))
    await client.request("GET", internal.url("/echo"))
    assert "cookie" not in internal.seen[-1].headers


async def test_http_client_connections_are_reused(
    servers: Servers, make_client: MakeClient
) -> None:
    internal = servers.start("internal")
    backend = RecordingBackend()
    client = make_client(allow_cidrs=(INTERNAL,), backend=backend)
    for _ in range(3):
        await client.request("GET", internal.url("/json"))
    assert len(backend.connects) == 1


async def test_http_client_closing_is_idempotent_and_final(make_client: MakeClient) -> None:
    client = make_client()
    await client.aclose()
    await client.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        await client.request("GET", "http://93.184.215.14/")


async def test_http_client_it_works_as_a_context_manager(servers: Servers) -> None:
    internal = servers.start("internal")
    async with GuardedHttpClient(HttpSettings(allow_cidrs=(INTERNAL,))) as client:
        assert (await client.request("GET", internal.url("/json"))).status == 200


async def test_http_client_concurrent_requests(servers: Servers, make_client: MakeClient) -> None:
    internal = servers.start("internal")
    client = make_client(allow_cidrs=(INTERNAL,), max_connections=4)
    responses = await asyncio.gather(
        *(client.request("GET", internal.url(f"/echo?i={i}")) for i in range(20))
    )
    assert sorted(body_json(r)["path"] for r in responses) == sorted(
        f"/echo?i={i}" for i in range(20)
    )

"""An httpx transport whose connections go only to addresses the SSRF guard vetted.

Pinning happens in the network backend, where httpcore opens sockets: ``connect_tcp``
receives the URL's host name, resolves it *once* through the guard, checks every
address, and connects to those addresses (IP literals) and nothing else. The URL is
never rewritten, so the ``Host`` header, TLS SNI and certificate verification all use
the original name, and pooled connections are keyed by that name — a connection is
only ever reused for the host (and vetted address) it was opened for.
"""

from __future__ import annotations

import asyncio
import contextlib
import select
import socket
import ssl
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import Any

import httpcore
import httpx

from flowmill.net.errors import SsrfBlocked
from flowmill.net.ssrf import SsrfGuard

SocketOption = (
    tuple[int, int, int] | tuple[int, int, bytes | bytearray] | tuple[int, int, None, int]
)


class PinnedNetworkBackend(httpcore.AsyncNetworkBackend):
    """Opens TCP connections only to the addresses the guard returns for a host."""

    def __init__(self, guard: SsrfGuard, inner: httpcore.AsyncNetworkBackend | None = None) -> None:
        """Wrap ``inner`` (default: httpcore's AnyIO backend) behind ``guard``."""
        self._guard = guard
        self._inner = inner if inner is not None else httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's signature
        local_address: str | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        """Vet ``host`` and connect to its first reachable vetted address."""
        try:
            async with asyncio.timeout(timeout):
                target = await self._guard.vet_host(host, port)
        except TimeoutError as e:
            raise httpcore.ConnectTimeout(f"resolving {host!r} timed out") from e
        failure: Exception | None = None
        # Share the connect timeout between the addresses, so one black-holed address
        # (often a broken IPv6 route) cannot use it all; never below a second each.
        each = None if timeout is None else min(timeout, max(timeout / len(target.addresses), 1))
        for ip in target.addresses:
            try:
                stream = await self._inner.connect_tcp(
                    str(ip),
                    port,
                    timeout=each,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as e:
                failure = e  # try the next vetted address, like a browser would
                continue
            return _CheapReadable(stream)
        assert failure is not None  # vet_host never returns an empty list
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's signature
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        """Refused: outbound HTTP never talks to local sockets."""
        raise SsrfBlocked("unix sockets are not allowed", reason="unix socket")

    async def sleep(self, seconds: float) -> None:
        """Sleep (used by httpcore between connection retries)."""
        await self._inner.sleep(seconds)


class _CheapReadable(httpcore.AsyncNetworkStream):
    """A connection whose ``is_readable`` costs one ``poll``, not a dozen system calls.

    The pool asks every idle connection whether it is readable (a server hang-up) each
    time it assigns a request. AnyIO's stream answers by building its whole attribute
    dict first, which calls ``getpeername``: with ten connections open, each request
    cost about twenty such calls, a third of the main thread's time in a loop of 20 ms
    HTTP calls at ``concurrency: 10`` (``bench/loops.py``). The raw socket is looked up
    once, here; everything else is passed through.
    """

    def __init__(self, inner: httpcore.AsyncNetworkStream, sock: Any = None) -> None:
        self._inner = inner
        self._sock: socket.socket | None = (
            sock if sock is not None else inner.get_extra_info("socket")
        )

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:  # noqa: ASYNC109 - httpcore's signature
        return await self._inner.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:  # noqa: ASYNC109 - httpcore's signature
        await self._inner.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's signature
    ) -> httpcore.AsyncNetworkStream:
        # TLS runs over the same socket: its readability is still the socket's.
        tls = await self._inner.start_tls(ssl_context, server_hostname, timeout)
        return _CheapReadable(tls, self._sock)

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable" and self._sock is not None:
            return _readable(self._sock)
        return self._inner.get_extra_info(info)  # (a stream without a socket answers itself)


def _readable(sock: socket.socket) -> bool:
    """Whether a read would return at once (data, or the end of a hung-up connection);
    a closed socket counts as readable, as httpcore's own check has it."""
    fd = sock.fileno()
    if fd < 0:
        return True
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))


# Most specific first: the first match wins.
_ERRORS: tuple[tuple[type[Exception], type[httpx.TransportError]], ...] = (
    (httpcore.ConnectTimeout, httpx.ConnectTimeout),
    (httpcore.ReadTimeout, httpx.ReadTimeout),
    (httpcore.WriteTimeout, httpx.WriteTimeout),
    (httpcore.PoolTimeout, httpx.PoolTimeout),
    (httpcore.TimeoutException, httpx.TimeoutException),
    (httpcore.ConnectError, httpx.ConnectError),
    (httpcore.ReadError, httpx.ReadError),
    (httpcore.WriteError, httpx.WriteError),
    (httpcore.NetworkError, httpx.NetworkError),
    (httpcore.UnsupportedProtocol, httpx.UnsupportedProtocol),
    (httpcore.LocalProtocolError, httpx.LocalProtocolError),
    (httpcore.RemoteProtocolError, httpx.RemoteProtocolError),
    (httpcore.ProtocolError, httpx.ProtocolError),
)


@contextlib.contextmanager
def _httpx_errors() -> Iterator[None]:
    """httpcore's exceptions as httpx's, which is what transports raise."""
    try:
        yield
    except httpcore.TimeoutException as e:
        raise _mapped(e) from e
    except (httpcore.NetworkError, httpcore.ProtocolError, httpcore.UnsupportedProtocol) as e:
        raise _mapped(e) from e


def _mapped(exc: Exception) -> httpx.TransportError:
    for source, target in _ERRORS:
        if isinstance(exc, source):
            return target(str(exc))
    return httpx.TransportError(str(exc))  # pragma: no cover - every kind is listed


class _ResponseStream(httpx.AsyncByteStream):
    def __init__(self, stream: httpcore.Response) -> None:
        self._response = stream

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _httpx_errors():
            async for part in self._response.aiter_stream():
                yield part

    async def aclose(self) -> None:
        await self._response.aclose()


class GuardedTransport(httpx.AsyncBaseTransport):
    """HTTP/1.1 over a connection pool whose backend is a :class:`PinnedNetworkBackend`.

    No proxies (a proxy would resolve names itself, past the guard) and no retries.
    """

    def __init__(
        self,
        guard: SsrfGuard,
        *,
        ssl_context: ssl.SSLContext,
        max_connections: int,
        max_keepalive_connections: int,
        keepalive_expiry: float,
        network_backend: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        """Create the pool; nothing connects until the first request."""
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=max_connections,
            max_keepalive_connections=max_keepalive_connections,
            keepalive_expiry=keepalive_expiry,
            http1=True,
            http2=False,
            retries=0,
            network_backend=PinnedNetworkBackend(guard, network_backend),
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request``; the response body is left to stream."""
        assert isinstance(request.stream, httpx.AsyncByteStream)
        core_request = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=request.url.raw_scheme,
                host=request.url.raw_host,
                port=request.url.port,
                target=request.url.raw_path,
            ),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        with _httpx_errors():
            response = await self._pool.handle_async_request(core_request)
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_ResponseStream(response),
            extensions=response.extensions,
            request=request,
        )

    async def aclose(self) -> None:
        """Close every pooled connection."""
        await self._pool.aclose()

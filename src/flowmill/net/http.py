"""``GuardedHttpClient``: the production :class:`~flowmill.engine.services.HttpClient`.

Every hop of a request is checked by the SSRF guard: statically here, and again where
the socket is opened (:mod:`flowmill.net.transport`), on the addresses the connection
then uses. Redirects are followed here, one hop at a time, so each is checked; the
whole exchange runs under one deadline and the body under a size limit.

There is no cookie jar and no proxy support: the client is shared by every workflow
and tenant, so it keeps no state between requests.
"""

from __future__ import annotations

import asyncio
import functools
import re
import ssl
import time
from collections.abc import AsyncGenerator, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any

import httpcore
import httpx

from flowmill.engine.services import HttpResponse, Spill
from flowmill.net.body import ACCEPT_ENCODING, read_or_spill
from flowmill.net.body import Spill as BodySpill
from flowmill.net.errors import (
    HttpConnectionError,
    HttpTimeout,
    InvalidRequest,
    InvalidUrl,
    OutboundHttpError,
    TlsError,
    TooManyRedirects,
)
from flowmill.net.settings import HttpSettings
from flowmill.net.ssrf import Resolver, SsrfGuard, SsrfPolicy, SystemResolver, port_of
from flowmill.net.transport import GuardedTransport

if TYPE_CHECKING:
    from flowmill.engine.services import HttpClient

__all__ = ["GuardedHttpClient", "HttpSettings"]

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})

_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_BAD_VALUE = re.compile(r"[\r\n\x00]")

#: Headers callers may not set: framing and connection management are the client's.
FORBIDDEN_HEADERS = frozenset(
    {
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "upgrade",
        "te",
        "trailer",
        "expect",
        "proxy-connection",
    }
)

#: The only headers kept when a redirect leaves the origin: everything else may be a
#: credential (``Authorization``, ``Cookie``, ``X-Api-Key``...), so it stays behind.
CROSS_ORIGIN_HEADERS = frozenset(
    {"accept", "accept-encoding", "accept-language", "user-agent", "content-type"}
)


class GuardedHttpClient:
    """Outbound HTTP with the SSRF guard, pinned connections and bounded responses.

    One instance serves the whole process; close it with :meth:`aclose` (or use it as
    an async context manager).

    Example:
        >>> async with GuardedHttpClient(HttpSettings()) as http:  # doctest: +SKIP
        ...     response = await http.request("GET", "https://example.com/")
    """

    def __init__(
        self,
        settings: HttpSettings | None = None,
        *,
        resolver: Resolver | None = None,
        ssl_context: ssl.SSLContext | None = None,
        network_backend: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        """Create the client (no connection is opened yet).

        Args:
            settings: Limits and the allow-list.
            resolver: Name resolution; the operating system's by default.
            ssl_context: TLS settings; httpx's defaults (certifi CAs) by default.
            network_backend: Where sockets come from (tests); httpcore's by default.
        """
        self.settings = settings or HttpSettings()
        resolver = resolver or SystemResolver()
        context = ssl_context or httpx.create_ssl_context()
        self.guard = SsrfGuard(self.settings.policy(), resolver)
        self._transport = self._make_transport(self.guard, context, network_backend)
        # Hops that leave the first origin are vetted without the allow-list (unless the
        # settings allow it), so a remote server cannot bounce us into the network.
        strict = self.settings.strict_policy()
        self._strict_policy: SsrfPolicy = strict
        if strict == self.guard.policy:
            self._strict_transport = self._transport
        else:
            self._strict_transport = self._make_transport(
                SsrfGuard(strict, resolver), context, network_backend
            )
        self._closed = False

    def _make_transport(
        self,
        guard: SsrfGuard,
        context: ssl.SSLContext,
        backend: httpcore.AsyncNetworkBackend | None,
    ) -> GuardedTransport:
        s = self.settings
        return GuardedTransport(
            guard,
            ssl_context=context,
            max_connections=s.max_connections,
            max_keepalive_connections=s.max_keepalive_connections,
            keepalive_expiry=s.keepalive_expiry_s,
            network_backend=backend,
        )

    async def __aenter__(self) -> GuardedHttpClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close pooled connections. Idempotent; requests after it fail."""
        if self._closed:
            return
        self._closed = True
        await self._transport.aclose()
        if self._strict_transport is not self._transport:
            await self._strict_transport.aclose()

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, Any] | None = None,
        content: bytes | None = None,
        timeout_s: float | None = None,
        follow_redirects: bool = True,
        max_redirects: int | None = None,
        max_response_bytes: int | None = None,
        spill: Spill | None = None,
        spill_after: int = 0,
    ) -> HttpResponse:
        """Send a request and read the whole (bounded) response.

        Args:
            method: HTTP method.
            url: ``http`` or ``https`` URL.
            headers: Extra headers; framing headers (``Host``, ``Content-Length``...)
                are refused.
            params: Query parameters, merged with the URL's.
            content: Request body.
            timeout_s: Limit on the whole exchange, redirects and body included;
                settings' default when ``None``, capped by ``max_timeout_s``.
            follow_redirects: Follow 301/302/303/307/308 (each hop re-checked).
            max_redirects: Redirects to follow at most (capped by the settings).
            max_response_bytes: Body size limit (capped by the settings).
            spill: Takes the body as a stream once it passes ``spill_after`` bytes
                (the blob store), so a large body is never whole in memory.
            spill_after: Bytes read into memory before the body goes to ``spill``.

        Returns:
            The final response; ``url`` is the last hop's.

        Raises:
            SsrfBlocked: A hop's URL or address is not allowed.
            HttpTimeout: The deadline passed.
            HttpConnectionError: DNS, connection or protocol failure.
            TlsError: The certificate does not verify.
            TooManyRedirects: More redirects than allowed.
            ResponseTooLarge: The body exceeds the limit.
            InvalidUrl: The URL (or a redirect's ``Location``) cannot be parsed.
            InvalidRequest: Bad method or header.
        """
        if self._closed:
            raise RuntimeError("the HTTP client is closed")
        s = self.settings
        timeout = min(timeout_s if timeout_s is not None else s.default_timeout_s, s.max_timeout_s)
        if timeout <= 0:
            raise InvalidRequest("timeout_s must be positive")
        redirects = min(
            max_redirects if max_redirects is not None else s.max_redirects, s.max_redirects
        )
        limit = min(max_response_bytes or s.max_response_bytes, s.max_response_bytes)
        started = time.monotonic()
        first = self._first_request(method, url, headers, params, content, timeout)
        where = _display(first.url)
        try:
            async with asyncio.timeout(timeout):
                return await self._exchange(
                    first, content, follow_redirects, redirects, limit, started,
                    (spill, spill_after),
                )  # fmt: skip
        except TimeoutError as e:
            raise HttpTimeout(
                f"{first.method} {where} did not finish within {timeout:g} s",
                url=where,
                timeout_s=timeout,
            ) from e
        except httpx.TransportError as e:
            raise _translate(e, first.method, where, timeout) from e

    def _first_request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None,
        params: Mapping[str, Any] | None,
        content: bytes | None,
        timeout: float,
    ) -> httpx.Request:
        method = method.upper()
        if not _TOKEN.match(method):
            raise InvalidRequest(f"invalid HTTP method {method!r}")
        parsed = self.guard.policy.check_url(url)
        merged = httpx.Headers(
            {
                "user-agent": self.settings.user_agent,
                "accept": "*/*",
                "accept-encoding": ACCEPT_ENCODING,
            }
        )
        for name, value in (headers or {}).items():
            _check_header(name, value)
            merged[name] = value
        try:
            return httpx.Request(
                method,
                parsed.copy_merge_params(httpx.QueryParams(params)) if params else parsed,
                headers=merged.raw,
                content=content,
                extensions={"timeout": httpx.Timeout(timeout).as_dict()},
            )
        except (TypeError, ValueError, httpx.InvalidURL) as e:
            raise InvalidRequest(f"invalid request: {e}") from e

    async def _exchange(
        self,
        request: httpx.Request,
        body: bytes | None,
        follow: bool,
        redirects: int,
        limit: int,
        started: float,
        spilling: tuple[Spill | None, int] = (None, 0),
    ) -> HttpResponse:
        first_origin = _origin(request.url)
        hops = 0
        while True:
            transport = (
                self._transport if _origin(request.url) == first_origin else self._strict_transport
            )
            response = await transport.handle_async_request(request)
            try:
                location = response.headers.get("location")
                if not (follow and response.status_code in REDIRECT_STATUSES and location):
                    return await self._finish(request, response, limit, started, spilling)
                if hops >= redirects:
                    raise TooManyRedirects(
                        f"more than {redirects} redirects", url=_display(request.url)
                    )
                hops += 1
                request, body = self._redirect(
                    request, body, response.status_code, location, first_origin
                )
            finally:
                await response.aclose()

    async def _finish(
        self,
        request: httpx.Request,
        response: httpx.Response,
        limit: int,
        started: float,
        spilling: tuple[Spill | None, int] = (None, 0),
    ) -> HttpResponse:
        assert isinstance(response.stream, httpx.AsyncByteStream)
        chunks = aiter(response.stream)
        spill, spill_after = spilling
        headers = dict(response.headers.items())
        to_blob: BodySpill | None = None
        if spill is not None:
            to_blob = functools.partial(spill, headers=headers)
        try:
            data, spilled = await read_or_spill(
                chunks,
                content_encoding=response.headers.get("content-encoding"),
                # A HEAD (or 204/304) response declares a length it does not send.
                content_length=None
                if request.method == "HEAD" or response.status_code in (204, 304)
                else response.headers.get("content-length"),
                limit=limit,
                spill=to_blob,
                spill_after=spill_after,
            )
        finally:
            if isinstance(chunks, AsyncGenerator):  # close it now, not when collected
                await chunks.aclose()
        return HttpResponse(
            status=response.status_code,
            headers=headers,
            body=data,
            url=str(request.url),
            elapsed_ms=round((time.monotonic() - started) * 1000, 3),
            spilled=spilled,
        )

    def _redirect(
        self,
        request: httpx.Request,
        body: bytes | None,
        status: int,
        location: str,
        first_origin: tuple[str, bytes, int],
    ) -> tuple[httpx.Request, bytes | None]:
        """The next hop's request: method, body and headers as browsers do it."""
        try:
            url = request.url.join(location)
        except (httpx.InvalidURL, UnicodeError) as e:
            raise InvalidUrl(f"invalid redirect location {location[:200]!r}: {e}") from e
        policy = self.guard.policy if _origin(url) == first_origin else self._strict_policy
        url = policy.check_url(url)
        method = request.method
        if (status == 303 and method != "HEAD") or (status in (301, 302) and method == "POST"):
            method = "GET"
        if method != request.method:
            body = None
        cross_origin = _origin(url) != _origin(request.url)
        headers = [
            (k, v)
            for k, v in request.headers.raw
            if _keep_header(k.decode("latin-1").lower(), cross_origin, body is not None)
        ]
        return (
            httpx.Request(
                method, url, headers=headers, content=body, extensions=request.extensions
            ),
            body,
        )


def _keep_header(name: str, cross_origin: bool, has_body: bool) -> bool:
    if name in ("host", "content-length", "transfer-encoding", "cookie"):
        return False  # recomputed for the new request; no cookie jar to forward
    if not has_body and name == "content-type":
        return False
    return not cross_origin or name in CROSS_ORIGIN_HEADERS


def _check_header(name: str, value: str) -> None:
    if not isinstance(name, str) or not _TOKEN.match(name):
        raise InvalidRequest(f"invalid header name {name!r}")
    if name.lower() in FORBIDDEN_HEADERS:
        raise InvalidRequest(f"header {name!r} is set by the client and cannot be given")
    if not isinstance(value, str) or _BAD_VALUE.search(value):
        raise InvalidRequest(f"invalid value for header {name!r}")


def _origin(url: httpx.URL) -> tuple[str, bytes, int]:
    return url.scheme, url.raw_host, port_of(url)


def _display(url: httpx.URL) -> str:
    """A URL for messages: no query or fragment, which may hold secrets."""
    return str(url.copy_with(query=None, fragment=None))


def _translate(
    exc: httpx.TransportError, method: str, where: str, timeout: float
) -> OutboundHttpError:
    """httpx's transport errors as the node errors users see."""
    if isinstance(exc, httpx.TimeoutException):
        return HttpTimeout(
            f"{method} {where} timed out ({type(exc).__name__})", url=where, timeout_s=timeout
        )
    tls = _ssl_cause(exc)
    if tls is not None:
        if isinstance(tls, ssl.SSLCertVerificationError):
            detail = tls.verify_message
        else:
            detail = tls.reason or str(tls)
        return TlsError(f"TLS with {where} failed: {detail}", url=where)
    if isinstance(exc, httpx.LocalProtocolError):
        return InvalidRequest(f"invalid request to {where}: {exc}", url=where)
    return HttpConnectionError(f"{method} {where} failed: {exc or type(exc).__name__}", url=where)


def _ssl_cause(exc: BaseException) -> ssl.SSLError | None:
    """The TLS error behind ``exc``, unless it is just the peer hanging up."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLError) and not isinstance(
            seen, ssl.SSLEOFError | ssl.SSLZeroReturnError
        ):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


if TYPE_CHECKING:

    def _implements_the_port(client: GuardedHttpClient) -> HttpClient:
        return client  # mypy proves GuardedHttpClient satisfies the HttpClient port

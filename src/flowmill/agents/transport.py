"""An httpx transport for the official SDKs that sends through Flowmill's HTTP port.

The OpenAI and Anthropic SDKs take an ``http_client``; the one they get here has this
transport, which hands every request to the node services' :class:`HttpClient` — in
production the SSRF-guarded client (each hop vetted, addresses pinned, body bounded).
So a tenant's ``base_url`` can no more reach the internal network than an
``http_request`` node can. Redirects are not followed (an LLM API does not redirect;
the SDK sees the 3xx).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx2

from flowmill.net.http import FORBIDDEN_HEADERS

if TYPE_CHECKING:
    from flowmill.engine.services import HttpClient

#: Response headers describing the wire encoding, which the port already undid.
_WIRE_HEADERS = frozenset({"content-encoding", "content-length", "transfer-encoding"})


class PortTransport(httpx2.AsyncBaseTransport):
    """Sends httpx requests through an :class:`HttpClient` (whole bodies, no streams).

    Args:
        http: The HTTP port (SSRF-guarded in production).
        timeout_s: Limit of each exchange.
    """

    def __init__(self, http: HttpClient, timeout_s: float) -> None:
        self._http = http
        self._timeout_s = timeout_s

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        """Send ``request``; the answer's body is read whole."""
        body = await request.aread()
        headers = {
            name: value
            for name, value in request.headers.items()
            if name.lower() not in FORBIDDEN_HEADERS
        }
        response = await self._http.request(
            request.method,
            str(request.url),
            headers=headers,
            content=body or None,
            timeout_s=self._timeout_s,
            follow_redirects=False,
        )
        return httpx2.Response(
            response.status,
            headers=[(k, v) for k, v in response.headers.items() if k.lower() not in _WIRE_HEADERS],
            content=response.body,
            request=request,
        )

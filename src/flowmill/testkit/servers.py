"""Stand-in servers for tests, on loopback: free ports, a counting TCP listener, an HTTP
stub answering scripted routes, and a Redis (RESP) stub.

Real sockets and real HTTP, standard library only, each in a thread of its own so
synchronous and asynchronous tests can use them alike. Every server records what it
received, so a test can prove a request that should have been blocked never arrived.
"""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from ipaddress import ip_address
from typing import Any
from urllib.parse import parse_qs, urlsplit

__all__ = [
    "Answer",
    "RespStub",
    "Route",
    "Seen",
    "StubHandler",
    "StubServer",
    "TcpListener",
    "free_port",
    "resp_stub",
    "stub_api",
    "tcp_listener",
]


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on (bound and released at once)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
    return port


# --- a TCP port that counts connections ----------------------------------------------


@dataclass
class TcpListener:
    """A listening TCP port; ``accepted`` lists the peers that connected."""

    port: int
    accepted: list[tuple[str, int]] = field(default_factory=list)


@contextmanager
def tcp_listener(host: str = "0.0.0.0") -> Iterator[TcpListener]:  # noqa: S104
    """Listen on ``host`` (every IPv4 address by default) and count connections.

    For tests that a sandbox cannot connect out: the port is open, so a connect that
    fails was stopped by the sandbox, not by a closed port.
    """
    server = socket.create_server((host, 0))
    server.settimeout(0.05)
    found = TcpListener(server.getsockname()[1])
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, peer = server.accept()
            except TimeoutError:
                continue
            found.accepted.append(peer)
            conn.close()

    thread = threading.Thread(target=accept, name="tcp-listener", daemon=True)
    thread.start()
    try:
        yield found
    finally:
        stop.set()
        thread.join(5)
        server.close()


# --- HTTP ------------------------------------------------------------------------------


@dataclass
class Seen:
    """One request a stub server received."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class StubHandler(BaseHTTPRequestHandler):
    """Records each request and hands it to the server's route for its path."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    timeout = 5
    server: StubServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _dispatch(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        seen = Seen(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
        self.server.seen.append(seen)
        self.server.route_for(self.command, url.path)(self, seen, query)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _dispatch

    def reply(
        self,
        status: int,
        body: bytes = b"",
        content_type: str | None = "application/json",
        headers: Sequence[tuple[str, str]] = (),
        *,
        length: bool = True,
    ) -> None:
        """Answer; ``length=False`` sends no Content-Length and closes the connection."""
        self.send_response(status)
        if content_type:
            self.send_header("Content-Type", content_type)
        for k, v in headers:
            self.send_header(k, v)
        if length:
            self.send_header("Content-Length", str(len(body)))
        else:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def json(self, value: Any, status: int = 200, headers: Sequence[tuple[str, str]] = ()) -> None:
        """Answer ``value`` as JSON."""
        self.reply(status, json.dumps(value).encode(), headers=headers)


Route = Callable[[StubHandler, Seen, dict[str, str]], None]
"""Answers one request: ``route(handler, seen, query)``."""
Answer = Route | tuple[int, Any]
"""A route, or a fixed ``(status, JSON body)``."""


def _fixed(status: int, body: Any) -> Route:
    def route(h: StubHandler, seen: Seen, q: dict[str, str]) -> None:
        h.json(body, status)

    return route


def _not_found(h: StubHandler, seen: Seen, q: dict[str, str]) -> None:
    h.json({"error": "not found"}, 404)


class StubServer(ThreadingHTTPServer):
    """An HTTP server in a thread answering from ``routes``; TLS when given a context.

    ``routes`` maps ``"METHOD /path"`` (exact) or ``"/first-segment"`` (any method, any
    path below it) to an :data:`Answer`. Anything else is a 404. Every request is in
    ``seen``. Use as a context manager, or :meth:`start` and :meth:`stop`.
    """

    daemon_threads = True
    allow_reuse_address = False

    def __init__(
        self,
        routes: Mapping[str, Answer] | None = None,
        *,
        name: str = "stub",
        host: str = "127.0.0.1",
        port: int = 0,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.name = name
        self.tls = tls
        self.routes: dict[str, Answer] = dict(routes or {})
        self.seen: list[Seen] = []
        self.stopping = threading.Event()
        if ip_address(host).version == 6:
            self.address_family = socket.AF_INET6
        super().__init__((host, port), StubHandler)
        self.host = host
        self.port: int = self.server_address[1]
        self._thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.01}, name=f"stub-{name}"
        )

    def route_for(self, method: str, path: str) -> Route:
        """The route answering ``method path``."""
        answer = self.routes.get(f"{method} {path}")
        if answer is None:
            first = path.split("/")[1] if path.count("/") >= 1 else ""
            answer = self.routes.get(f"/{first}", _not_found)
        return _fixed(*answer) if isinstance(answer, tuple) else answer

    def url(self, path: str = "/", *, host: str | None = None) -> str:
        """The URL of ``path`` on this server (``host`` overrides the address)."""
        scheme = "https" if self.tls else "http"
        where = host or (f"[{self.host}]" if ":" in self.host else self.host)
        return f"{scheme}://{where}:{self.port}{path}"

    def calls(self, method: str, path: str) -> list[Seen]:
        """The requests received for ``method path``."""
        return [r for r in self.seen if r.method == method and r.path == path]

    @property
    def requests(self) -> list[Seen]:
        """``seen``, under the name the acceptance tests' ``stub_api`` gave it."""
        return self.seen

    def start(self) -> StubServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self.shutdown()
        self.server_close()
        self._thread.join(5)

    def __enter__(self) -> StubServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def finish_request(self, request: Any, client_address: Any) -> None:
        if self.tls is None:
            super().finish_request(request, client_address)
            return
        try:
            wrapped = self.tls.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return  # the client refused our certificate: that is the test
        try:
            super().finish_request(wrapped, client_address)
        finally:
            wrapped.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients hang up on purpose (size limits, timeouts)


@contextmanager
def stub_api(routes: Mapping[str, Answer]) -> Iterator[StubServer]:
    """An outside service's API on a free loopback port for the duration of the block."""
    with StubServer(routes, name="api") as server:
        yield server


# --- Redis -----------------------------------------------------------------------------


@dataclass
class RespStub:
    """What :func:`resp_stub` serves on, and the command lines it received."""

    port: int
    seen: list[bytes] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


@contextmanager
def resp_stub() -> Iterator[RespStub]:
    """A TCP server speaking just enough RESP for a health check: ``AUTH`` answers
    ``+OK``, ``PING`` answers ``+PONG``; every line received is recorded."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.05)
    stub = RespStub(server.getsockname()[1])
    stop = threading.Event()

    def serve(conn: socket.socket) -> None:
        with contextlib.suppress(OSError), conn, conn.makefile("rb") as lines:
            for line in lines:
                stub.seen.append(line)
                if line.upper().startswith(b"PING"):
                    conn.sendall(b"+PONG\r\n")
                elif line.upper().startswith(b"AUTH"):
                    conn.sendall(b"+OK\r\n")

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            conn.settimeout(5)
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept, name="resp-stub", daemon=True)
    thread.start()
    try:
        yield stub
    finally:
        stop.set()
        thread.join(5)
        server.close()

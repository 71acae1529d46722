"""Real HTTP(S) servers on loopback addresses for the outbound HTTP tests.

Standard library only (``http.server`` in a thread). Each server records the requests it
saw, so tests can prove a blocked request never reached it. TLS certificates come from
``openssl`` (a throwaway CA), made once per session.
"""

from __future__ import annotations

import errno
import functools
import gzip
import json
import shutil
import socket
import ssl
import subprocess
import threading
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from ipaddress import ip_address
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from tests.conftest import unavailable


@dataclass
class Seen:
    """One request a server received."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Certs:
    """A test CA and a server certificate for some DNS names."""

    ca: Path
    cert: Path
    key: Path

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca))

    def server_context(self, sni_seen: list[str]) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(self.cert), str(self.key))
        ctx.sni_callback = lambda _sock, name, _ctx: sni_seen.append(name or "")  # type: ignore[assignment,misc]
        return ctx


@functools.cache
def system_tls() -> ssl.SSLContext:
    """httpx's default TLS context, made once: loading the CA bundle takes ~30 ms."""
    return httpx.create_ssl_context()


def make_certs(directory: Path, names: Iterable[str]) -> Certs | None:
    """A CA and a leaf certificate for ``names``; ``None`` without the openssl tool."""
    openssl = shutil.which("openssl")
    if openssl is None:
        return None
    ca_key, ca, key, csr, cert = (directory / n for n in ("ca.key", "ca.pem", "k", "csr", "c"))
    ext = directory / "ext.cnf"
    san = ",".join(f"DNS:{n}" for n in names)
    ext.write_text(
        f"subjectAltName={san}\nbasicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
        "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n"
    )
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run = lambda *args: subprocess.run([openssl, *args], check=True, capture_output=True)  # noqa: E731
    run("req", "-x509", *ec, "-keyout", ca_key, "-out", ca, "-days", "2",
        "-subj", "/CN=Flowmill test CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign")  # fmt: skip
    run("req", *ec, "-keyout", key, "-out", csr, "-subj", "/CN=flowmill test server")
    run("x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
        "-out", cert, "-days", "2", "-extfile", ext)  # fmt: skip
    return Certs(ca, cert, key)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    timeout = 5
    server: LoopbackServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _dispatch(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        seen = Seen(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
        self.server.seen.append(seen)
        route = ROUTES.get(url.path.split("/")[1] if "/" in url.path else "", _not_found)
        route(self, seen, query)

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
        self.reply(status, json.dumps(value).encode(), headers=headers)


Route = Callable[[_Handler, Seen, dict[str, str]], None]


def _not_found(h: _Handler, seen: Seen, q: dict[str, str]) -> None:
    h.json({"error": "not found"}, 404)


def _json(h: _Handler, seen: Seen, q: dict[str, str]) -> None:
    h.json({"ok": True, "server": h.server.name})


def _echo(h: _Handler, seen: Seen, q: dict[str, str]) -> None:
    h.json(
        {
            "server": h.server.name,
            "method": seen.method,
            "path": seen.path,
            "headers": seen.headers,
            "body": seen.body.decode("utf-8", "replace"),
        }
    )


def _text(h: _Handler, seen: Seen, q: dict[str, str]) -> None:
    h.reply(200, f"hello from {h.server.name}".encode(), "text/plain; charset=utf-8")


def _latin1(h: _Handler, seen: Seen, q: dict[str, str]) -> None:
    h.reply(200, "café".encode("latin-1"), "text/plain; charset=iso-8859-1")


def _html(h: _Handler, seen: Seen, q: dict[str, str]) -> None:
    h.reply(200, b"<p>hi</p>", "text/html")


def _binary(h: _Handler, seen: Seen, q: dict[str, str]) -> None:
    h.reply(200, bytes(range(256)), "application/octet-stream")


def _untyped(h: _Handler, seen: Seen, q: dict[str, str]) -> None:
    h.reply(200, q.get("body", "plain words").encode(), None)


def _badjson(h: _Handler, seen: Seen, q: dict[str, str]) -> None:
    h.reply(200, b"{not json", "application/json")


def _status(h: _Handler, seen: Seen, q: dict[str, str]) -> None:
    code = int(seen.path.split("/")[2].split("?")[0])
    headers = [("Retry-After", q["retry_after"])] if "retry_after" in q else []
    if code in (204, 304):
        h.reply(code, b"", None, headers)
    else:
        h.json({"error": f"status {code}", "detail": q.get("detail", "")}, code, headers)


def _redirect(h: _Handler, seen: Seen, q: dict[str, str]) -> None:
    h.reply(int(q.get("code", "302")), b"", None, [("Location", q["to"])])


def _loop(h: _Handler, seen: Seen, q: dict[str, str]) -> None:
    h.reply(302, b"", None, [("Location", "/loop")])


def _setcookie(h: _Handler, seen: Seen, q: dict[str, str]) -> None:
    h.json({"ok": True}, headers=[("Set-Cookie", "session=secret; Path=/")])


def _bytes(h: _Handler, seen: Seen, q: dict[str, str]) -> None:
    n = int(q["n"])
    if q.get("length", "1") == "1":
        h.reply(200, b"x" * n, "application/octet-stream")
        return
    h.reply(200, b"", "application/octet-stream", length=False)
    sent = 0
    while sent < n:
        chunk = b"x" * min(65536, n - sent)
        h.wfile.write(chunk)
        sent += len(chunk)


def _gzip(h: _Handler, seen: Seen, q: dict[str, str]) -> None:
    data = gzip.compress(b"\0" * int(q["n"]), compresslevel=1)
    h.reply(200, data, "application/octet-stream", [("Content-Encoding", "gzip")])


def _gzip_json(h: _Handler, seen: Seen, q: dict[str, str]) -> None:
    data = gzip.compress(json.dumps({"compressed": True}).encode())
    h.reply(200, data, "application/json", [("Content-Encoding", "gzip")])


def _deflate_raw(h: _Handler, seen: Seen, q: dict[str, str]) -> None:
    z = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    data = z.compress(b"raw deflate body") + z.flush()
    h.reply(200, data, "text/plain", [("Content-Encoding", "deflate")])


def _slow(h: _Handler, seen: Seen, q: dict[str, str]) -> None:
    h.server.stopping.wait(float(q.get("s", "5")))
    h.json({"slow": True})


def _drip(h: _Handler, seen: Seen, q: dict[str, str]) -> None:
    """Headers at once, then a byte every 50 ms: no read ever times out."""
    h.send_response(200)
    h.send_header("Content-Length", "1000000")
    h.end_headers()
    while not h.server.stopping.is_set():
        h.wfile.write(b"x")
        h.wfile.flush()
        h.server.stopping.wait(0.05)


def _hangup(h: _Handler, seen: Seen, q: dict[str, str]) -> None:
    h.close_connection = True
    h.connection.shutdown(socket.SHUT_RDWR)


def _flaky(h: _Handler, seen: Seen, q: dict[str, str]) -> None:
    # /flaky?key=K&fails=N: 503 for the first N requests of this path, then 200
    tries = sum(1 for s in h.server.seen if s.path == seen.path)
    if tries <= int(q.get("fails", "1")):
        h.json({"error": "try again"}, 503)
    else:
        h.json({"ok": True, "tries": tries})


ROUTES: dict[str, Route] = {
    "flaky": _flaky,
    "json": _json,
    "echo": _echo,
    "text": _text,
    "latin1": _latin1,
    "html": _html,
    "binary": _binary,
    "untyped": _untyped,
    "badjson": _badjson,
    "status": _status,
    "redirect": _redirect,
    "loop": _loop,
    "setcookie": _setcookie,
    "bytes": _bytes,
    "gzip": _gzip,
    "gzip-json": _gzip_json,
    "deflate-raw": _deflate_raw,
    "slow": _slow,
    "drip": _drip,
    "hangup": _hangup,
}


class LoopbackServer(ThreadingHTTPServer):
    """A threaded server that records requests; TLS when given a context."""

    daemon_threads = True
    allow_reuse_address = False

    def __init__(self, name: str, host: str, port: int = 0, tls: ssl.SSLContext | None = None):
        self.name = name
        self.tls = tls
        self.seen: list[Seen] = []
        self.stopping = threading.Event()
        if ip_address(host).version == 6:
            self.address_family = socket.AF_INET6
        super().__init__((host, port), _Handler)
        self.host = host
        self.port: int = self.server_address[1]
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.01})

    def url(self, path: str = "/", *, host: str | None = None) -> str:
        scheme = "https" if self.tls else "http"
        where = host or (f"[{self.host}]" if ":" in self.host else self.host)
        return f"{scheme}://{where}:{self.port}{path}"

    def start(self) -> LoopbackServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self.shutdown()
        self.server_close()
        self._thread.join(5)

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


@dataclass
class Servers:
    """Servers started for one test; stopped together."""

    started: list[LoopbackServer] = field(default_factory=list)

    def start(
        self, name: str, host: str = "127.0.0.1", port: int = 0, tls: ssl.SSLContext | None = None
    ) -> LoopbackServer:
        try:
            server = LoopbackServer(name, host, port, tls).start()
        except OSError as e:
            if e.errno == errno.EADDRNOTAVAIL:  # macOS has only 127.0.0.1 on lo0
                unavailable(f"{host} is not a local address here (macOS: ifconfig lo0 alias)")
            raise
        self.started.append(server)
        return server

    def pair(self) -> tuple[LoopbackServer, LoopbackServer]:
        """A "public" server on 127.0.0.2 and an internal one on 127.0.0.1, same port.

        127.0.0.2 stands in for a public address: tests allow it with ``allow_cidrs``.
        """
        for _ in range(20):
            public = self.start("public", "127.0.0.2")
            try:
                return public, self.start("internal", "127.0.0.1", public.port)
            except OSError:
                public.stop()
                self.started.remove(public)
        raise RuntimeError("no free port on both 127.0.0.1 and 127.0.0.2")

    def stop(self) -> None:
        for server in self.started:
            server.stop()


def free_port() -> int:
    """A port nothing listens on (bound and released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port

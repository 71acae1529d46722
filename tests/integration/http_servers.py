"""Real HTTP(S) servers on loopback addresses for the outbound HTTP tests: the routes
they answer (JSON, text, redirects, compression, slow and dripping bodies...), TLS
certificates, and several servers per test.

The servers are ``flowmill.testing.StubServer``s: each records the requests it saw, so
tests can prove a blocked request never reached it. TLS certificates come from
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
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from flowmill.testing import Route, Seen, StubHandler, StubServer, free_port
from tests.conftest import unavailable

__all__ = [
    "ROUTES",
    "Certs",
    "LoopbackServer",
    "Seen",
    "Servers",
    "free_port",
    "make_certs",
    "system_tls",
]


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


def _not_found(h: StubHandler, seen: Seen, q: dict[str, str]) -> None:
    h.json({"error": "not found"}, 404)


def _json(h: StubHandler, seen: Seen, q: dict[str, str]) -> None:
    h.json({"ok": True, "server": h.server.name})


def _echo(h: StubHandler, seen: Seen, q: dict[str, str]) -> None:
    h.json(
        {
            "server": h.server.name,
            "method": seen.method,
            "path": seen.path,
            "headers": seen.headers,
            "body": seen.body.decode("utf-8", "replace"),
        }
    )


def _text(h: StubHandler, seen: Seen, q: dict[str, str]) -> None:
    h.reply(200, f"hello from {h.server.name}".encode(), "text/plain; charset=utf-8")


def _latin1(h: StubHandler, seen: Seen, q: dict[str, str]) -> None:
    h.reply(200, "café".encode("latin-1"), "text/plain; charset=iso-8859-1")


def _html(h: StubHandler, seen: Seen, q: dict[str, str]) -> None:
    h.reply(200, b"<p>hi</p>", "text/html")


def _binary(h: StubHandler, seen: Seen, q: dict[str, str]) -> None:
    h.reply(200, bytes(range(256)), "application/octet-stream")


def _untyped(h: StubHandler, seen: Seen, q: dict[str, str]) -> None:
    h.reply(200, q.get("body", "plain words").encode(), None)


def _badjson(h: StubHandler, seen: Seen, q: dict[str, str]) -> None:
    h.reply(200, b"{not json", "application/json")


def _status(h: StubHandler, seen: Seen, q: dict[str, str]) -> None:
    code = int(seen.path.split("/")[2].split("?")[0])
    headers = [("Retry-After", q["retry_after"])] if "retry_after" in q else []
    if code in (204, 304):
        h.reply(code, b"", None, headers)
    else:
        h.json({"error": f"status {code}", "detail": q.get("detail", "")}, code, headers)


def _redirect(h: StubHandler, seen: Seen, q: dict[str, str]) -> None:
    h.reply(int(q.get("code", "302")), b"", None, [("Location", q["to"])])


def _loop(h: StubHandler, seen: Seen, q: dict[str, str]) -> None:
    h.reply(302, b"", None, [("Location", "/loop")])


def _setcookie(h: StubHandler, seen: Seen, q: dict[str, str]) -> None:
    h.json({"ok": True}, headers=[("Set-Cookie", "session=secret; Path=/")])


def _bytes(h: StubHandler, seen: Seen, q: dict[str, str]) -> None:
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


def _gzip(h: StubHandler, seen: Seen, q: dict[str, str]) -> None:
    data = gzip.compress(b"\0" * int(q["n"]), compresslevel=1)
    h.reply(200, data, "application/octet-stream", [("Content-Encoding", "gzip")])


def _gzip_json(h: StubHandler, seen: Seen, q: dict[str, str]) -> None:
    data = gzip.compress(json.dumps({"compressed": True}).encode())
    h.reply(200, data, "application/json", [("Content-Encoding", "gzip")])


def _deflate_raw(h: StubHandler, seen: Seen, q: dict[str, str]) -> None:
    z = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    data = z.compress(b"raw deflate body") + z.flush()
    h.reply(200, data, "text/plain", [("Content-Encoding", "deflate")])


def _slow(h: StubHandler, seen: Seen, q: dict[str, str]) -> None:
    h.server.stopping.wait(float(q.get("s", "5")))
    h.json({"slow": True})


def _drip(h: StubHandler, seen: Seen, q: dict[str, str]) -> None:
    """Headers at once, then a byte every 50 ms: no read ever times out."""
    h.send_response(200)
    h.send_header("Content-Length", "1000000")
    h.end_headers()
    while not h.server.stopping.is_set():
        h.wfile.write(b"x")
        h.wfile.flush()
        h.server.stopping.wait(0.05)


def _hangup(h: StubHandler, seen: Seen, q: dict[str, str]) -> None:
    h.close_connection = True
    h.connection.shutdown(socket.SHUT_RDWR)


def _flaky(h: StubHandler, seen: Seen, q: dict[str, str]) -> None:
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


class LoopbackServer(StubServer):
    """A stub server answering :data:`ROUTES` by the first segment of the path."""

    def __init__(self, name: str, host: str, port: int = 0, tls: ssl.SSLContext | None = None):
        routes = {f"/{segment}": route for segment, route in ROUTES.items()}
        super().__init__(routes, name=name, host=host, port=port, tls=tls)


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

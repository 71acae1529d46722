"""Throwaway Redis and PostgreSQL servers of a test's own, which it may kill and restart.

The shared servers are left alone: killing them would break every other test.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

from flowmill.testing import eventually_sync, free_port
from tests.conftest import unavailable


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def _wait_port(port: int, seconds: float) -> None:
    eventually_sync(lambda: _answers(port), seconds, f"a server listening on port {port}")


class PrivateRedis:
    """A redis-server (no persistence: a restart loses every job) on its own port."""

    def __init__(self, directory: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            unavailable("redis-server is not installed (needed to restart a private Redis)")
        self.binary, self.directory = binary, directory
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.directory)],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        _wait_port(self.port, 5)

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


class PrivatePostgres:
    """A PostgreSQL cluster of its own (fsync on), made with ``initdb``.

    PostgreSQL refuses to run as root, so as root the cluster belongs to the
    ``postgres`` user and its commands run through ``runuser``.
    """

    def __init__(self) -> None:
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb")) or [
            p for p in [shutil.which("initdb")] if p
        ]
        if not found:
            unavailable("initdb is not installed (needed for a private PostgreSQL)")
        self.bindir = Path(found[-1]).parent
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        # Not under pytest's tmp_path: that is private to root, and the server may not be.
        self.directory = Path(tempfile.mkdtemp(prefix="flowmill-pg-"))
        self.data = self.directory / "data"
        self._as: list[str] = []
        if os.geteuid() == 0:
            try:
                user = pwd.getpwnam("postgres")
            except KeyError:
                unavailable("running as root and there is no postgres user to run PostgreSQL")
            os.chown(self.directory, user.pw_uid, user.pw_gid)
            self._as = ["runuser", "-u", "postgres", "--"]

    def _run(self, *args: str, timeout: float = 60) -> None:
        subprocess.run(
            [*self._as, *args], check=True, capture_output=True, timeout=timeout,
            cwd=self.directory,
        )  # fmt: skip

    def init(self) -> None:
        self._run(
            str(self.bindir / "initdb"), "-D", str(self.data), "-U", "postgres",
            "--auth=trust", "-E", "UTF8", "--no-sync",
        )  # fmt: skip

    def start(self) -> None:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.directory} "
            "-c fsync=on -c max_connections=100"
        )
        self._run(
            str(self.bindir / "pg_ctl"), "-D", str(self.data), "-o", options,
            "-l", str(self.directory / "server.log"), "-w", "start",
        )  # fmt: skip
        _wait_port(self.port, 10)

    def crash(self) -> None:
        """Stop the way a crash does: no shutdown checkpoint; recovery on next start."""
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")

    def destroy(self) -> None:
        with contextlib.suppress(subprocess.SubprocessError):
            self._run(
                str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop",
                timeout=30,
            )  # fmt: skip
        shutil.rmtree(self.directory, ignore_errors=True)

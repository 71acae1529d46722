"""`flowmill serve` and the CLI as real subprocesses, for acceptance tests: a free
port, a home directory, the printed key, a clean stop."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.webhook_support import free_port


def env_for(home: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    return {
        **os.environ,
        "FLOWMILL_HOME": str(home),
        "FLOWMILL_SWEEP_INTERVAL_S": "0.1",
        "FLOWMILL_SHUTDOWN_GRACE_S": "2",
        **(extra or {}),
    }


@dataclass
class Served:
    proc: asyncio.subprocess.Process
    url: str
    lines: list[str]
    log: Path | None = None  # the server's stderr (its log lines)

    @property
    def key(self) -> str | None:
        for line in self.lines:
            if line.startswith("API key: "):
                return line.split()[-1]
        return None


async def _read_until_ready(proc: asyncio.subprocess.Process, url: str) -> list[str]:
    assert proc.stdout is not None
    lines: list[str] = []
    # A deadline, not a count of tries: a start-up at load 15 took past the 300 tries
    # (~15 s) of before; a healthy one answers in a second or two.
    deadline = asyncio.get_running_loop().time() + 60
    async with httpx.AsyncClient(timeout=30) as c:
        while asyncio.get_running_loop().time() < deadline:
            with contextlib.suppress(TimeoutError):
                raw = await asyncio.wait_for(proc.stdout.readline(), 0.05)
                if raw:
                    lines.append(raw.decode().rstrip("\n"))
            if proc.returncode is not None:
                raise AssertionError(f"serve exited early: {lines}")
            with contextlib.suppress(httpx.TransportError):
                if (await c.get(f"{url}/health")).status_code == 200:
                    # the banner is printed before the socket opens; drain what is there
                    with contextlib.suppress(TimeoutError):
                        while raw := await asyncio.wait_for(proc.stdout.readline(), 0.2):
                            lines.append(raw.decode().rstrip("\n"))
                    return lines
    raise AssertionError(f"serve did not come up within 60 s: {lines}")


@contextlib.asynccontextmanager
async def serve(home: Path, *args: str, env: dict[str, str] | None = None) -> AsyncIterator[Served]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with open(home / f"serve-{port}.log", "wb") as log:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "flowmill", "serve", "--port", str(port), *args,
            cwd=home, env=env_for(home, env), stdout=subprocess.PIPE, stderr=log,
        )  # fmt: skip
        try:
            yield Served(proc, url, await _read_until_ready(proc, url), home / f"serve-{port}.log")
        finally:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(proc.wait(), 20)
            if proc.returncode is None:
                proc.kill()
                await proc.wait()


async def cli(home: Path, *args: str, env: dict[str, str] | None = None) -> str:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "flowmill", *args,
        cwd=home, env=env_for(home, env), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    out, errout = await proc.communicate()
    assert proc.returncode == 0, errout.decode()
    return out.decode()


def last_line(text: str) -> str:
    return text.strip().splitlines()[-1].strip()

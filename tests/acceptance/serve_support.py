"""``flowmill serve`` in a subprocess on a free port, and the CLI beside it, for the
acceptance tests that drive Flowmill over real HTTP."""

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

from flowmill.testing import eventually, free_port


def env_for(home: Path) -> dict[str, str]:
    return {
        **os.environ,
        "FLOWMILL_HOME": str(home),
        "FLOWMILL_SWEEP_INTERVAL_S": "0.1",
        "FLOWMILL_SHUTDOWN_GRACE_S": "2",
    }


@dataclass
class Served:
    proc: asyncio.subprocess.Process
    url: str
    lines: list[str]

    @property
    def key(self) -> str | None:
        for line in self.lines:
            if line.startswith("API key: "):
                return line.split()[-1]
        return None


async def _read_until_ready(proc: asyncio.subprocess.Process, url: str) -> list[str]:
    assert proc.stdout is not None
    stdout = proc.stdout
    lines: list[str] = []

    async def read_lines(wait_s: float) -> None:
        with contextlib.suppress(TimeoutError):
            while raw := await asyncio.wait_for(stdout.readline(), wait_s):
                lines.append(raw.decode().rstrip("\n"))

    async with httpx.AsyncClient() as c:

        async def answering() -> bool:
            await read_lines(0.05)
            if proc.returncode is not None:
                raise RuntimeError(f"serve exited early: {lines}")
            with contextlib.suppress(httpx.TransportError):
                return (await c.get(f"{url}/health")).status_code == 200
            return False

        await eventually(answering, 30, f"flowmill serve answering at {url} ({lines})")
    await read_lines(0.2)  # the banner is printed before the socket opens: the rest of it
    return lines


@contextlib.asynccontextmanager
async def serve(home: Path, *args: str) -> AsyncIterator[Served]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with open(home / f"serve-{port}.log", "wb") as log:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "flowmill", "serve", "--port", str(port), *args,
            cwd=home, env=env_for(home), stdout=subprocess.PIPE, stderr=log,
        )  # fmt: skip
        try:
            yield Served(proc, url, await _read_until_ready(proc, url))
        finally:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(proc.wait(), 20)
            if proc.returncode is None:
                proc.kill()
                await proc.wait()


async def cli(home: Path, *args: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "flowmill", *args,
        cwd=home, env=env_for(home), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    out, errout = await proc.communicate()
    assert proc.returncode == 0, errout.decode()
    return out.decode()


def last_line(text: str) -> str:
    return text.strip().splitlines()[-1].strip()

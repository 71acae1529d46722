"""`flowmill serve` as a user runs it: a real process on a free port, a temp SQLite
database, the printed key, real HTTP. Also the CLI's tenants/keys commands, a clean
stop on SIGTERM, and the distributed layout (`serve --no-worker` + `flowmill worker`)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.api_support import THREE_NODES

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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
    lines: list[str] = []
    async with httpx.AsyncClient() as c:
        for _ in range(300):
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
    raise AssertionError(f"serve did not come up: {lines}")


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


async def test_serve_first_start_prints_a_key_once_and_runs_the_flow(tmp_path: Path) -> None:
    async with serve(tmp_path) as s:
        assert s.key is not None and s.key.startswith("fm_"), s.lines
        assert any(f'curl -H "Authorization: Bearer {s.key}"' in x for x in s.lines)
        headers = {"Authorization": f"Bearer {s.key}"}
        async with httpx.AsyncClient(base_url=s.url, headers=headers, timeout=30) as c:
            assert (await c.get("/ready")).json()["status"] == "ready"
            wf = (await c.post("/api/workflows", json=THREE_NODES)).json()["id"]
            assert (await c.post(f"/api/workflows/{wf}/publish")).status_code == 200
            r = await c.post(
                f"/api/workflows/{wf}/execute",
                params={"wait": 10},
                json={"input": {"message": "hi"}},
            )
            assert r.status_code == 200, r.text
            body = r.json()
            assert body["output"] == "The processed result is: hi processed"
            assert all(n["duration_ms"] is not None for n in body["nodes"])
            listed = (await c.get("/api/executions", params={"status": "succeeded"})).json()
            assert [e["id"] for e in listed["items"]] == [body["id"]]
        s.proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(s.proc.wait(), 20) == 0

    # A second start on the same database prints no key, and the first key still works.
    async with serve(tmp_path) as again:
        assert again.key is None, again.lines
        async with httpx.AsyncClient(base_url=again.url, headers=headers) as c:
            assert (await c.get("/api/workflows")).status_code == 200


async def test_serve_cli_tenants_and_keys_scope_requests(tmp_path: Path) -> None:
    tenant = last_line(await cli(tmp_path, "tenants", "create", "Acme Corp"))
    assert tenant.startswith("acme-corp-")
    key = last_line(await cli(tmp_path, "keys", "create", "--tenant", tenant, "--name", "ci"))
    assert key.startswith("fm_")
    other = last_line(await cli(tmp_path, "tenants", "create", "Other", "--id", "other"))
    other_key = last_line(await cli(tmp_path, "keys", "create", "--tenant", other))
    listing = await cli(tmp_path, "keys", "list", "--tenant", tenant)
    assert key.split("_")[1] in listing and key not in listing  # prefix shown, secret not
    async with serve(tmp_path) as s, httpx.AsyncClient(base_url=s.url) as c:
        acme = {"Authorization": f"Bearer {key}"}
        me = (await c.get("/api/tenant", headers=acme)).json()
        assert me["id"] == tenant
        wf = (await c.post("/api/workflows", headers=acme, json=THREE_NODES)).json()["id"]
        assert s.key is None  # keys existed already: no bootstrap key
        stranger = {"Authorization": f"Bearer {other_key}"}
        assert (await c.get(f"/api/workflows/{wf}", headers=stranger)).status_code == 404
        prefix = "_".join(key.split("_")[:2])
        await cli(tmp_path, "keys", "revoke", prefix)
        assert (await c.get("/api/tenant", headers=acme)).status_code == 401


async def test_serve_no_worker_with_a_separate_worker_process(tmp_path: Path) -> None:
    async with serve(tmp_path, "--no-worker") as s:
        assert any("API only" in x for x in s.lines)
        headers = {"Authorization": f"Bearer {s.key}"}
        async with httpx.AsyncClient(base_url=s.url, headers=headers, timeout=30) as c:
            wf = (await c.post("/api/workflows", json={**THREE_NODES, "status": "active"})).json()
            started = await c.post(
                f"/api/workflows/{wf['id']}/execute", json={"input": {"message": "far"}}
            )
            assert started.status_code == 202
            execution_id = started.json()["execution_id"]
            with open(tmp_path / "worker.log", "wb") as log:
                worker = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "flowmill", "worker",
                    cwd=tmp_path, env=env_for(tmp_path), stdout=log, stderr=log,
                )  # fmt: skip
                try:
                    r = await c.get(f"/api/executions/{execution_id}")
                    for _ in range(200):
                        r = await c.get(f"/api/executions/{execution_id}")
                        if r.json()["status"] == "succeeded":
                            break
                        await asyncio.sleep(0.05)
                    assert r.json()["status"] == "succeeded", r.json()
                    assert r.json()["output"] == "The processed result is: far processed"
                finally:
                    worker.send_signal(signal.SIGTERM)
                    await asyncio.wait_for(worker.wait(), 20)

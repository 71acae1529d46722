"""`flowmill serve` as a user runs it: a real process on a free port, a temp SQLite
database, the printed key, real HTTP. Also the CLI's tenants/keys commands, a clean
stop on SIGTERM, and the distributed layout (`serve --no-worker` + `flowmill worker`)."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from flowmill.testing import eventually
from tests.api_support import THREE_NODES
from tests.serve_support import cli, env_for, last_line, serve

pytestmark = pytest.mark.slow


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
        async with httpx.AsyncClient(base_url=again.url, headers=headers, timeout=30) as c:
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
    async with serve(tmp_path) as s, httpx.AsyncClient(base_url=s.url, timeout=30) as c:
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

                    async def succeeded() -> dict[str, Any]:
                        body: dict[str, Any] = (
                            await c.get(f"/api/executions/{execution_id}")
                        ).json()
                        assert body["status"] == "succeeded", body
                        return body

                    done = await eventually(succeeded, 30, "the worker process running it")
                    assert done["output"] == "The processed result is: far processed"
                finally:
                    worker.send_signal(signal.SIGTERM)
                    await asyncio.wait_for(worker.wait(), 20)

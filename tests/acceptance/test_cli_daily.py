"""The commands a user runs every day, black box: run's display, executions and
workflows, validate, --version and --help."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from flowmill.testing import eventually_sync
from tests.acceptance.conftest import Flowmill
from tests.validation_support import EXPECTED, MANY_PROBLEMS

LOGS_AND_DELAY = {
    "name": "logs and delay",
    "nodes": [
        {"id": "t", "type": "trigger", "config": {"triggerType": "manual"}},
        {
            "id": "f",
            "type": "function",
            "config": {"code": "console.log('hello from js', input.data.n); return {n: 1};"},
        },
        {"id": "wait", "type": "delay", "config": {"ms": 1500}},
        {"id": "boom", "type": "fail", "config": {"message": "boom"}},
        {"id": "after", "type": "noop", "config": {}},
    ],
    "edges": [
        {"source": "t", "target": "f"},
        {"source": "f", "target": "wait"},
        {"source": "wait", "target": "boom"},
        {"source": "boom", "target": "after"},
    ],
}


def write(tmp_path: Path, name: str, doc: object) -> str:
    path = tmp_path / name
    path.write_text(json.dumps(doc))
    return str(path)


def row(output: str, node: str) -> str:
    (line,) = [x for x in output.splitlines() if x.strip().startswith(f"{node} ")]
    return line


def test_cli_daily_version_and_flags_without_type_labels(flowmill: Flowmill) -> None:
    version = flowmill("--version")
    assert (version.code, version.stdout.strip()) == (0, "flowmill 0.1.0")
    for args in (["run", "--help"], ["executions", "list", "--help"], ["--help"]):
        help_ = flowmill(*args, extra_env={"COLUMNS": "120"})
        assert help_.code == 0
        assert "<bool>" not in help_.stdout, args
    assert re.search(r"--json\s+Print", flowmill("run", "--help").stdout)
    commands = flowmill("--help", extra_env={"COLUMNS": "120"}).stdout
    for name in ("executions", "workflows", "validate", "run", "serve"):
        assert re.search(rf"│ {name}\s", commands), name


def test_cli_daily_run_shows_logs_not_run_and_real_durations(
    flowmill: Flowmill, tmp_path: Path
) -> None:
    path = write(tmp_path, "wf.json", LOGS_AND_DELAY)
    result = flowmill("run", path, "--input", '{"n": 7}')
    assert result.code == 1, result.stderr
    out = result.stdout
    assert "hello from js 7" in out  # console.log output
    assert "not run" in row(out, "after")
    assert "pending" not in out
    # the 1.5 s durable delay took 1.5 s, whatever its own millisecond of work
    assert re.search(r"\b1\.[5-9] s\b", row(out, "wait")), row(out, "wait")
    doc = flowmill("run", path, "--input", '{"n": 8}', "--json").json()
    assert {"node_id": "f", "level": "info", "message": "hello from js 8"} in doc["logs"]


def test_cli_daily_executions_list_show_logs(flowmill: Flowmill, tmp_path: Path) -> None:
    path = write(tmp_path, "wf.json", LOGS_AND_DELAY)
    execution_id = flowmill("run", path, "--json").json()["execution_id"]
    listed = flowmill("executions", "list", "--json").json()
    assert [(x["id"], x["status"], x["workflow"]) for x in listed] == [
        (execution_id, "failed", "logs and delay")
    ]
    table = flowmill("executions", "list").stdout
    assert execution_id in table and "failed" in table

    shown = flowmill("executions", "show", execution_id)
    assert shown.code == 0, shown.stderr
    assert "not run" in row(shown.stdout, "after")
    assert re.search(r"\b1\.[5-9] s\b", row(shown.stdout, "wait"))
    assert "hello from js" in shown.stdout
    assert "WorkflowFailed: boom (node boom)" in shown.stdout
    as_json = flowmill("executions", "show", execution_id, "--json").json()
    assert as_json["nodes"]["after"]["status"] == "not run"
    assert as_json["status"] == "failed"

    logs = flowmill("executions", "logs", execution_id)
    assert "hello from js" in logs.stdout
    assert flowmill("executions", "logs", execution_id, "--json").json()[0]["node_id"] == "f"

    missing = flowmill("executions", "show", "01a24b2a-0000-7000-8000-000000000000")
    assert missing.code == 1
    assert "no execution 01a24b2a-0000-7000-8000-000000000000" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_cli_daily_follow_tracks_a_running_execution(flowmill: Flowmill, tmp_path: Path) -> None:
    slow = {
        **LOGS_AND_DELAY,
        "name": "slow",
        "nodes": [
            *LOGS_AND_DELAY["nodes"][:2],
            # long enough that follow starts while it waits, even on a loaded machine
            {"id": "wait", "type": "delay", "config": {"ms": 12000}},
        ],
        "edges": LOGS_AND_DELAY["edges"][:2],
    }
    path = write(tmp_path, "slow.json", slow)
    env = {**os.environ, "FLOWMILL_HOME": str(tmp_path / "home"), "FLOWMILL_LOG_LEVEL": "error"}
    running = subprocess.Popen(
        [sys.executable, "-m", "flowmill", "run", path, "--json"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:

        def started() -> list[dict[str, object]]:
            if running.poll() is not None:  # a run that ended early will never be listed
                out, err = running.communicate()
                raise RuntimeError(f"run exited {running.returncode}: {out!r} {err!r}")
            # the two processes may both be creating the database at first: try again
            listed = flowmill("executions", "list", "--json")
            assert listed.code == 0, listed.stderr
            return listed.json()

        # a loaded CI machine once took over 30 s to start the run
        listed = eventually_sync(started, 60, "the run's execution")
        followed = flowmill("executions", "follow", listed[0]["id"])
        assert followed.code == 0, followed.stderr
        assert "wait  waiting" in followed.stdout  # seen while it waited
        assert re.search(r"execution \S+ succeeded", followed.stdout)
        assert "hello from js" in followed.stdout
    finally:
        out, err = running.communicate(timeout=60) if running.returncode is None else ("", "")
    assert json.loads(out)["status"] == "succeeded", err


def test_cli_daily_workflows_import_list_export(flowmill: Flowmill, tmp_path: Path) -> None:
    path = write(tmp_path, "wf.json", LOGS_AND_DELAY)
    imported = flowmill("workflows", "import", path)
    assert imported.code == 0, imported.stderr
    workflow_id = imported.stdout.strip()
    assert "version 1" in imported.stderr
    again = flowmill("workflows", "import", path)
    assert "unchanged (version 1)" in again.stderr
    listed = flowmill("workflows", "list", "--json").json()
    assert [(w["id"], w["name"]) for w in listed] == [(workflow_id, "logs and delay")]
    for ref in (workflow_id, "logs and delay"):
        exported = flowmill("workflows", "export", ref)
        assert exported.code == 0, exported.stderr
        assert [n["id"] for n in json.loads(exported.stdout)["nodes"]] == [
            "t", "f", "wait", "boom", "after"
        ]  # fmt: skip
    out_file = tmp_path / "out.json"
    assert flowmill("workflows", "export", workflow_id, "-o", str(out_file)).code == 0
    assert json.loads(out_file.read_text())["name"] == "logs and delay"


def test_cli_daily_validate_and_import_report_every_problem(
    flowmill: Flowmill, tmp_path: Path
) -> None:
    path = write(tmp_path, "bad.json", MANY_PROBLEMS)
    validated = flowmill("validate", path)
    assert validated.code == 1
    imported = flowmill("workflows", "import", path)
    assert imported.code == 2
    for result in (validated, imported):
        for where, message in EXPECTED.items():
            assert f"{where}: {message}" in result.stderr, (where, result.stderr)
        assert "the graph has a cycle through: b, c" in result.stderr
        assert "Traceback" not in result.stderr


async def test_cli_daily_workflows_push_to_a_server(tmp_path: Path) -> None:
    import asyncio

    import httpx

    from tests.serve_support import env_for, serve

    path = write(tmp_path, "wf.json", LOGS_AND_DELAY)

    async def push(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
        return await command("workflows", "push", *args, env=env)

    async def command(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "flowmill", *args,
            cwd=tmp_path, env=env_for(tmp_path, env),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        out, errout = await proc.communicate()
        return proc.returncode or 0, out.decode(), errout.decode()

    async with serve(tmp_path) as served:
        assert served.key is not None
        env = {"FLOWMILL_URL": served.url, "FLOWMILL_API_KEY": served.key}
        code, out, errout = await push(path, "--publish", env=env)
        assert code == 0, errout
        workflow_id = out.strip()
        assert f"workflow {workflow_id} on {served.url}, version 1, published" in errout
        changed = {**LOGS_AND_DELAY, "description": "second"}
        code, out, _ = await push(write(tmp_path, "wf2.json", changed), env=env)
        assert (code, out.strip()) == (0, workflow_id)  # same name: a new version
        async with httpx.AsyncClient(base_url=served.url, timeout=30) as client:
            got = await client.get(
                f"/api/workflows/{workflow_id}", headers={"Authorization": f"Bearer {served.key}"}
            )
        assert (got.json()["latest_version"], got.json()["active_version"]) == (2, 1)

        # the read commands against the server, as they read the local database
        async with httpx.AsyncClient(base_url=served.url, timeout=30) as client:
            ran = await client.post(
                f"/api/workflows/{workflow_id}/execute",
                params={"wait": 30},
                json={"input": {"n": 5}},
                headers={"Authorization": f"Bearer {served.key}"},
            )
        execution_id = ran.json()["id"]
        remote = {**env, "FLOWMILL_HOME": str(tmp_path / "elsewhere")}  # no local data
        code, out, errout = await command("executions", "list", "--json", env=remote)
        assert code == 0, errout
        assert [(x["id"], x["status"]) for x in json.loads(out)] == [(execution_id, "failed")]
        code, out, errout = await command("executions", "show", execution_id, env=remote)
        assert code == 0, errout
        assert "not run" in row(out, "after")
        assert "WorkflowFailed: boom (node boom)" in out
        code, out, _ = await command("executions", "logs", execution_id, env=remote)
        assert "hello from js 5" in out

        bad = write(tmp_path, "bad.json", MANY_PROBLEMS)
        code, _, errout = await push(bad, env=env)
        assert code == 1
        for where, message in EXPECTED.items():
            assert f"body.{where}: {message}" in errout

        code, _, errout = await push(path, env={"FLOWMILL_URL": served.url})
        assert code == 2
        assert "no API key: pass --key or set FLOWMILL_API_KEY" in errout


def test_cli_daily_tenants_create_twice_names_the_existing_one(flowmill: Flowmill) -> None:
    first = flowmill("tenants", "create", "Acme Corp")
    assert first.code == 0, first.stderr
    tenant_id = first.stdout.strip()
    assert re.fullmatch(r"acme-corp-[0-9a-f]{8}", tenant_id)
    again = flowmill("tenants", "create", "acme corp")
    assert again.code == 2
    assert f"a tenant named 'acme corp' exists already: {tenant_id}" in again.stderr
    chosen = flowmill("tenants", "create", "Acme Corp", "--id", "acme-2")
    assert (chosen.code, chosen.stdout.strip()) == (0, "acme-2")

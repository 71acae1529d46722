"""docs/getting-started.md and the README's commands, followed literally by a newcomer:
in a fresh virtual environment built from the wheel (not editable), on SQLite and on
PostgreSQL. The page's commands are read from the page itself, so a page that drifts
from what Flowmill does fails here."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest

from flowmill.testing import eventually_sync
from tests.install_support import ROOT, Installed, install
from tests.webhook_support import free_port

# A wheel build and a fresh venv with pip installing into it: minutes on a loaded machine.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]
PAGE = ROOT / "docs" / "getting-started.md"


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Installed:
    return install(wheel, tmp_path_factory.mktemp("gs") / "venv", "[postgres]")


def blocks(text: str, lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", text, flags=re.S)


def commands(text: str) -> list[str]:
    lines = [line for block in blocks(text, "sh") for line in block.splitlines()]
    return [line for line in lines if line.strip()]


class Newcomer:
    """Types the page's commands into a shell, in one directory."""

    def __init__(self, installed: Installed, home: Path, database_url: str | None) -> None:
        self.cwd = home
        self.port = free_port()
        self.env = {
            k: v for k, v in os.environ.items() if not k.startswith(("FLOWMILL_", "PYTHON"))
        }
        self.env["PATH"] = f"{installed.venv / 'bin'}:{self.env['PATH']}"
        if database_url:
            self.env["FLOWMILL_DATABASE_URL"] = database_url
        self.server: subprocess.Popen[str] | None = None
        self.said: list[str] = []

    def type(self, line: str) -> str:
        line = line.replace("127.0.0.1:3000", f"127.0.0.1:{self.port}")
        if "EXECUTION_ID" in line:
            line = line.replace("EXECUTION_ID", self.newest_execution())
        env = dict(self.env)
        if line.startswith("flowmill workflows push"):
            env["FLOWMILL_URL"] = f"http://127.0.0.1:{self.port}"  # its default is :3000
        result = subprocess.run(
            ["bash", "-c", line], cwd=self.cwd, env=env, capture_output=True, text=True,
            timeout=120, check=False,
        )  # fmt: skip
        assert result.returncode == 0, (line, result.stdout, result.stderr)
        assert "Traceback" not in result.stderr, (line, result.stderr)
        return result.stdout + result.stderr

    def serve(self) -> None:
        self.server = subprocess.Popen(
            ["flowmill", "serve", "--port", str(self.port)],
            cwd=self.cwd, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True,
        )  # fmt: skip
        assert self.server.stdout is not None
        for line in self.server.stdout:
            self.said.append(line.rstrip("\n"))
            if line.startswith("Try it:"):
                return
        raise AssertionError(f"serve stopped: {self.said}")

    def key(self) -> str:
        (line,) = [x for x in self.said if x.startswith("API key: ")]
        return line.split()[-1]

    def executions(self) -> list[dict[str, object]]:
        out = subprocess.run(
            ["flowmill", "executions", "list", "--json"], cwd=self.cwd, env=self.env,
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        return list(json.loads(out))

    def newest_execution(self) -> str:
        return str(self.executions()[0]["id"])

    def stop(self) -> None:
        if self.server is not None:
            self.server.terminate()
            self.server.communicate(timeout=30)


def follow_the_page(installed: Installed, home: Path, database_url: str | None) -> str:
    text = PAGE.read_text()
    (workflow,) = blocks(text, "json")
    (home / "hello.json").write_text(workflow)
    me = Newcomer(installed, home, database_url)
    seen = []
    try:
        for line in commands(text):
            words = shlex.split(line, comments=True)
            if words[:2] in (["pipx", "install"], ["pip", "install"]):
                continue  # installed from the wheel already
            if words == ["flowmill", "serve"]:
                me.serve()
            elif words[0] == "export" and words[1].startswith("FLOWMILL_API_KEY="):
                me.env["FLOWMILL_API_KEY"] = me.key()
            else:
                if words[:3] == ["flowmill", "executions", "list"]:
                    # a person reads the curl answer first; the webhook's execution runs
                    eventually_sync(
                        lambda: any(
                            x["trigger_type"] == "webhook" and x["status"] == "succeeded"
                            for x in me.executions()
                        ),
                        30,
                        "the webhook's execution to succeed",
                    )
                seen.append(f"$ {line}\n{me.type(line)}")
    finally:
        me.stop()
    return "\n".join(seen + me.said)


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> tuple[str, str | None]:
    if request.param == "sqlite":
        return "sqlite", None  # the page's default: nothing to configure
    return "postgres", str(request.getfixturevalue("empty_postgres_url"))


def test_getting_started_page_works_as_written(
    installed: Installed, tmp_path: Path, backend: tuple[str, str | None]
) -> None:
    kind, url = backend
    transcript = follow_the_page(installed, tmp_path, url)
    assert "flowmill 0.1.0" in transcript
    assert "hello.json: valid" in transcript
    assert '"Hello, Ada!"' in transcript  # run's output
    assert "greeting Ada" in transcript  # run shows console.log
    assert '"status":"received"' in transcript.replace(" ", "")  # the webhook's answer
    assert '"Hello, Grace!"' in transcript  # executions show, of the webhook's execution
    assert "greeting Grace" in transcript  # executions logs
    database = "SQLite file" if kind == "sqlite" else "Database: postgresql://"
    assert database in transcript


def test_getting_started_readme_commands(installed: Installed, tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Run a workflow from a file", 1)[1]
    lines = commands(section.split("\n## ", 1)[0])
    assert len(lines) == 3
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLOWMILL_", "PYTHON"))}
    env["FLOWMILL_HOME"] = str(tmp_path / "home")
    outputs = []
    for line in lines:
        line = line.replace(".venv/bin/flowmill", installed.flowmill)
        result = subprocess.run(
            ["bash", "-c", line], cwd=ROOT, env=env, capture_output=True, text=True,
            timeout=120, check=False,
        )  # fmt: skip
        assert result.returncode == 0, (line, result.stderr)
        outputs.append(result.stdout)
    assert "hello processed" in outputs[0]
    doc = json.loads(outputs[1])
    assert (doc["status"], doc["output"]) == (
        "succeeded",
        "The processed result is: hello processed",
    )
    assert set(doc) == {"execution_id", "status", "output", "error", "nodes", "logs"}
    assert "graph-branch-join.json: valid" in outputs[2]

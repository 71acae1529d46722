"""What a user sees when the setup is wrong: one line saying what, one saying what to do,
a non-zero exit status, no traceback; and serve's start-up screen."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.acceptance.conftest import Flowmill
from tests.conftest import POSTGRES_URL, _with_db, require_service
from tests.webhook_support import free_port


def two_lines(stderr: str) -> list[str]:
    lines = [x for x in stderr.strip().splitlines() if x.strip()]
    assert len(lines) == 2, stderr
    assert "Traceback" not in stderr
    return lines


@pytest.mark.postgres
@pytest.mark.parametrize("args", [["executions", "list"], ["serve", "--port", "0"]])
def test_cli_errors_missing_postgres_database(flowmill: Flowmill, args: list[str]) -> None:
    require_service("PostgreSQL", POSTGRES_URL)
    url = _with_db(POSTGRES_URL, "flowmill_no_such_database")
    result = flowmill(*args, extra_env={"FLOWMILL_DATABASE_URL": url})
    assert result.code == 3
    what, hint = two_lines(result.stderr)
    assert what.endswith("has no database 'flowmill_no_such_database'")
    assert "createdb" in hint
    assert "Flowmill" not in result.stdout  # no banner


@pytest.mark.parametrize("args", [["executions", "list"], ["serve", "--port", "0"]])
def test_cli_errors_closed_database_port(flowmill: Flowmill, args: list[str]) -> None:
    port = free_port()  # nothing listens there
    url = f"postgresql://postgres@127.0.0.1:{port}/test"
    result = flowmill(*args, extra_env={"FLOWMILL_DATABASE_URL": url})
    assert result.code == 3
    what, hint = two_lines(result.stderr)
    assert what == f"error: cannot reach PostgreSQL at 127.0.0.1:{port} (connection refused)"
    assert "start PostgreSQL" in hint
    assert result.stdout == ""


def test_cli_errors_busy_port_before_any_banner(flowmill: Flowmill, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = flowmill("serve", "--port", str(port))
    assert result.code == 3
    what, _ = two_lines(result.stderr)
    assert what.startswith(f"error: port {port} on 127.0.0.1 is already in use")
    assert "Flowmill" not in result.stdout  # the banner waits for the bound socket
    assert not (tmp_path / "home" / "flowmill.db").exists()  # nothing done before


def test_cli_errors_serve_first_screen_is_one_format(tmp_path: Path) -> None:
    env = {**os.environ, "FLOWMILL_HOME": str(tmp_path / "home")}
    for name in ("FLOWMILL_LOG_LEVEL", "FLOWMILL_DATABASE_URL", "FLOWMILL_REDIS_URL"):
        env.pop(name, None)
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "flowmill", "serve", "--port", str(port)],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    lines = []
    try:
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            if line.startswith("Try it:"):
                break
    finally:
        proc.terminate()
        rest, _ = proc.communicate(timeout=30)
    screen = "\n".join(lines)
    assert "alembic" not in screen.lower()
    assert "INFO:" not in screen  # uvicorn's own format
    banner = [x for x in lines if x.startswith("Flowmill 0.1.0 on http://127.0.0.1:")]
    assert len(banner) == 1, screen
    assert f"Database: SQLite file {tmp_path / 'home' / 'flowmill.db'}" in lines
    assert any(x.startswith("API key: fm_") for x in lines)
    # every log line (not the banner's) is structlog's: timestamp, [level], event
    logs = [x for x in lines if x[:4].isdigit()]
    assert logs and all("Z [" in x for x in logs), screen
    assert "Traceback" not in rest

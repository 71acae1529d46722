"""Acceptance tests drive Flowmill as a user does: the CLI in a subprocess, HTTP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


Flowmill = Callable[..., Result]


@pytest.fixture
def flowmill(tmp_path: Path) -> Flowmill:
    """Run ``python -m flowmill ARGS`` in a fresh home directory."""
    env = {**os.environ, "FLOWMILL_HOME": str(tmp_path / "home"), "FLOWMILL_LOG_LEVEL": "error"}
    env.pop("FLOWMILL_DATABASE_URL", None)
    env.pop("FLOWMILL_REDIS_URL", None)
    env.pop("FLOWMILL_URL", None)  # the read commands would ask that server instead
    env.pop("FLOWMILL_API_KEY", None)

    def _run(*args: str, extra_env: dict[str, str] | None = None, timeout: float = 60) -> Result:
        proc = subprocess.run(
            [sys.executable, "-m", "flowmill", *args],
            cwd=tmp_path,
            env={**env, **(extra_env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)

    return _run


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Flowmill's wheel, built once per session from this checkout."""
    from tests.install_support import build_wheel

    return build_wheel(tmp_path_factory.mktemp("dist"))

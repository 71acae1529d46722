"""Flowmill installed from its wheel (not editable) into a fresh virtual environment:
the embedded default brings no PostgreSQL or Redis drivers, the wheel carries the web
app and the migrations, and the ``flowmill`` script runs a workflow."""

from __future__ import annotations

import json
import os
import subprocess
import zipfile
from pathlib import Path

import pytest

from tests.install_support import ROOT, Installed, install

# A wheel build and a fresh venv with pip installing into it: minutes on a loaded machine.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Installed:
    return install(wheel, tmp_path_factory.mktemp("install") / "venv")


def _run(
    installed: Installed, cwd: Path, *args: str, **env: str
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("FLOWMILL_", "PYTHON"))}
    return subprocess.run(
        [installed.flowmill, *args],
        cwd=cwd,
        env={**clean, "FLOWMILL_HOME": str(cwd / "home"), **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_install_version_is_the_package_version(installed: Installed, tmp_path: Path) -> None:
    result = _run(installed, tmp_path, "--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "flowmill 0.1.0"
    assert installed.wheel.name.startswith("flowmill-0.1.0-")


def test_install_embedded_default_brings_no_server_drivers(installed: Installed) -> None:
    packages = installed.packages()
    assert "flowmill" in packages
    assert not packages & {"redis", "bullmq", "msgpack", "asyncpg", "pytest", "mypy", "ruff"}


def test_install_wheel_carries_web_app_and_migrations(installed: Installed) -> None:
    names = set(zipfile.ZipFile(installed.wheel).namelist())
    assert "flowmill/ui/dist/index.html" in names
    assert "flowmill/store/migrations/script.py.mako" in names
    assert "flowmill/store/migrations/versions/0001_initial_schema.py" in names
    assert not any(n.startswith("flowmill/ui/web/") for n in names)


def test_install_runs_a_workflow(installed: Installed, tmp_path: Path) -> None:
    example = ROOT / "examples" / "seed-webhook-test.json"
    result = _run(
        installed, tmp_path, "run", str(example), "--input", '{"message": "hi"}', "--json"
    )
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["status"] == "succeeded"
    assert doc["output"] == "The processed result is: hi processed"


def test_install_postgres_without_extra_says_which_extra(
    installed: Installed, tmp_path: Path
) -> None:
    result = _run(
        installed,
        tmp_path,
        "db",
        "current",
        FLOWMILL_DATABASE_URL="postgresql://127.0.0.1:5432/test",
    )
    assert result.returncode == 2
    assert "pip install 'flowmill[postgres]'" in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) <= 2

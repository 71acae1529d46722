"""Check that Flowmill works on the lowest versions its pyproject.toml allows.

``./dev floors`` (or ``python3 tests/floors.py``, with any Python 3.11+) creates a
throwaway virtual environment under the system's temporary folder, installs Flowmill
there with every lower bound (``>=X``) of its runtime dependencies and of the
``postgres`` extra pinned to exactly ``X`` (``--constraint``; the packages those pull in
resolve as usual: the lowest *direct* versions, as a user who pins them would get), then
imports every module of ``flowmill.store`` (the PostgreSQL fast path included: it is the
code that needs SQLAlchemy 2.1), prints the command line's help, and runs a small set of
unit and API tests on SQLite.

A floor the code has outgrown fails here, at install, import or test, and its bound in
pyproject.toml is the thing to raise. It is not part of ``./dev test``: it installs a
second environment from the package index, which takes a minute or two.

Options:
    --keep: leave the environment in place (printed at the end) to look into a failure.
    Anything else is passed to pytest (``python3 tests/floors.py -k planner``).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXTRAS = ("postgres",)  # their floors are pinned too; the tests below need no server
#: The test tools, at the versions constraints.txt pins (they are not Flowmill's floors).
TOOLS = ("pytest", "pytest-asyncio", "pytest-timeout")
#: A small set that touches each floored dependency: the engine on fakes (pydantic,
#: structlog, quickjs-ng), settings (pydantic-settings), schedules (croniter, tzdata),
#: webhook signatures (cryptography), the queue, and the API on a migrated SQLite file
#: (SQLAlchemy, alembic, FastAPI, uvicorn, httpx, PyJWT, orjson, PyYAML).
TESTS = (
    "tests/unit/test_engine.py",
    "tests/unit/test_planner.py",
    "tests/unit/test_local_queue.py",
    "tests/unit/test_settings_defaults.py",
    "tests/unit/test_schedule_due.py",
    "tests/unit/test_webhook_providers_stripe.py",
    "tests/unit/test_templates.py",
    "tests/unit/test_api_workflows.py",
    "tests/unit/test_api_executions.py",
)
_BOUND = re.compile(r"^\s*([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?\s*(?:[^;]*?,\s*)?>=\s*([^,;\s]+)")


def floors(pyproject: Path = ROOT / "pyproject.toml") -> list[str]:
    """``name==X`` for each ``name>=X`` of the runtime dependencies and of :data:`EXTRAS`."""
    project = tomllib.loads(pyproject.read_text())["project"]
    specs = list(project["dependencies"])
    for extra in EXTRAS:
        specs += project["optional-dependencies"][extra]
    pins = []
    for spec in specs:
        found = _BOUND.match(spec)
        if found is not None:
            pins.append(f"{found[1]}=={found[2]}")
    return pins


def tool_pins(constraints: Path = ROOT / "constraints.txt") -> list[str]:
    """The test tools as constraints.txt pins them."""
    wanted = {t.lower() for t in TOOLS}
    lines = constraints.read_text().splitlines()
    return [line for line in lines if line.split("==")[0].strip().lower() in wanted]


def _run(cmd: list[str]) -> None:
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT)


def main(argv: list[str]) -> int:
    keep = "--keep" in argv
    pytest_args = [a for a in argv if a != "--keep"]
    home = Path(tempfile.mkdtemp(prefix="flowmill-floors-"))
    venv = home / "venv"
    py = str(venv / "bin" / "python")
    pins = floors()
    (home / "floors.txt").write_text("\n".join(pins) + "\n")
    print("floors:", ", ".join(pins), flush=True)
    try:
        _run([sys.executable, "-m", "venv", str(venv)])
        # not -q: on a conflict pip says which two requirements clash only when verbose
        pip = [py, "-m", "pip", "install", "--disable-pip-version-check"]
        _run([*pip, "--constraint", str(home / "floors.txt"),
              f"{ROOT}[{','.join(EXTRAS)}]", *tool_pins()])  # fmt: skip
        _run([py, "-m", "pip", "check"])
        store = ROOT / "src" / "flowmill" / "store"
        modules = sorted(f"flowmill.store.{p.stem}" for p in store.glob("[!_]*.py"))
        _run([py, "-c", f"import importlib; [importlib.import_module(m) for m in {modules!r}]"])
        # the command line (Typer, Rich): every command is built to print the help
        _run([str(venv / "bin" / "flowmill"), "--help"])
        # -p no:cacheprovider: nothing written into the work tree; no xdist here
        _run([py, "-m", "pytest", "-q", "-p", "no:cacheprovider", *TESTS, *pytest_args])
    except subprocess.CalledProcessError as e:
        print(f"floors: FAILED ({' '.join(e.cmd[:4])}...); environment left in {home}")
        return 1
    if keep:
        print(f"floors: passed; environment kept in {home}")
    else:
        shutil.rmtree(home, ignore_errors=True)
        print("floors: passed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

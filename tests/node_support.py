"""Node.js packages for interop tests, installed once into a cache directory
(``FLOWMILL_TEST_NODE_CACHE``, default ``~/.cache/flowmill-tests``), and a runner for
ES-module scripts that use them."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from tests.conftest import unavailable

# The Node.js release line of the Python bullmq package pinned in pyproject.toml.
BULLMQ_PACKAGES = ("bullmq@6.7.0", "ioredis@6.0.0")


def node_modules(packages: Sequence[str]) -> Path:
    """A directory with ``packages`` installed (installed on first use)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        unavailable("node and npm are needed for the Node.js interop tests")
    cache = Path(os.environ.get("FLOWMILL_TEST_NODE_CACHE", Path.home() / ".cache/flowmill-tests"))
    home = cache / ("node-" + "-".join(p.replace("@", "").replace("/", "_") for p in packages))
    first = packages[0].rsplit("@", 1)[0]
    if (home / "node_modules" / first / "package.json").exists():
        return home
    cache.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=cache))  # moved into place whole: no half installs
    (staging / "package.json").write_text('{"private": true, "type": "module"}\n')
    try:
        subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--loglevel=error", *packages],
            cwd=staging, check=True, capture_output=True, timeout=180,
        )  # fmt: skip
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as e:
        shutil.rmtree(staging, ignore_errors=True)
        detail = getattr(e, "stderr", b"") or b""
        unavailable(f"npm install {' '.join(packages)} failed: {detail.decode()[-500:]}")
    if not home.exists():
        staging.rename(home)
    else:
        shutil.rmtree(staging, ignore_errors=True)  # another run won the race
    return home


async def start_node_script(
    source: str, name: str, packages: Sequence[str], *args: str
) -> tuple[asyncio.subprocess.Process, Path]:
    """Start a Node.js ES module beside ``packages`` (stdout piped); returns the process
    and the script (delete it when done)."""
    home = await asyncio.to_thread(node_modules, packages)
    # Inside the install directory: ES modules resolve packages from the script's place.
    script = home / f"script-{name}.mjs"
    script.write_text(source)
    proc = await asyncio.create_subprocess_exec(
        "node", str(script), *args,
        cwd=home, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    return proc, script


async def run_node_script(source: str, name: str, packages: Sequence[str], *args: str) -> str:
    """Run a Node.js ES module with ``packages`` installed; it must succeed. Returns
    its standard output."""
    proc, script = await start_node_script(source, name, packages, *args)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    finally:
        script.unlink()
    assert proc.returncode == 0, (out + err).decode()
    return out.decode()

"""Node.js scripts in tests: the BullMQ packages installed once, a script run with them.

Installs the Node.js ``bullmq`` package once into a cache directory
(``FLOWMILL_TEST_NODE_CACHE``, default ``~/.cache/flowmill-tests``).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.conftest import unavailable

# The Node.js release line of the Python bullmq package pinned in pyproject.toml.
NODE_PACKAGES = ("bullmq@6.7.0", "ioredis@6.0.0")


def _node_modules() -> Path:
    """A directory with the Node.js packages installed (installed on first use)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        unavailable("node and npm are needed for the Node.js interop test")
    cache = Path(os.environ.get("FLOWMILL_TEST_NODE_CACHE", Path.home() / ".cache/flowmill-tests"))
    home = cache / ("node-" + "-".join(p.replace("@", "") for p in NODE_PACKAGES))
    if (home / "node_modules" / "bullmq" / "package.json").exists():
        return home
    cache.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=cache))  # moved into place whole: no half installs
    (staging / "package.json").write_text('{"private": true, "type": "module"}\n')
    try:
        subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--loglevel=error", *NODE_PACKAGES],
            cwd=staging, check=True, capture_output=True, timeout=180,
        )  # fmt: skip
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as e:
        shutil.rmtree(staging, ignore_errors=True)
        detail = getattr(e, "stderr", b"") or b""
        unavailable(f"npm install {' '.join(NODE_PACKAGES)} failed: {detail.decode()[-500:]}")
    if not home.exists():
        staging.rename(home)
    else:
        shutil.rmtree(staging, ignore_errors=True)  # another run won the race
    return home


async def run_node_script(source: str, name: str, *args: str) -> str:
    """Run a Node.js ES module with the BullMQ packages installed; it must succeed.
    Returns what it printed."""
    home = await asyncio.to_thread(_node_modules)
    # Inside the install directory: ES modules resolve packages from the script's place.
    script = home / f"script-{name}.mjs"
    script.write_text(source)
    try:
        node = await asyncio.create_subprocess_exec(
            "node", str(script), *args,
            cwd=home, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(node.communicate(), 60)
    finally:
        script.unlink()
    assert node.returncode == 0, (out + err).decode()
    return out.decode()

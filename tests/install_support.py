"""A Flowmill installed from its wheel into a fresh virtual environment, as a user gets it.

Built once per test session (a wheel build and a ``pip install`` take ~30 s); pip
resolves from the configured local index and wheel cache, pinned by constraints.txt,
as ``./dev setup`` installs.
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Installed:
    """A virtual environment with Flowmill installed from ``wheel``."""

    wheel: Path
    venv: Path

    @property
    def flowmill(self) -> str:
        """The ``flowmill`` script of the environment."""
        return str(self.venv / "bin" / "flowmill")

    @property
    def python(self) -> str:
        """The environment's Python."""
        return str(self.venv / "bin" / "python")

    def packages(self) -> set[str]:
        """Names (lower case) of the distributions installed in the environment."""
        out = subprocess.run(
            [self.python, "-m", "pip", "list", "--format=freeze"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return {line.split("==", 1)[0].lower() for line in out.splitlines() if "==" in line}


def build_wheel(dest: Path) -> Path:
    """Build Flowmill's wheel from this checkout into ``dest``."""
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(dest), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (wheel,) = dest.glob("flowmill-*.whl")
    return wheel


def install(wheel: Path, where: Path, extras: str = "") -> Installed:
    """A fresh venv at ``where`` with ``wheel`` (and ``extras``, e.g. ``"[postgres]"``)."""
    venv.EnvBuilder(with_pip=True).create(where)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    subprocess.run(
        [
            str(where / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "-q",
            "-c",
            str(ROOT / "constraints.txt"),
            f"{wheel}{extras}",
        ],
        check=True,
        capture_output=True,
        env=env,
    )
    return Installed(wheel, where)

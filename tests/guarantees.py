"""Break the code on purpose and watch the tests fail: the mutations of the guarantees table.

Each entry of ``tests/guarantees.toml`` names a promise's mutation: a file, a piece of
its text, what to put instead, and the tests that must fail on it. For each one this
copies the project to a scratch directory, applies the mutation there (the worktree is
never touched), runs those tests against the mutated copy and reports whether they
failed. A mutation whose tests still pass is a promise nothing proves::

    ./dev guarantees              # every mutation in the table
    ./dev guarantees M01 M07      # some of them
    python -m tests.guarantees --list

Exit status: 0 when every mutation was killed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TABLE = ROOT / "tests" / "guarantees.toml"
COPIED = ("src", "tests", "examples", "pyproject.toml")


@dataclass(frozen=True)
class Mutation:
    """One deliberate break: ``old`` (which occurs exactly once in ``file``) → ``new``."""

    id: str
    promise: str
    file: str
    old: str
    new: str
    tests: tuple[str, ...]


def load(path: Path = TABLE) -> list[Mutation]:
    """The mutations of the table, in order."""
    raw = tomllib.loads(path.read_text())
    return [
        Mutation(m["id"], m["promise"], m["file"], m["old"], m["new"], tuple(m["tests"]))
        for m in raw["mutation"]
    ]


def apply(root: Path, m: Mutation) -> None:
    """Apply ``m`` to the copy at ``root``.

    Raises:
        ValueError: ``old`` is not in the file exactly once (the table has rotted).
    """
    target = root / m.file
    text = target.read_text()
    if text.count(m.old) != 1:
        raise ValueError(f"{m.id}: {m.old!r} occurs {text.count(m.old)} times in {m.file}")
    target.write_text(text.replace(m.old, m.new))


def run(m: Mutation, *, verbose: bool) -> bool:
    """Whether the mutation's tests fail on it (it is killed)."""
    with tempfile.TemporaryDirectory(prefix=f"flowmill-{m.id}-") as scratch:
        root = Path(scratch)
        for name in COPIED:
            source = ROOT / name
            if source.is_dir():
                shutil.copytree(source, root / name, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy2(source, root / name)
        apply(root, m)
        env = {**os.environ, "PYTHONPATH": str(root / "src")}
        cmd = [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *m.tests]
        started = time.monotonic()
        proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, check=False)
        took = time.monotonic() - started
    # 1 is "tests failed"; 2-5 (interrupted, internal error, usage, nothing collected)
    # would be a kill for the wrong reason, and so would a pytest that never started.
    lines = proc.stdout.splitlines()
    killed = proc.returncode == 1 and bool(lines) and " failed" in lines[-1]
    print(f"{m.id} {'killed' if killed else 'SURVIVED'} in {took:.0f} s: {m.promise}")
    print(f"    {m.file}: {m.old.strip()!r} -> {m.new.strip()!r}")
    shown = [ln for ln in lines if ln.startswith(("FAILED", "E   ", "ERROR"))][:6]
    for line in shown if not verbose else lines:
        print(f"    | {line}")
    if lines:
        print(f"    | {lines[-1]}")
    elif proc.stderr:
        print(f"    | {proc.stderr.strip().splitlines()[-1]}")
    return killed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ids", nargs="*", help="mutation ids (default: all)")
    parser.add_argument("--list", action="store_true", help="list the mutations and exit")
    parser.add_argument("-v", "--verbose", action="store_true", help="show pytest's output")
    args = parser.parse_args(argv)
    mutations = load()
    if args.ids:
        wanted = set(args.ids)
        mutations = [m for m in mutations if m.id in wanted]
        if len(mutations) != len(wanted):
            known = {m.id for m in load()}
            parser.error(f"unknown ids: {sorted(wanted - known)}")
    if args.list:
        for m in mutations:
            print(f"{m.id}  {m.promise}  ({', '.join(m.tests)})")
        return 0
    survived = [m.id for m in mutations if not run(m, verbose=args.verbose)]
    print(f"{len(mutations) - len(survived)} of {len(mutations)} mutations killed")
    if survived:
        print(f"survived: {' '.join(survived)}")
    return 1 if survived else 0


if __name__ == "__main__":
    sys.exit(main())

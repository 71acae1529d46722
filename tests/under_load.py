"""Run CI several times in a row on a clean clone while the machine is kept busy.

``./dev under-load`` (or ``python3 tests/under_load.py``, any Python 3.11+) clones this
checkout's ``HEAD`` into a temporary folder, starts ``bench/distributed.py`` in a loop
beside it (PostgreSQL, Redis and two worker processes: the load a busy deployment puts
on a shared machine), and runs ``CI=true .ci/run`` there ``--runs`` times, a fresh clone
each time. It prints one line per run as it ends and a table at the end: the commit, the
exit status, the duration and pytest's summary line. The bench's output goes to
``bench.log`` in the log folder.

It proves that the suite does not depend on an idle machine (issue "Tests that can
fail": three runs in a row under load, without a failure). A run is long: about 28
minutes each on 2 CPUs, so three take well over an hour; start it on a quiet machine.

Options:
    --runs N: how many CI runs (default 3).
    --logs DIR: where the logs go (default: a new temporary folder, printed).
    --keep-going: run the remaining runs after a failed one (default: stop).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SUMMARY = re.compile(r"^=+ (.*(passed|failed|error).*) =+$", re.MULTILINE)


def _load(logs: Path, stop: Path) -> subprocess.Popen[bytes]:
    """``bench/distributed.py`` again and again until ``stop`` exists."""
    python = ROOT / ".venv" / "bin" / "python"
    loop = (
        f'while [ ! -e "{stop}" ]; do "{python}" "{ROOT / "bench" / "distributed.py"}" '
        f'--runs 20 >> "{logs / "bench.log"}" 2>&1; done'
    )
    return subprocess.Popen(["bash", "-c", loop], start_new_session=True)


def _one_run(n: int, logs: Path) -> tuple[str, int, float, str]:
    where = Path(tempfile.mkdtemp(prefix=f"flowmill-under-load-{n}-"))
    try:
        subprocess.run(["git", "clone", "-q", str(ROOT), str(where)], check=True)
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=where, capture_output=True, text=True
        ).stdout.strip()
        log = logs / f"run{n}.log"
        start = time.monotonic()
        with log.open("wb") as out:
            code = subprocess.run(
                ["bash", ".ci/run"], cwd=where, stdout=out, stderr=subprocess.STDOUT
            ).returncode
        took = time.monotonic() - start
        found = SUMMARY.findall(log.read_text(errors="replace"))
        return commit, code, took, " / ".join(m[0] for m in found) or "(no pytest summary)"
    finally:
        shutil.rmtree(where, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--logs", type=Path, default=None)
    parser.add_argument("--keep-going", action="store_true")
    args = parser.parse_args()
    if not (ROOT / ".venv" / "bin" / "python").exists():
        sys.exit("no .venv here: run ./dev setup first (the bench runs from it)")
    logs = args.logs or Path(tempfile.mkdtemp(prefix="flowmill-under-load-logs-"))
    logs.mkdir(parents=True, exist_ok=True)
    stop = logs / "stop"
    stop.unlink(missing_ok=True)
    print(f"logs in {logs}; bench/distributed.py runs in a loop beside CI", flush=True)
    bench = _load(logs, stop)
    results = []
    try:
        for n in range(1, args.runs + 1):
            commit, code, took, summary = _one_run(n, logs)
            results.append((n, commit, code, took, summary))
            print(f"run {n} ({commit}): exit {code} in {took:.0f} s: {summary}", flush=True)
            if code and not args.keep_going:
                break
    finally:
        stop.touch()
        bench.wait()
    print("\n| run | commit | exit | seconds | pytest |\n|---|---|---|---|---|")
    for n, commit, code, took, summary in results:
        print(f"| {n} | {commit} | {code} | {took:.0f} | {summary} |")
    failed = any(code for _, _, code, _, _ in results)
    return 1 if failed or len(results) < args.runs else 0


if __name__ == "__main__":
    sys.exit(main())

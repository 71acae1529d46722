"""Child processes of the sandbox: starting one can be cancelled at any instant."""

from __future__ import annotations

import asyncio
import os

from flowmill.sandbox.process import ChildProcess
from flowmill.testkit.waiting import eventually


async def test_sandbox_process_start_cancelled_anywhere_neither_hangs_nor_leaks() -> None:
    # Cancelling asyncio's subprocess_exec half-way hung the cancelled task for good when
    # the child had started one of its own holding the pipes (bubblewrap does: a pool
    # closed while it replaced a worker hung). Cancel at many different instants.
    started: list[int] = []
    for delay_loops in range(40):
        task = asyncio.create_task(
            ChildProcess.start(
                ["sh", "-c", "sleep 30 & exec sleep 30"], env=dict(os.environ), stdout_limit=1024
            )
        )
        for _ in range(delay_loops % 8):
            await asyncio.sleep(0)
        task.cancel()
        try:
            proc = await asyncio.wait_for(task, 10)
        except asyncio.CancelledError:
            continue
        except TimeoutError:
            raise AssertionError(f"start cancelled after {delay_loops % 8} loops hung") from None
        started.append(proc.pid)
        await proc.close()

    def sleepers() -> list[str]:
        out = []
        for pid in os.listdir("/proc"):
            if pid.isdigit():
                try:
                    with open(f"/proc/{pid}/cmdline", "rb") as f:
                        cmd = f.read()
                    with open(f"/proc/{pid}/stat") as f:
                        ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                except OSError:
                    continue
                if cmd == b"sleep\x0030\x00" and ppid == os.getpid():
                    out.append(pid)
        return out

    await eventually(lambda: not sleepers(), 10, "every started child reaped")

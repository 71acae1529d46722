"""Python code nodes: one fresh jailed process per run, JSON in, JSON out.

The process is bubblewrap (no network, a minimal read-only runtime, a fresh tmpfs,
no engine environment, seccomp) around :mod:`.py_harness`, which applies rlimits
(CPU, address space, file size, open files, processes) before the code runs; the
engine kills the whole process after the wall-clock limit. Without bubblewrap the
runner refuses, unless ``allow_rlimit_only_python`` is set: then the harness runs
with the same rlimits and seccomp filter, as ``nobody`` when the engine is root, in a
temporary working directory, but with the host's filesystem and network in reach.
"""

from __future__ import annotations

import asyncio
import math
import os
import shutil
import signal
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flowmill import jsonutil
from flowmill.domain.errors import NodeError
from flowmill.fairness import FairSlots, current_tenant
from flowmill.sandbox import errors, py_harness
from flowmill.sandbox.jail import Jail
from flowmill.sandbox.limits import CodeLimits, CodeResult
from flowmill.sandbox.process import ChildProcess, cleanup_env, describe_exit, settle_abandoned
from flowmill.sandbox.settings import SandboxSettings
from flowmill.tasks import spawn

# Interpreter and harness before the code's own allocations (measured: ~25 MB).
_ADDRESS_SPACE_BASE_MB = 64
_KEYWORDS = frozenset(__import__("keyword").kwlist) | frozenset(("print",))
# An input key never shadows a builtin (an input field "type" made type() an int). The
# context roots "input" and "vars" are builtins too, and shadow them on purpose.
_BUILTINS = frozenset(dir(__import__("builtins"))) - {"input", "vars"}
_HARNESS = Path(py_harness.__file__).read_text(encoding="utf-8")


def python_names(scope: Mapping[str, Any]) -> list[str]:
    """Scope keys usable as Python parameter names."""
    return [
        k
        for k in scope
        if isinstance(k, str) and k.isidentifier() and k not in _KEYWORDS and k not in _BUILTINS
    ]


@dataclass
class _Process:
    proc: ChildProcess
    workdir: str | None


async def _end(process: _Process) -> None:
    await process.proc.close()
    if process.workdir:
        shutil.rmtree(process.workdir, ignore_errors=True)


class PythonRunner:
    """Runs Python code nodes in a jail.

    Args:
        settings: Limits and whether rlimit-only isolation is allowed.
        jail: The bubblewrap jail, or one without bubblewrap.
    """

    def __init__(
        self, settings: SandboxSettings, jail: Jail, tenant_cap: Callable[[str], int] | None = None
    ) -> None:
        self.settings = settings
        self.jail = jail
        self._spares: list[_Process] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._reaping: set[asyncio.Task[None]] = set()
        # Runs go to tenants in turn; one extra run for a tenant that has none going.
        self._slots = FairSlots(settings.python_max_concurrent, reserve=1, cap=tenant_cap)
        self._closed = False

    @property
    def available(self) -> bool:
        """Whether Python code nodes run here."""
        return self.jail.available or self.settings.allow_rlimit_only_python

    @property
    def isolation(self) -> str:
        """``bubblewrap``, ``rlimit-only`` or ``refused``."""
        if self.jail.available:
            return "bubblewrap"
        return "rlimit-only" if self.settings.allow_rlimit_only_python else "refused"

    async def start(self) -> None:
        """Start the spare processes (otherwise they start on first use)."""
        if self.available:
            self._refill()

    async def close(self) -> None:
        """Stop the spare processes."""
        self._closed = True
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        spares, self._spares = self._spares, []
        await asyncio.gather(*(_end(s) for s in spares), *self._reaping, return_exceptions=True)
        await settle_abandoned()

    def _refill(self) -> None:
        missing = self.settings.python_spare_processes - len(self._spares) - len(self._tasks)
        for _ in range(max(missing, 0)):
            spawn(self._add_spare(), name="python-spare", keep=self._tasks)

    async def _add_spare(self) -> None:
        spare = await self._spawn()
        if self._closed:
            await _end(spare)
        else:
            self._spares.append(spare)

    async def _spawn(self) -> _Process:
        """A fresh harness process, waiting for its one request on stdin."""
        fd, workdir = -1, None
        argv = [self.jail.runtime.executable, "-I", "-S", "-c", _HARNESS]
        if self.jail.available:
            fd = self.jail.seccomp_fd()
            argv = self.jail.command(
                argv, tmpfs_bytes=self.settings.python_max_file_bytes, seccomp_fd=fd
            )
        else:
            workdir = tempfile.mkdtemp(prefix="flowmill-py-")
            os.chmod(workdir, 0o777)  # noqa: S103 - the code runs as nobody in it
        try:
            proc = await ChildProcess.start(
                argv,
                nice=self.settings.nice,
                env=cleanup_env({"HOME": workdir or "/tmp"}),  # noqa: S108 - the jail's tmpfs
                pass_fds=(fd,) if fd >= 0 else (),
                cwd=workdir,
                stdout_limit=self.settings.max_output_bytes + 64 * 1024,
                stderr_limit=self.settings.max_log_bytes,
            )
        except BaseException:
            if workdir:
                shutil.rmtree(workdir, ignore_errors=True)
            raise
        finally:
            if fd >= 0:
                os.close(fd)
        return _Process(proc, workdir)

    async def _take(self) -> _Process:
        while self._spares:
            spare = self._spares.pop(0)
            if spare.proc.alive:
                self._refill()
                return spare
            await _end(spare)
        self._refill()
        return await self._spawn()

    async def run(self, code: str, scope: Mapping[str, Any], limits: CodeLimits) -> CodeResult:
        """Run ``code`` (a function body) with ``scope`` bound; return what it returns.

        Every run gets a process of its own (started ahead of time: spares wait for
        their one request, so the interpreter's start-up is off the critical path).

        Raises:
            NodeError: ``SandboxUnavailable``, ``SandboxTimeout``,
                ``SandboxMemoryExceeded``, ``SandboxOutputTooLarge`` or ``SandboxError``.
        """
        if not self.available:
            raise errors.unavailable(
                "Python code needs bubblewrap, which is not available here "
                f"({self.jail.problem}); install bubblewrap, or set "
                "allow_rlimit_only_python to run Python code with rlimits only"
            )
        if self._closed:
            raise errors.unavailable("the Python sandbox is closed")
        names = python_names(scope)
        program = self.jail.seccomp_program
        request: dict[str, Any] = {
            "code": code,
            "names": names,
            "scope": {n: scope[n] for n in names},
            "jailed": self.jail.available,
            # Without bubblewrap the harness loads the filter itself.
            "seccomp": program.hex() if program and not self.jail.available else None,
            "limits": {
                "cpu_s": math.ceil(limits.timeout_s) + 1,
                "address_space_bytes": (limits.memory_mb + _ADDRESS_SPACE_BASE_MB) << 20,
                "file_bytes": self.settings.python_max_file_bytes,
                "open_files": self.settings.python_max_open_files,
                "processes": self.settings.python_max_processes,
            },
        }
        data = errors.encode_scope(request)
        async with self._slots.slot(current_tenant.get()):
            return await self._run(data, code, limits)

    async def _run(self, data: bytes, code: str, limits: CodeLimits) -> CodeResult:
        process = await self._take()
        try:
            return await self._finish(process.proc, data, code, limits)
        finally:
            process.proc.kill()
            spawn(_end(process), name="python-reap", keep=self._reaping)

    async def _finish(
        self, proc: ChildProcess, request: bytes, code: str, limits: CodeLimits
    ) -> CodeResult:
        proc.write(request)
        proc.close_stdin()
        reply: Any = None
        status: int | None = None
        try:
            async with asyncio.timeout(limits.timeout_s):
                try:
                    # The result is one frame; it counts as soon as it is whole (the
                    # process is reaped afterwards, off the critical path).
                    head, _ = await proc.read_frame()
                    reply = jsonutil.loads(head)
                except (EOFError, ValueError):
                    status = await proc.wait()
                except OverflowError:
                    status = None
        except TimeoutError:
            reply, status = {"ok": False, "error": {"kind": "timeout"}}, None
        logs = self._logs(proc)
        try:
            return self._result(proc, reply, status, code, limits, logs)
        except NodeError as e:
            if logs:
                e.details["logs"] = logs
            raise

    def _result(
        self,
        proc: ChildProcess,
        reply: Any,
        status: int | None,
        code: str,
        limits: CodeLimits,
        logs: list[str],
    ) -> CodeResult:
        if proc.overflowed(1):
            raise errors.output_too_large("Python", len(proc.stdout), limits.max_output_bytes)
        if status == -signal.SIGXCPU:
            raise errors.timeout("Python", limits.timeout_s)
        if not isinstance(reply, dict):
            if status == -signal.SIGKILL or (status == -signal.SIGSEGV and _oom_hint(logs)):
                raise errors.memory("Python", limits.memory_mb)
            raise errors.crashed("Python", describe_exit(status))
        if reply.get("ok"):
            value = reply.get("value")
            size = len(jsonutil.dumpb(value))
            if size > limits.max_output_bytes:
                raise errors.output_too_large("Python", size, limits.max_output_bytes)
            return CodeResult(value=value, logs=logs)
        raise _error(reply.get("error") or {}, code, limits)

    def _logs(self, proc: ChildProcess) -> list[str]:
        text = proc.stderr.decode("utf-8", errors="replace")
        lines = text.splitlines()[: self.settings.max_log_lines]
        if proc.overflowed(2) or len(text.splitlines()) > len(lines):
            lines.append("[sandbox] more output was dropped")
        return lines


def _oom_hint(logs: list[str]) -> bool:
    return any("MemoryError" in line for line in logs[-5:])


def _error(err: Mapping[str, Any], code: str, limits: CodeLimits) -> Exception:
    if err.get("kind") == "timeout":
        return errors.timeout("Python", limits.timeout_s)
    if err.get("kind") == "memory":
        return errors.memory("Python", limits.memory_mb)
    line = err.get("line")
    return errors.user_error(
        "python",
        str(err.get("message") or "error"),
        line=line if isinstance(line, int) else None,
        source_line=err.get("source") or errors.source_line(code, line),
        stack=err.get("stack") or None,
        retriable=err.get("kind") != "syntax",
    )

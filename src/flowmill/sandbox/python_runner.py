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
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flowmill import jsonutil
from flowmill.domain.errors import NodeError
from flowmill.engine.services import CodeLimits, CodeResult
from flowmill.sandbox import errors, py_harness
from flowmill.sandbox.jail import Jail
from flowmill.sandbox.process import ChildProcess, cleanup_env, describe_exit
from flowmill.sandbox.settings import SandboxSettings

# Interpreter and harness before the code's own allocations (measured: ~25 MB).
_ADDRESS_SPACE_BASE_MB = 64
_KEYWORDS = frozenset(__import__("keyword").kwlist) | frozenset(("print",))
_HARNESS = Path(py_harness.__file__).read_text(encoding="utf-8")


def python_names(scope: Mapping[str, Any]) -> list[str]:
    """Scope keys usable as Python parameter names."""
    return [k for k in scope if isinstance(k, str) and k.isidentifier() and k not in _KEYWORDS]


class PythonRunner:
    """Runs Python code nodes in a jail.

    Args:
        settings: Limits and whether rlimit-only isolation is allowed.
        jail: The bubblewrap jail, or one without bubblewrap.
    """

    def __init__(self, settings: SandboxSettings, jail: Jail) -> None:
        self.settings = settings
        self.jail = jail

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

    async def run(self, code: str, scope: Mapping[str, Any], limits: CodeLimits) -> CodeResult:
        """Run ``code`` (a function body) with ``scope`` bound; return what it returns.

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
        jailed = self.jail.available
        names = python_names(scope)
        request: dict[str, Any] = {
            "code": code,
            "names": names,
            "scope": {n: scope[n] for n in names},
            "jailed": jailed,
            "limits": {
                "cpu_s": math.ceil(limits.timeout_s) + 1,
                "address_space_bytes": (limits.memory_mb + _ADDRESS_SPACE_BASE_MB) << 20,
                "file_bytes": self.settings.python_max_file_bytes,
                "open_files": self.settings.python_max_open_files,
                "processes": self.settings.python_max_processes,
            },
        }
        fd, workdir = -1, None
        argv = [self.jail.runtime.executable, "-I", "-S", "-c", _HARNESS]
        if jailed:
            fd = self.jail.seccomp_fd()
            argv = self.jail.command(
                argv, tmpfs_bytes=self.settings.python_max_file_bytes, seccomp_fd=fd
            )
        else:
            workdir = tempfile.mkdtemp(prefix="flowmill-py-")
            os.chmod(workdir, 0o777)  # noqa: S103 - the code runs as nobody in it
            program = self.jail.seccomp_program
            request["seccomp"] = program.hex() if program else None
        try:
            proc = await ChildProcess.start(
                argv,
                env=cleanup_env({"HOME": workdir or "/tmp"}),  # noqa: S108 - the jail's tmpfs
                pass_fds=(fd,) if fd >= 0 else (),
                cwd=workdir,
                stdout_limit=limits.max_output_bytes + 64 * 1024,
                stderr_limit=self.settings.max_log_bytes,
            )
        finally:
            if fd >= 0:
                os.close(fd)
        try:
            return await self._finish(proc, jsonutil.dumpb(request), code, limits)
        finally:
            await proc.close()
            if workdir:
                shutil.rmtree(workdir, ignore_errors=True)

    async def _finish(
        self, proc: ChildProcess, request: bytes, code: str, limits: CodeLimits
    ) -> CodeResult:
        proc.write(request)
        proc.close_stdin()
        try:
            async with asyncio.timeout(limits.timeout_s):
                status = await proc.wait()
        except TimeoutError:
            error = errors.timeout("Python", limits.timeout_s)
            logs = self._logs(proc)
            if logs:
                error.details["logs"] = logs
            raise error from None
        logs = self._logs(proc)
        try:
            return self._result(proc, status, code, limits, logs)
        except NodeError as e:
            if logs:
                e.details["logs"] = logs
            raise

    def _result(
        self, proc: ChildProcess, status: int, code: str, limits: CodeLimits, logs: list[str]
    ) -> CodeResult:
        if proc.overflowed(1):
            raise errors.output_too_large("Python", len(proc.stdout), limits.max_output_bytes)
        if status == -signal.SIGXCPU:
            raise errors.timeout("Python", limits.timeout_s)
        try:
            reply = jsonutil.loads(bytes(proc.stdout))
        except ValueError:
            reply = None
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

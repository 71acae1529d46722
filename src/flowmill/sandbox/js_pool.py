"""A pool of JavaScript worker processes (QuickJS), one evaluation at a time each.

The engine never runs user JavaScript itself: it sends a request to an idle worker
(:mod:`.js_worker`) and waits for the reply with a wall-clock deadline. A worker that
misses the deadline, dies, or is abandoned mid-request (the caller was cancelled) is
killed and replaced, so an infinite loop, a memory bomb or a crash of the JS engine
costs one process, never the engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from flowmill import jsonutil
from flowmill.domain.errors import NodeError
from flowmill.fairness import FairSlots, current_tenant
from flowmill.sandbox import errors, js_worker
from flowmill.sandbox.jail import Jail
from flowmill.sandbox.limits import CodeLimits
from flowmill.sandbox.process import (
    ChildProcess,
    cleanup_env,
    describe_exit,
    frame,
    settle_abandoned,
)
from flowmill.sandbox.settings import SandboxSettings
from flowmill.tasks import spawn

log = structlog.get_logger("flowmill.sandbox")

# Time a worker gets beyond the code's own limit to build a context and reply; the
# worker's in-engine limit fires first, this deadline only catches a stuck worker.
_GRACE_S = 1.0
_START_TIMEOUT_S = 20.0
_WORKER_IN_JAIL = "/sandbox/js_worker.py"
_LIB_IN_JAIL = "/sandbox/lib"
_ADDRESS_SPACE_HEADROOM_MB = 512
_WORKER_FILE = os.path.abspath(js_worker.__file__)


@dataclass
class JsReply:
    """A worker's answer: the header (``ok``, ``error``, ``logs``) and the value text."""

    header: dict[str, Any]
    value: bytes

    def logs(self) -> list[str]:
        """``console`` lines, with a note when some were dropped."""
        raw = self.header.get("logs") or {}
        lines = [str(x) for x in raw.get("lines", [])]
        if raw.get("dropped"):
            lines.append(f"[sandbox] {raw['dropped']} more console lines were dropped")
        return lines


def _quickjs_extension() -> str:
    """Path of the ``_quickjs`` C extension, found without importing it here."""
    spec = importlib.util.find_spec("_quickjs")
    if spec is None or not spec.origin:
        raise errors.unavailable("the quickjs-ng package (module _quickjs) is not installed")
    return str(Path(spec.origin).resolve())


class _Worker:
    def __init__(self, proc: ChildProcess) -> None:
        self.proc = proc
        self.evaluations = 0


class JsPool:
    """Worker processes evaluating JavaScript; safe to share across tasks.

    Args:
        settings: Pool size, limits, recycling.
        jail: Bubblewrap jail for the workers (used when available and enabled).
        tenant_cap: Most evaluations of one tenant at once (0: none), by tenant.
    """

    def __init__(
        self, settings: SandboxSettings, jail: Jail, tenant_cap: Callable[[str], int] | None = None
    ) -> None:
        self.settings = settings
        self.jail = jail
        self.jailed = jail.available and settings.jail_js_workers
        self._idle: asyncio.Queue[_Worker] = asyncio.Queue()
        self._all: set[_Worker] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._reaping: set[asyncio.Task[None]] = set()
        self._closed = False
        self._started = False
        self.respawns = 0
        # Workers go to tenants in turn; the reserve workers only to a tenant with no
        # evaluation running (see flowmill.fairness).
        self._fair = FairSlots(settings.worker_count, settings.js_reserve_workers, tenant_cap)

    async def start(self) -> None:
        """Start every worker and wait until each is ready."""
        if self._started:
            return
        self._started = True
        workers = await asyncio.gather(
            *(self._spawn() for _ in range(self._fair.capacity + self._fair.reserve)),
            return_exceptions=True,
        )
        for w in workers:
            if isinstance(w, BaseException):
                await self.close()
                raise errors.unavailable(f"the JavaScript sandbox did not start: {w}") from w
            self._idle.put_nowait(w)

    async def close(self) -> None:
        """Stop every worker and reap it (no zombies, no open pipes)."""
        self._closed = True
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for worker in list(self._all):
            self._replace(worker)
        await asyncio.gather(*self._reaping, return_exceptions=True)
        await settle_abandoned()

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    @property
    def busy(self) -> int:
        """Workers serving a request now (for tests and diagnostics)."""
        return len(self._all) - self._idle.qsize()

    @property
    def pids(self) -> list[int]:
        """Process ids of the live workers (for tests and diagnostics)."""
        return [w.proc.pid for w in self._all if w.proc.alive]

    async def _spawn(self) -> _Worker:
        address_space = self.settings.max_memory_mb + _ADDRESS_SPACE_HEADROOM_MB
        extension = _quickjs_extension()
        worker = _WORKER_FILE
        s = self.settings
        tail = [str(address_space), str(s.max_log_lines), str(s.max_log_bytes)]
        fd = -1
        if self.jailed:
            binds = [(worker, _WORKER_IN_JAIL)]
            binds.append((extension, f"{_LIB_IN_JAIL}/{os.path.basename(extension)}"))
            argv = [self.jail.runtime.executable, "-I", "-S", _WORKER_IN_JAIL, _LIB_IN_JAIL]
            fd = self.jail.seccomp_fd()
            argv = self.jail.command([*argv, *tail], binds=binds, seccomp_fd=fd)
        else:
            argv = [self.jail.runtime.executable, "-I", "-S", worker]
            argv += [os.path.dirname(extension), *tail]
        try:
            proc = await ChildProcess.start(
                argv,
                nice=self.settings.nice,
                env=cleanup_env(),
                pass_fds=(fd,) if fd >= 0 else (),
                # Log text may grow sixfold as escaped JSON in the reply header.
                stdout_limit=self.settings.max_output_bytes
                + 8 * self.settings.max_log_bytes
                + 64 * 1024,
            )
        finally:
            if fd >= 0:
                os.close(fd)
        try:
            await asyncio.wait_for(proc.read_frame(), _START_TIMEOUT_S)
        except BaseException:
            await proc.close()
            raise
        w = _Worker(proc)
        self._all.add(w)
        return w

    def _replace(self, worker: _Worker) -> None:
        """Kill ``worker`` and start another in the background."""
        self._all.discard(worker)
        # Reaping is never cancelled (close() waits for it), so no pipe or process
        # outlives the pool; starting a replacement is.
        spawn(worker.proc.close(), name="js-worker-reap", keep=self._reaping)
        if not self._closed:
            self.respawns += 1
            spawn(self._respawn(), name="js-worker-respawn", keep=self._tasks)

    async def _respawn(self) -> None:
        delay = 0.05
        while not self._closed:
            try:
                worker = await self._spawn()
            except Exception as e:  # keep trying: the pool must not shrink for good
                log.warning("JavaScript worker did not start", error=str(e))
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            if self.closed:  # closed while it started
                self._replace(worker)
            else:
                self._idle.put_nowait(worker)
            return

    async def request(
        self,
        header: dict[str, Any],
        scope: Mapping[str, Any],
        limits: CodeLimits,
    ) -> JsReply:
        """Send one request to an idle worker and return its reply.

        Raises:
            NodeError: ``SandboxTimeout`` (deadline missed), ``SandboxError`` (the
                worker died) or ``SandboxUnavailable`` (the pool is closed).
        """
        if self._closed:
            raise errors.unavailable("the JavaScript sandbox is closed")
        if not self._started:
            await self.start()
        header = {
            **header,
            "names": scope_names(scope),
            "timeout_s": limits.timeout_s,
            "memory_mb": limits.memory_mb,
            "max_output": limits.max_output_bytes,
        }
        data = frame(jsonutil.dumpb(header), errors.encode_scope(scope))
        try:
            return await self._send(data, limits)
        except _WorkerDied:
            # JavaScript has no I/O, so running it again is harmless: a worker that was
            # killed from outside costs a retry, not a failed node. A second death is
            # the code's doing.
            try:
                return await self._send(data, limits)
            except _WorkerDied as e:
                raise errors.crashed("JavaScript", e.reason) from None

    async def _acquire(self) -> _Worker:
        while True:
            worker = await self._idle.get()
            if worker.proc.alive:
                return worker
            self._replace(worker)

    async def _send(self, data: bytes, limits: CodeLimits) -> JsReply:
        async with self._fair.slot(current_tenant.get()):
            return await self._send_to_worker(data, limits)

    async def _send_to_worker(self, data: bytes, limits: CodeLimits) -> JsReply:
        worker = await self._acquire()
        healthy = False
        try:
            worker.proc.write(data)
            async with asyncio.timeout(limits.timeout_s + _GRACE_S):
                head, value = await worker.proc.read_frame()
            worker.evaluations += 1
            healthy = worker.evaluations < self.settings.js_max_evaluations_per_worker
            return JsReply(jsonutil.loads(head), value)
        except TimeoutError:
            raise errors.timeout("JavaScript", limits.timeout_s) from None
        except (EOFError, OverflowError) as e:
            await asyncio.sleep(0)  # let the exit status arrive
            raise _WorkerDied(_reason(worker, e)) from None
        finally:
            if healthy:
                self._idle.put_nowait(worker)
            else:
                self._replace(worker)


class _WorkerDied(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _reason(worker: _Worker, e: Exception) -> str:
    if isinstance(e, OverflowError):
        return "it wrote more than the output limit"
    return describe_exit(worker.proc.returncode)


def scope_names(scope: Mapping[str, Any]) -> list[str]:
    """Scope keys that can be bound as JavaScript names (identifiers, not keywords)."""
    return [
        k
        for k in scope
        if js_worker.IDENT.match(k) and k not in js_worker.RESERVED and k not in JS_GLOBALS
    ]


JS_GLOBALS = frozenset(
    (
        "Object",
        "Function",
        "Array",
        "Number",
        "parseFloat",
        "parseInt",
        "Infinity",
        "NaN",
        "undefined",
        "Boolean",
        "String",
        "Symbol",
        "Date",
        "Promise",
        "RegExp",
        "Error",
        "AggregateError",
        "EvalError",
        "RangeError",
        "ReferenceError",
        "SyntaxError",
        "TypeError",
        "URIError",
        "globalThis",
        "JSON",
        "Math",
        "Intl",
        "ArrayBuffer",
        "SharedArrayBuffer",
        "Uint8Array",
        "Int8Array",
        "Uint16Array",
        "Int16Array",
        "Uint32Array",
        "Int32Array",
        "Float32Array",
        "Float64Array",
        "Uint8ClampedArray",
        "BigUint64Array",
        "BigInt64Array",
        "DataView",
        "Map",
        "BigInt",
        "Set",
        "WeakMap",
        "WeakSet",
        "WeakRef",
        "FinalizationRegistry",
        "Proxy",
        "Reflect",
        "Atomics",
        "decodeURI",
        "decodeURIComponent",
        "encodeURI",
        "encodeURIComponent",
        "escape",
        "unescape",
        "isFinite",
        "isNaN",
        "console",
        "queueMicrotask",
        "structuredClone",
    )
)
"""Standard globals an input key must not shadow (an input field "JSON" broke JSON)."""


def raise_for(reply: JsReply, limits: CodeLimits, code: str | Sequence[str]) -> None:
    """Turn a failed reply into the node error users see (with the console lines)."""
    if reply.header.get("ok"):
        return
    try:
        _raise_for(reply, limits, code)
    except NodeError as e:
        logs = reply.logs()
        if logs:
            e.details["logs"] = logs
        raise


def _raise_for(reply: JsReply, limits: CodeLimits, code: str | Sequence[str]) -> None:
    err = reply.header.get("error") or {}
    kind = err.get("kind")
    if kind == "timeout":
        raise errors.timeout("JavaScript", limits.timeout_s)
    if kind == "memory":
        raise errors.memory("JavaScript", limits.memory_mb)
    if kind == "output":
        raise errors.output_too_large(
            "JavaScript", int(err.get("size", 0)), limits.max_output_bytes
        )
    line = err.get("line")
    index = int(err.get("index", -1))
    if isinstance(code, str):
        source = code
        prefix = ""
    else:
        source = code[index] if 0 <= index < len(code) else ""
        prefix = f"in {{{{ {source.strip()[:200]} }}}}: " if source else ""
    message = str(err.get("message") or "Error")
    n = line if isinstance(line, int) else None
    raise errors.user_error(
        "javascript",
        prefix + message,
        line=n,
        source_line=errors.source_line(source, n),
        stack=str(err["stack"]) if err.get("stack") else None,
        # A syntax error fails the same way every time; anything else may not.
        retriable=not message.startswith("SyntaxError"),
    )


async def close_quietly(pool: JsPool) -> None:
    """Close ``pool``, ignoring errors (for shutdown paths)."""
    with contextlib.suppress(Exception):
        await pool.close()

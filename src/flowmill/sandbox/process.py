"""A child process with piped stdio on the running event loop, bounded and killable.

Built on ``loop.subprocess_exec`` with our own protocol so the transport is ours to
close (no ``ResourceWarning``), output is capped while it arrives (a flood of output
cannot fill the engine's memory), and killing takes the whole process group.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import struct
from collections.abc import Mapping, Sequence
from typing import Any

FRAME_HEAD = struct.Struct(">II")


class _Protocol(asyncio.SubprocessProtocol):
    def __init__(self, stdout_limit: int, stderr_limit: int) -> None:
        self.out = bytearray()
        self.err = bytearray()
        self.limits = {1: stdout_limit, 2: stderr_limit}
        self.overflow = {1: False, 2: False}
        self.eof = False
        self.exited = asyncio.get_running_loop().create_future()
        self._waiter: asyncio.Future[None] | None = None

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        buf = self.out if fd == 1 else self.err
        room = self.limits[fd] - len(buf)
        if len(data) > room:
            self.overflow[fd] = True
            data = data[: max(room, 0)]
        buf += data
        self._wake()

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        if fd == 1:
            self.eof = True
            self._wake()

    def process_exited(self) -> None:
        if not self.exited.done():
            self.exited.set_result(None)
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def wait_data(self) -> None:
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None


class ChildProcess:
    """One child process; create with :meth:`start`, always end with :meth:`close`."""

    def __init__(self, transport: asyncio.SubprocessTransport, protocol: _Protocol) -> None:
        self._transport = transport
        self._protocol = protocol
        self.pid: int = transport.get_pid()

    @classmethod
    async def start(
        cls,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        pass_fds: Sequence[int] = (),
        cwd: str | None = None,
        stdout_limit: int,
        stderr_limit: int = 0,
        nice: int = 0,
    ) -> ChildProcess:
        """Start ``argv`` in a new session with piped stdin, stdout and stderr.

        stderr is discarded when ``stderr_limit`` is 0. ``nice`` lowers the CPU priority
        of the child and everything it starts (user code spinning in a loop must not
        take the CPU from the engine's own work, which every tenant waits on).
        """
        loop = asyncio.get_running_loop()
        if nice and (nice_bin := shutil.which("nice")):
            argv = [nice_bin, "-n", str(nice), *argv]
        starting = asyncio.ensure_future(
            cls._exec(loop, argv, env, pass_fds, cwd, stdout_limit, stderr_limit)
        )
        try:
            transport, protocol = await asyncio.shield(starting)
        except asyncio.CancelledError:
            # Cancelling subprocess_exec half-way can hang the cancelled task for good
            # (CPython 3.11's transport then waits for pipes that never connect: a pool
            # closing while it replaced a worker hung). Let the start finish; what it
            # started is killed and reaped in the background.
            _STARTING.add(starting)
            starting.add_done_callback(_STARTING.discard)
            starting.add_done_callback(_reap_abandoned)
            raise
        return cls(transport, protocol)

    @staticmethod
    async def _exec(
        loop: asyncio.AbstractEventLoop,
        argv: Sequence[str],
        env: Mapping[str, str],
        pass_fds: Sequence[int],
        cwd: str | None,
        stdout_limit: int,
        stderr_limit: int,
    ) -> tuple[asyncio.SubprocessTransport, _Protocol]:
        return await loop.subprocess_exec(
            lambda: _Protocol(stdout_limit, stderr_limit),
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE if stderr_limit else asyncio.subprocess.DEVNULL,
            env=dict(env),
            pass_fds=tuple(pass_fds),
            cwd=cwd,
            close_fds=True,
            start_new_session=True,
        )

    @property
    def returncode(self) -> int | None:
        """Exit status once it has exited (negative: killed by that signal)."""
        return self._transport.get_returncode()

    @property
    def alive(self) -> bool:
        """Whether the child runs and its stdout is open."""
        return self.returncode is None and not self._protocol.eof

    @property
    def stdout(self) -> bytearray:
        """What the child has written to stdout so far (up to the limit)."""
        return self._protocol.out

    @property
    def stderr(self) -> bytes:
        """What the child has written to stderr so far (up to the limit)."""
        return bytes(self._protocol.err)

    def overflowed(self, fd: int) -> bool:
        """Whether the child wrote more than the limit to ``fd`` (1 or 2)."""
        return self._protocol.overflow[fd]

    def write(self, data: bytes) -> None:
        """Queue ``data`` for the child's stdin (the loop writes it out)."""
        pipe = self._transport.get_pipe_transport(0)
        if isinstance(pipe, asyncio.WriteTransport) and not pipe.is_closing():
            pipe.write(data)

    def close_stdin(self) -> None:
        """Signal end of input."""
        pipe = self._transport.get_pipe_transport(0)
        if pipe is not None:
            pipe.close()

    async def read_frame(self) -> tuple[bytes, bytes]:
        """The next ``(header, body)`` frame from stdout.

        Raises:
            EOFError: stdout ended (the child died) before a whole frame arrived.
            OverflowError: The frame is larger than the stdout limit.
        """
        proto = self._protocol
        while True:
            buf = proto.out
            if len(buf) >= FRAME_HEAD.size:
                hlen, blen = FRAME_HEAD.unpack_from(buf)
                end = FRAME_HEAD.size + hlen + blen
                if end > proto.limits[1]:
                    raise OverflowError(f"frame of {end} bytes")
                if len(buf) >= end:
                    head = bytes(buf[FRAME_HEAD.size : FRAME_HEAD.size + hlen])
                    body = bytes(buf[FRAME_HEAD.size + hlen : end])
                    del buf[:end]
                    return head, body
            if proto.eof or proto.exited.done():
                raise EOFError("the process closed its output")
            await proto.wait_data()

    async def wait(self) -> int:
        """Wait for the child to exit and its output to end; its exit status."""
        await asyncio.shield(self._protocol.exited)
        # The end-of-output check and the wait for it must happen in one task step (no
        # wait_for, which would start the wait in a new task and could miss the wake-up).
        async with asyncio.timeout(5.0):
            while not self._protocol.eof:
                await self._protocol.wait_data()
        code = self.returncode
        return -1 if code is None else code

    def kill(self) -> None:
        """SIGKILL what runs under the child, then (if it has no children) the child.

        Under bubblewrap the child is bwrap's monitor and its child the jail's PID 1:
        killing that one ends everything in the jail, and bwrap, seeing it die, exits
        by itself. Killing bwrap first would orphan the jail's PID 1 to the host's init
        (a zombie where init does not reap, e.g. an engine running as PID 1).
        """
        if self.returncode is not None:
            return
        children = _children(self.pid)
        for child in children:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(child, signal.SIGKILL)
        if not children:
            self._kill_group()

    def _kill_group(self) -> None:
        if self.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError):
                self._transport.kill()

    async def close(self) -> None:
        """Kill the child if it still runs, reap it and release the pipes."""
        exited = self._protocol.exited
        try:
            self.close_stdin()
            self.kill()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(exited), 1.0)
            if not exited.done():
                self._kill_group()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(exited), 5.0)
        finally:
            self._transport.close()


_ABANDONED: set[asyncio.Task[None]] = set()  # reaps of starts whose caller went away
_STARTING: set[asyncio.Future[Any]] = set()  # those starts, while still under way


async def settle_abandoned() -> None:
    """Wait until every start abandoned by a cancelled caller (in this event loop) has
    finished and its process been killed and reaped.

    A pool closing calls this: its spare-process tasks are cancelled mid-start, and a
    process still running when the loop closes would outlive it (and its ``Popen``
    would be collected while it runs).
    """
    loop = asyncio.get_running_loop()
    for _ in range(100):
        pending = [f for f in (*_STARTING, *_ABANDONED) if f.get_loop() is loop]
        if not pending:
            return
        await asyncio.gather(*pending, return_exceptions=True)
        await asyncio.sleep(0)  # not a wait: lets a finished start's callback add its reap


def _reap_abandoned(
    starting: asyncio.Future[tuple[asyncio.SubprocessTransport, _Protocol]],
) -> None:
    if starting.cancelled() or starting.exception() is not None:
        return
    transport, protocol = starting.result()
    task = asyncio.ensure_future(ChildProcess(transport, protocol).close())
    _ABANDONED.add(task)
    task.add_done_callback(_ABANDONED.discard)


def _children(pid: int) -> list[int]:
    """Direct children of ``pid`` (Linux ``/proc``; empty where unavailable)."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children", encoding="ascii") as f:
            return [int(p) for p in f.read().split()]
    except (OSError, ValueError):
        return []


def frame(header: bytes, body: bytes = b"") -> bytes:
    """One frame: two big-endian lengths, the header, the body."""
    return FRAME_HEAD.pack(len(header), len(body)) + header + body


def describe_exit(code: int | None) -> str:
    """Words for an exit status: ``killed by SIGSEGV``, ``exit status 1``."""
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"


def cleanup_env(extra: Mapping[str, Any] | None = None) -> dict[str, str]:
    """An environment with nothing of the engine's in it (no secrets, no paths)."""
    env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
    for k, v in (extra or {}).items():
        env[k] = str(v)
    return env

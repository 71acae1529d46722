"""Python code nodes in the jail: results, limits, and the escape corpus."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest

from flowmill.domain.errors import NodeError
from flowmill.engine.services import CodeLimits
from flowmill.sandbox import Jail, Sandbox, SandboxSettings
from flowmill.testing import TcpListener
from tests.conftest import unavailable

SCOPE: dict[str, Any] = {
    "input": {"data": {"message": "hello", "lines": [{"amount": 2}, {"amount": 3}]}},
    "trigger": {"type": "manual"},
    "nodes": {},
    "vars": {"rate": 2},
    "execution": {"id": "e1"},
}
LIMITS = CodeLimits(timeout_s=2, memory_mb=64, max_output_bytes=64 * 1024)
JAIL = Jail.detect()


@pytest.fixture
def bwrap() -> None:
    if not JAIL.available:
        unavailable(f"no bubblewrap: {JAIL.problem}")


needs_bwrap = pytest.mark.usefixtures("bwrap")


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    sb = Sandbox(SandboxSettings(js_workers=1), JAIL)
    yield sb
    await sb.close()


async def py(sb: Sandbox, code: str, limits: CodeLimits = LIMITS) -> Any:
    return (await sb.run("python", code, SCOPE, limits)).value


async def still_serves(sb: Sandbox) -> None:
    assert await py(sb, "return vars['rate'] * 21") == 42


@needs_bwrap
async def test_python_returns_json_and_prints_to_logs(sandbox: Sandbox) -> None:
    code = (
        "total = sum(line['amount'] for line in input['data']['lines'])\n"
        "print('lines:', len(input['data']['lines']))\n"
        "return {'total': total * vars['rate'], 'msg': input['data']['message'] + ' processed'}"
    )
    result = await sandbox.run("python", code, SCOPE, LIMITS)
    assert result.value == {"total": 10, "msg": "hello processed"}
    assert result.logs == ["lines: 2"]


@needs_bwrap
async def test_python_without_return_outputs_null(sandbox: Sandbox) -> None:
    assert await py(sandbox, "x = 1") is None


@needs_bwrap
async def test_python_user_error_names_message_and_line(sandbox: Sandbox) -> None:
    with pytest.raises(NodeError) as info:
        await py(sandbox, "print('before')\nx = {}\nreturn x['missing']")
    e = info.value
    assert e.type == "SandboxError"
    assert e.message == "KeyError: 'missing' (line 3: return x['missing'])"
    assert e.details["line"] == 3
    assert e.details["logs"] == ["before"]
    assert 'File "<code>", line 3' in e.details["stack"]


@needs_bwrap
async def test_python_syntax_error_is_not_retriable(sandbox: Sandbox) -> None:
    with pytest.raises(NodeError) as info:
        await py(sandbox, "x = 1\nreturn x +")
    assert info.value.message.startswith("SyntaxError")
    assert info.value.details["line"] == 2
    assert not info.value.retriable


@needs_bwrap
async def test_python_non_json_result_is_an_error(sandbox: Sandbox) -> None:
    with pytest.raises(NodeError, match="not JSON"):
        await py(sandbox, "return {1, 2}")


@needs_bwrap
async def test_python_output_limit(sandbox: Sandbox) -> None:
    with pytest.raises(NodeError) as info:
        await py(sandbox, "return 'x' * (200 * 1024)")
    assert info.value.type == "SandboxOutputTooLarge"


@needs_bwrap
async def test_python_infinite_loop_is_killed(sandbox: Sandbox) -> None:
    with pytest.raises(NodeError) as info:
        await py(sandbox, "while True: pass", CodeLimits(timeout_s=0.5, memory_mb=64))
    assert info.value.type == "SandboxTimeout"
    await still_serves(sandbox)


@needs_bwrap
async def test_python_sleep_is_killed_by_the_wall_clock(sandbox: Sandbox) -> None:
    with pytest.raises(NodeError) as info:
        await py(sandbox, "import time\ntime.sleep(30)", CodeLimits(timeout_s=0.5, memory_mb=64))
    assert info.value.type == "SandboxTimeout"


@needs_bwrap
@pytest.mark.parametrize(
    "code",
    ["x = bytearray(2 * 1024 ** 3)", "x = 'a' * (2 * 1024 ** 3)", "x = [0] * (300 * 1024 ** 2)"],
)
async def test_python_memory_bomb_is_stopped(sandbox: Sandbox, code: str) -> None:
    with pytest.raises(NodeError) as info:
        await py(sandbox, code)
    assert info.value.type == "SandboxMemoryExceeded"
    await still_serves(sandbox)


def host_addresses() -> list[str]:
    """Loopback and the host's other IPv4 addresses (where the listener also is)."""
    names = {"127.0.0.1"}
    with contextlib.suppress(OSError):
        names.update(
            a[4][0] for a in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)
        )
    return sorted(names)


ESCAPES = [
    "return open('/etc/passwd').read()",
    "return open('/proc/self/environ').read()",
    "return open('/proc/1/environ').read()",
    "import os\nreturn os.listdir('/home')",
    "import os\nwhile True:\n    os.fork()",
    "import threading\nthreading.Thread(target=print).start()",
    "import subprocess\nreturn subprocess.run(['/bin/sh', '-c', 'id'], capture_output=True).stdout",
    "import ctypes\nreturn ctypes.CDLL(None).system(b'id')",
    "open('/usr/lib/evil.so', 'w').write('x')",
    "open('/evil', 'w').write('x')",
    "import os\nos.mkdir('/opt/evil')",
    "with open('/tmp/big', 'wb') as f:\n    f.write(b'x' * (64 * 1024 * 1024))",
    f"import os\nos.kill({os.getpid()}, 0)",  # the engine is not even visible
    "import os\nos.setuid(0)",
]


@needs_bwrap
@pytest.mark.parametrize("code", ESCAPES, ids=lambda code: code.replace(str(os.getpid()), "PID"))
async def test_python_escape_attempt_fails(sandbox: Sandbox, code: str) -> None:
    with pytest.raises(NodeError) as info:
        await py(sandbox, code)
    assert info.value.type in ("SandboxError", "SandboxMemoryExceeded")
    await still_serves(sandbox)


@needs_bwrap
@pytest.mark.parametrize("address", host_addresses())
async def test_python_cannot_reach_a_listening_host_port(
    sandbox: Sandbox, listener: TcpListener, address: str
) -> None:
    code = f"import socket\nsocket.create_connection(({address!r}, {listener.port}), timeout=1)"
    with pytest.raises(NodeError, match=r"ConnectionRefused|Network is unreachable"):
        await py(sandbox, code)
    assert listener.accepted == []
    await still_serves(sandbox)


@needs_bwrap
async def test_python_sees_only_its_own_loopback(sandbox: Sandbox) -> None:
    """A network namespace of its own: one interface, ``lo``, and no host sockets."""
    code = "import socket\nreturn sorted(name for _, name in socket.if_nameindex())"
    assert await py(sandbox, code) == ["lo"]


@needs_bwrap
async def test_python_sees_no_engine_environment(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLOWMILL_DATABASE_URL", "postgresql://user:secret@db/flowmill")
    env = await py(sandbox, "import os\nreturn dict(os.environ)")
    assert not any("secret" in v for v in env.values())
    assert set(env) <= {"HOME", "LANG", "PWD", "LC_CTYPE"}


@needs_bwrap
async def test_python_tmp_is_private_to_each_run(sandbox: Sandbox) -> None:
    assert await py(sandbox, "open('/tmp/note', 'w').write('hi')\nreturn 1") == 1
    assert await py(sandbox, "import os\nreturn os.listdir('/tmp')") == []


@needs_bwrap
async def test_python_runs_in_parallel(sandbox: Sandbox) -> None:
    values = await asyncio.gather(*(py(sandbox, f"return {i}") for i in range(6)))
    assert values == list(range(6))


async def test_python_is_refused_without_bubblewrap_by_default() -> None:
    jail = Jail.detect("none")
    sb = Sandbox(SandboxSettings(js_workers=1), jail)
    assert sb.describe()["python"] == "refused"
    assert "refused" in sb.describe()["warning"]
    with pytest.raises(NodeError) as info:
        await sb.run("python", "return 1", SCOPE, LIMITS)
    assert info.value.type == "SandboxUnavailable"
    assert "allow_rlimit_only_python" in info.value.message
    await sb.close()


async def test_python_rlimit_only_when_allowed() -> None:
    jail = Jail.detect("none")
    sb = Sandbox(SandboxSettings(js_workers=1, allow_rlimit_only_python=True), jail)
    assert sb.describe()["python"] == "rlimit-only"
    assert await py(sb, "import math\nreturn math.floor(2.5)") == 2
    for code in ("import os\nos.fork()", "x = bytearray(2 * 1024 ** 3)"):
        with pytest.raises(NodeError):
            await py(sb, code)
    with pytest.raises(NodeError) as info:
        await py(sb, "while True: pass", CodeLimits(timeout_s=0.5, memory_mb=64))
    assert info.value.type == "SandboxTimeout"
    await sb.close()


@needs_bwrap
async def test_python_unicode_result_and_logs(sandbox: Sandbox) -> None:
    limits = CodeLimits(timeout_s=2, memory_mb=64, max_output_bytes=64 * 1024)
    result = await sandbox.run("python", "print('été ✓')\nreturn 'é' * 20000", SCOPE, limits)
    assert result.value == "é" * 20000
    assert result.logs == ["été ✓"]


@needs_bwrap
async def test_python_lone_surrogate_result_is_kept_readable(sandbox: Sandbox) -> None:
    assert await py(sandbox, "return ['\\ud800']") == ["\ufffd"]


@needs_bwrap
async def test_python_error_with_a_lone_surrogate_is_reported(sandbox: Sandbox) -> None:
    with pytest.raises(NodeError, match="ValueError"):
        await py(sandbox, "raise ValueError('\\ud800')")


@needs_bwrap
async def test_python_input_keys_never_shadow_builtins(sandbox: Sandbox) -> None:
    scope = {**SCOPE, "input": {"type": "order", "len": 2, "qty": 3}}
    scope.update({"type": "order", "len": 2, "qty": 3})
    result = await sandbox.run(
        "python", "return [type(qty).__name__, len('ab'), input['type'], qty]", scope, LIMITS
    )
    assert result.value == ["int", 2, "order", 3]


@needs_bwrap
async def test_python_deep_recursion_is_a_recursion_error(sandbox: Sandbox) -> None:
    code = (
        "import sys\nsys.setrecursionlimit(10 ** 6)\n"
        "def down(n):\n    return down(n + 1)\nreturn down(0)"
    )
    with pytest.raises(NodeError) as info:
        await py(sandbox, code)
    assert "RecursionError" in str(info.value), info.value
    assert "SystemError" not in str(info.value)
    await still_serves(sandbox)

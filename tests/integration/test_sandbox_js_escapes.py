"""The JavaScript escape corpus: every attempt fails, and the sandbox keeps serving; and
the worker processes themselves have no network (for an escape from QuickJS itself)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from flowmill.domain.errors import NodeError
from flowmill.engine.services import CodeLimits
from flowmill.sandbox import Jail, Sandbox, SandboxSettings
from flowmill.testing import TcpListener
from tests.conftest import unavailable

LIMITS = CodeLimits(timeout_s=1, memory_mb=32)
SCOPE = {"input": {"data": {}}, "trigger": {}, "nodes": {}, "vars": {}, "execution": {}}

ESCAPES = [
    "return this.constructor.constructor('return process')()",
    "return this.constructor.constructor`return process`()",
    "return (() => {}).constructor('return process')()",
    "return (async () => {}).constructor('return process')()",
    "return (function* () {}).constructor('yield process')().next()",
    "return Object.getPrototypeOf(async function* () {}).constructor('return 1')",
    "return Function('return this')().process.env",
    "return new Function('return process')()",
    "return Reflect.construct(Function, ['return process'])()",
    "return ''.constructor.constructor('return process')()",
    "return input.constructor.constructor('return process')()",
    "return eval('process')",
    "return (0, eval)('this')",
    "return globalThis['ev' + 'al']('1')",
    "return await import('os')",
    "return await import('child_process')",
    "return require('fs')",
    "return process.env",
    "return std.getenviron()",
    "return os.exec(['/bin/sh'])",
    "return __fm.run.constructor('return 1')()",
]


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with Sandbox(SandboxSettings(js_workers=1)) as sb:
        yield sb


@pytest.mark.parametrize("code", ESCAPES)
async def test_js_escape_attempt_fails(sandbox: Sandbox, code: str) -> None:
    with pytest.raises(NodeError) as info:
        await sandbox.run("javascript", code, SCOPE, LIMITS)
    assert info.value.type == "SandboxError"
    result = await sandbox.run("javascript", "return 6 * 7", SCOPE, LIMITS)
    assert result.value == 42


CODE_FROM_STRINGS = [
    "return Function('return 1')()",
    "return new Function('return 1')()",
    "return Reflect.construct(Function, ['return 1'])()",
    "return (() => {}).constructor('return 1')()",
    "return (async () => {}).constructor('return 1')",
    "return eval('1')",
    "return (0, eval)('1')",
]


@pytest.mark.parametrize("code", CODE_FROM_STRINGS)
async def test_js_code_generation_from_strings_is_off(sandbox: Sandbox, code: str) -> None:
    """Refused for that reason, not for a missing host object further on: the escape
    corpus alone would pass with ``Function`` left in place."""
    with pytest.raises(NodeError, match="code generation from strings is disabled"):
        await sandbox.run("javascript", code, SCOPE, LIMITS)


async def test_js_no_host_objects_are_reachable(sandbox: Sandbox) -> None:
    code = """
    const names = Object.getOwnPropertyNames(globalThis);
    return {
      host: ['process', 'require', 'module', 'std', 'os', 'Deno', 'Bun', 'print', 'setTimeout']
        .filter((n) => typeof globalThis[n] !== 'undefined'),
      evalType: typeof eval,
    };
    """
    result = await sandbox.run("javascript", code, SCOPE, LIMITS)
    assert result.value == {"host": [], "evalType": "function"}


async def test_js_prototype_pollution_does_not_leak_into_the_next_evaluation(
    sandbox: Sandbox,
) -> None:
    pollute = """
    Object.prototype.polluted = 'yes';
    Array.prototype.map = null;
    JSON.stringify = () => '"hacked"';
    Object.defineProperty(Object.prototype, 'isAdmin', { get() { return true } });
    return 1
    """
    await sandbox.run("javascript", pollute, SCOPE, LIMITS)
    check = "return [({}).polluted, typeof [].map, ({}).isAdmin, JSON.stringify({a: 1})]"
    result = await sandbox.run("javascript", check, SCOPE, LIMITS)
    assert result.value == [None, "function", None, '{"a":1}']
    assert await sandbox.evaluate_many(["({}).polluted"], {}) == [None]


async def test_js_globals_of_a_previous_evaluation_are_gone(sandbox: Sandbox) -> None:
    await sandbox.run(
        "javascript", "globalThis.secret = 's3cret'; var leaked = 1; return 1", SCOPE, LIMITS
    )
    await sandbox.evaluate_many(["(globalThis.other = 'tenant-a')"], {})
    code = "return [typeof secret, typeof leaked, typeof other]"
    result = await sandbox.run("javascript", code, SCOPE, LIMITS)
    assert result.value == ["undefined", "undefined", "undefined"]


async def test_js_scope_of_a_previous_evaluation_is_gone(sandbox: Sandbox) -> None:
    await sandbox.run("javascript", "return 1", {"input": {"card": "4111"}}, LIMITS)
    result = await sandbox.run("javascript", "return typeof input", {}, LIMITS)
    assert result.value == "undefined"


def _process_tree(pid: int) -> list[int]:
    """``pid`` and every process below it."""
    tree = [pid]
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            tree += _process_tree(int(child))
    return tree


def _listening_ports(net_tcp: str) -> set[int]:
    """Local ports in a ``/proc/<pid>/net/tcp`` table (hex ``address:port`` fields)."""
    return {int(line.split()[1].split(":")[1], 16) for line in net_tcp.splitlines()[1:]}


async def test_js_workers_run_in_a_network_namespace_of_their_own(listener: TcpListener) -> None:
    """What an escape from QuickJS would find: one interface, ``lo``, and none of the
    host's sockets (the listener, visible from here, is not there)."""
    jail = Jail.detect()
    if not jail.available:
        unavailable(f"no bubblewrap: {jail.problem}")
    settings = SandboxSettings(js_workers=1)
    async with Sandbox(settings, jail) as sb:
        assert sb.js.jailed
        assert await sb.evaluate_many(["1 + 1"], {}) == [2]
        # Every worker, the reserve ones for quiet tenants included.
        assert len(sb.js.pids) == 1 + settings.js_reserve_workers
        for outer in sb.js.pids:
            *_, worker = _process_tree(outer)  # bubblewrap, then the worker at the bottom
            assert b"js_worker" in Path(f"/proc/{worker}/cmdline").read_bytes()
            assert os.readlink(f"/proc/{worker}/ns/net") != os.readlink("/proc/self/ns/net")
            interfaces = [
                line.split(":")[0].strip()
                for line in Path(f"/proc/{worker}/net/dev").read_text().splitlines()[2:]
            ]
            assert interfaces == ["lo"]
            assert listener.port in _listening_ports(Path("/proc/self/net/tcp").read_text())
            inside = Path(f"/proc/{worker}/net/tcp").read_text()
            assert listener.port not in _listening_ports(inside)

"""The JavaScript sandbox with real worker processes: results, limits, escapes, crashes."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from typing import Any

import pytest

from flowmill.domain.errors import NodeError
from flowmill.engine.services import CodeLimits
from flowmill.sandbox import Jail, Sandbox, SandboxSettings
from flowmill.testing import eventually

SCOPE: dict[str, Any] = {
    "input": {"data": {"message": "hello", "total": 150}},
    "trigger": {"type": "webhook.test", "data": {"message": "hello"}},
    "nodes": {"fetch": {"output": {"items": [1, 2, 3]}}},
    "vars": {"region": "eu"},
    "execution": {"id": "exec-1"},
}
FAST = CodeLimits(timeout_s=0.5, memory_mb=32, max_output_bytes=64 * 1024)


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    # One worker: consecutive evaluations land in the same process, which is what
    # the leak tests must show is harmless.
    async with Sandbox(
        SandboxSettings(js_workers=1, js_reserve_workers=0, expression_timeout_s=0.5)
    ) as sb:
        yield sb


async def js(sb: Sandbox, code: str, limits: CodeLimits = FAST) -> Any:
    return (await sb.run("javascript", code, SCOPE, limits)).value


async def still_serves(sb: Sandbox) -> None:
    assert await js(sb, "return input.data.total + 1") == 151


async def test_js_runs_the_seed_function_code(sandbox: Sandbox) -> None:
    code = 'return { result: input.data.message + " processed" };'
    assert await js(sandbox, code) == {"result": "hello processed"}


async def test_js_sees_every_scope_name(sandbox: Sandbox) -> None:
    code = "return [trigger.type, nodes.fetch.output.items.length, vars.region, execution.id]"
    assert await js(sandbox, code) == ["webhook.test", 3, "eu", "exec-1"]


async def test_js_supports_await_and_returns_json(sandbox: Sandbox) -> None:
    code = "const x = await Promise.resolve(2); return { x, u: undefined, f() {}, n: NaN }"
    assert await js(sandbox, code) == {"x": 2, "n": None}
    assert await js(sandbox, "return undefined") is None
    assert await js(sandbox, "input.data.total = 0") is None


async def test_js_console_goes_to_the_logs(sandbox: Sandbox) -> None:
    result = await sandbox.run(
        "javascript", 'console.log("n", 1, {a: [1]}); console.error("bad"); return 1', SCOPE, FAST
    )
    assert result.logs == ['n 1 {"a":[1]}', "[error] bad"]


async def test_js_console_is_bounded(sandbox: Sandbox) -> None:
    result = await sandbox.run(
        "javascript", "for (let i = 0; i < 10000; i++) console.log(i); return 1", SCOPE, FAST
    )
    assert len(result.logs) == 201
    assert result.logs[-1] == "[sandbox] 9800 more console lines were dropped"


async def test_js_user_error_names_message_and_line(sandbox: Sandbox) -> None:
    code = "const a = 1;\nconsole.log('before');\nnull.boom;\nreturn a"
    with pytest.raises(NodeError) as info:
        await js(sandbox, code)
    e = info.value
    assert e.type == "SandboxError"
    assert e.message == "TypeError: cannot read property 'boom' of null (line 3: null.boom;)"
    assert e.details["line"] == 3
    assert e.details["logs"] == ["before"]
    assert "line 3" in e.details["stack"]


async def test_js_syntax_error_is_reported_and_not_retriable(sandbox: Sandbox) -> None:
    with pytest.raises(NodeError) as info:
        await js(sandbox, "let x = 1;\nreturn x +;")
    assert info.value.type == "SandboxError"
    assert info.value.message.startswith("SyntaxError")
    assert info.value.details["line"] == 2
    assert not info.value.retriable


async def test_js_infinite_loop_times_out(sandbox: Sandbox) -> None:
    with pytest.raises(NodeError) as info:
        await js(sandbox, "while (true) {}")
    assert info.value.type == "SandboxTimeout"
    assert info.value.retriable
    await still_serves(sandbox)


async def test_js_endless_promise_chain_times_out(sandbox: Sandbox) -> None:
    with pytest.raises(NodeError) as info:
        await js(sandbox, "while (true) await 0")
    assert info.value.type == "SandboxTimeout"
    await still_serves(sandbox)


async def test_js_catastrophic_regex_times_out(sandbox: Sandbox) -> None:
    with pytest.raises(NodeError) as info:
        await js(sandbox, "return /(a+)+$/.test('a'.repeat(40) + 'b')")
    assert info.value.type == "SandboxTimeout"
    await still_serves(sandbox)


@pytest.mark.parametrize(
    "code",
    [
        "const a = []; while (true) a.push('xxxxxxxxxxxxxxxxxxxxxxxx' + a.length)",
        "return 'x'.repeat(1e9).length",
        "return new Uint8Array(1e8).length",
    ],
)
async def test_js_memory_bomb_is_stopped(sandbox: Sandbox, code: str) -> None:
    # Time enough to reach the memory limit however loaded the machine (and however low
    # the sandbox's CPU priority): what is tested is the memory limit, not the clock.
    limits = CodeLimits(timeout_s=20, memory_mb=32, max_output_bytes=64 * 1024)
    with pytest.raises(NodeError) as info:
        await js(sandbox, code, limits)
    assert info.value.type == "SandboxMemoryExceeded"
    await still_serves(sandbox)


async def test_js_deep_recursion_fails_cleanly(sandbox: Sandbox) -> None:
    with pytest.raises(NodeError) as info:
        await js(sandbox, "function f(n) { return f(n + 1) + 1 }\nreturn f(0)")
    assert info.value.type == "SandboxError"
    assert "Maximum call stack size exceeded" in info.value.message
    await still_serves(sandbox)


async def test_js_output_limit(sandbox: Sandbox) -> None:
    with pytest.raises(NodeError) as info:
        await js(sandbox, "return 'x'.repeat(100 * 1024)")
    assert info.value.type == "SandboxOutputTooLarge"
    assert not info.value.retriable
    await still_serves(sandbox)


async def test_js_non_json_result_is_an_error(sandbox: Sandbox) -> None:
    with pytest.raises(NodeError, match="not JSON"):
        await js(sandbox, "return 10n")
    with pytest.raises(NodeError, match="not JSON"):
        await js(sandbox, "const a = {}; a.a = a; return a")


async def test_js_unknown_language_is_unavailable(sandbox: Sandbox) -> None:
    with pytest.raises(NodeError) as info:
        await sandbox.run("ruby", "1", SCOPE, FAST)
    assert info.value.type == "SandboxUnavailable"


async def test_js_expressions_evaluate_in_one_round_trip(sandbox: Sandbox) -> None:
    names = {**SCOPE, **SCOPE["input"]}
    values = await sandbox.evaluate_many(
        ["input.data.total > 100", "data.message.toUpperCase()", "() => 1", "undefined", "null"],
        names,
    )
    assert values == [True, "HELLO", None, None, None]
    assert await sandbox.evaluate_many([], names) == []


async def test_js_expression_error_names_the_expression(sandbox: Sandbox) -> None:
    with pytest.raises(NodeError) as info:
        await sandbox.evaluate_many(["1", "input.nope.deeper"], SCOPE)
    assert info.value.type == "SandboxError"
    assert info.value.message.startswith("in {{ input.nope.deeper }}: TypeError")


async def test_js_expression_syntax_error_names_the_expression(sandbox: Sandbox) -> None:
    with pytest.raises(NodeError) as info:
        await sandbox.evaluate_many(["1", "1 +"], SCOPE)
    assert info.value.message.startswith("in {{ 1 + }}: SyntaxError")


async def test_js_pool_recovers_from_a_killed_worker(sandbox: Sandbox) -> None:
    (pid,) = sandbox.js.pids
    os.kill(pid, signal.SIGKILL)
    await eventually(lambda: pid not in sandbox.js.pids, 10, "the pool seeing its worker die")
    await still_serves(sandbox)
    assert sandbox.js.pids != [pid]


async def test_js_pool_retries_an_evaluation_whose_worker_was_killed(sandbox: Sandbox) -> None:
    code = "const t = Date.now(); while (Date.now() - t < 300) {}; return 'done'"
    task = asyncio.create_task(js(sandbox, code, CodeLimits(timeout_s=5)))
    await eventually(lambda: sandbox.js.busy == 1, 10, "the worker taking the evaluation")
    (pid,) = sandbox.js.pids
    os.kill(pid, signal.SIGKILL)
    assert await task == "done"
    await still_serves(sandbox)


async def test_js_pool_replaces_a_worker_abandoned_mid_evaluation(sandbox: Sandbox) -> None:
    slow = CodeLimits(timeout_s=30, memory_mb=32)
    task = asyncio.create_task(js(sandbox, "while (true) {}", slow))
    await eventually(lambda: sandbox.js.busy == 1, 10, "the worker taking the evaluation")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await still_serves(sandbox)
    assert sandbox.js.respawns == 1


async def test_js_pool_serves_concurrent_evaluations() -> None:
    async with Sandbox(SandboxSettings(js_workers=3)) as sb:
        scope = {"input": {"n": 2}}
        results = await asyncio.gather(
            *(sb.evaluate_many([f"input.n * {i}", "input.n"], scope) for i in range(60))
        )
        assert results == [[2 * i, 2] for i in range(60)]
        # A hung evaluation holds one worker; the others keep serving.
        hung = asyncio.create_task(js(sb, "while (true) {}", CodeLimits(timeout_s=1)))
        await eventually(lambda: sb.js.busy == 1, 10, "one worker holding the hung evaluation")
        assert await sb.evaluate_many(["1 + 1"], {}) == [2]
        with pytest.raises(NodeError):
            await hung


async def test_js_pool_recycles_workers_after_many_evaluations() -> None:
    settings = SandboxSettings(js_workers=1, js_reserve_workers=0, js_max_evaluations_per_worker=3)
    async with Sandbox(settings) as sb:
        first = sb.js.pids
        for i in range(4):
            assert await sb.evaluate_many([str(i)], {}) == [i]
        assert sb.js.pids != first


async def test_js_close_reaps_every_worker() -> None:
    sb = Sandbox(SandboxSettings(js_workers=2))
    await sb.start()
    pids = sb.js.pids
    assert len(pids) == 3  # two workers and one kept in reserve
    await sb.close()
    for pid in pids:
        assert not os.path.exists(f"/proc/{pid}"), "worker left behind (zombie or alive)"
    with pytest.raises(NodeError) as info:
        await sb.evaluate_many(["1"], {})
    assert info.value.type == "SandboxUnavailable"


async def test_js_unicode_and_escaped_logs_survive(sandbox: Sandbox) -> None:
    code = "console.log('\\u0001'.repeat(60000)); return 'héllo ✓'.repeat(1000)"
    result = await sandbox.run("javascript", code, SCOPE, CodeLimits(max_output_bytes=1 << 20))
    assert result.value == "héllo ✓" * 1000
    assert len(result.logs) == 1


async def test_js_lone_surrogates_do_not_break_the_worker(sandbox: Sandbox) -> None:
    result = await sandbox.run(
        "javascript", "console.log('\\ud800'); return ['\\ud800x']", SCOPE, FAST
    )
    assert len(result.value) == 1
    await still_serves(sandbox)


async def test_js_scope_that_is_not_json_is_the_nodes_error(sandbox: Sandbox) -> None:
    with pytest.raises(NodeError) as info:
        await sandbox.run("javascript", "return 1", {"input": 2**70}, FAST)
    assert info.value.type == "SandboxError"
    assert "not JSON" in info.value.message


async def test_js_workers_without_bubblewrap_still_isolate() -> None:
    jail = Jail.detect("none")
    async with Sandbox(SandboxSettings(js_workers=1, python_spare_processes=0), jail) as sb:
        assert sb.describe()["javascript"] == "quickjs worker processes (no bubblewrap)"
        assert await js(sb, "return [typeof process, typeof require, input.data.total]") == [
            "undefined",
            "undefined",
            150,
        ]
        with pytest.raises(NodeError) as info:
            await js(sb, "while (true) {}")
        assert info.value.type == "SandboxTimeout"
        await still_serves(sb)


async def test_js_huge_result_is_a_memory_limit_not_a_sandbox_error(sandbox: Sandbox) -> None:
    # 50 MB fits the context; serialising it as the result does not.
    roomy = CodeLimits(timeout_s=10, memory_mb=128, max_output_bytes=256 << 20)
    with pytest.raises(NodeError) as info:
        await js(sandbox, "return 'x'.repeat(50 * 1024 * 1024)", roomy)
    assert info.value.type == "SandboxMemoryExceeded", info.value
    await still_serves(sandbox)


async def test_js_input_keys_never_shadow_standard_globals(sandbox: Sandbox) -> None:
    scope = {**SCOPE, "input": {"JSON": 1, "Math": 2, "total": 3}, "JSON": 1, "Math": 2}
    scope["total"] = 3
    result = await sandbox.run(
        "javascript", "return JSON.stringify([Math.max(total, 1), input.JSON])", scope, FAST
    )
    assert result.value == "[3,1]"

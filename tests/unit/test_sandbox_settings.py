"""Sandbox settings, seccomp program, jail command lines, error mapping (no processes)."""

from __future__ import annotations

import struct

import pytest

from flowmill.domain.errors import NodeError
from flowmill.engine.services import CodeLimits
from flowmill.sandbox import errors
from flowmill.sandbox.jail import Jail, Runtime
from flowmill.sandbox.js_pool import JsReply, raise_for, scope_names
from flowmill.sandbox.python_runner import python_names
from flowmill.sandbox.seccomp import deny_filter
from flowmill.sandbox.settings import SandboxSettings


def test_settings_defaults_are_safe() -> None:
    s = SandboxSettings()
    assert s.default_limits == CodeLimits(5.0, 128, 1024 * 1024)
    assert s.max_limits.timeout_s == 60.0
    assert s.max_limits.memory_mb == 1024
    assert s.allow_rlimit_only_python is False
    assert s.worker_count >= 2


def test_settings_clamp_caps_what_a_node_asks_for() -> None:
    s = SandboxSettings()
    got = s.clamp(CodeLimits(timeout_s=3600, memory_mb=64_000, max_output_bytes=1 << 40))
    assert got == CodeLimits(60.0, 1024, 1024 * 1024)
    assert s.clamp(CodeLimits(timeout_s=0, memory_mb=0)).timeout_s > 0


def test_settings_reject_defaults_above_maxima() -> None:
    with pytest.raises(ValueError, match="timeout_s"):
        SandboxSettings(timeout_s=100, max_timeout_s=60)
    with pytest.raises(ValueError, match="memory_mb"):
        SandboxSettings(memory_mb=2048)


def test_sandbox_settings_seccomp_program_checks_arch_and_denies_process_creation() -> None:
    prog = deny_filter("x86_64")
    assert prog is not None
    assert len(prog) % 8 == 0
    insns = [struct.unpack("=HBBI", prog[i : i + 8]) for i in range(0, len(prog), 8)]
    assert insns[0] == (0x20, 0, 0, 4)  # load arch first
    assert insns[1][3] == 0xC000003E
    denied = {k for code, _jt, _jf, k in insns if code == 0x15}
    assert {56, 57, 58, 101} <= denied  # clone, fork, vfork, ptrace
    assert insns[-1] == (0x06, 0, 0, 0x7FFF0000)  # allow the rest
    assert deny_filter("sparc") is None


def _jail() -> Jail:
    rt = Runtime("/opt/py/bin/python3.11", "/opt/py/lib/python3.11", (), ("/x/_ctypes.so",))
    return Jail("/usr/bin/bwrap", rt)


def test_sandbox_settings_jail_command_isolates_everything() -> None:
    argv = _jail().command(["python", "-c", "1"], seccomp_fd=7)
    text = " ".join(argv)
    for flag in ("--unshare-all", "--die-with-parent", "--clearenv", "--new-session"):
        assert flag in argv
    assert "--ro-bind /opt/py/lib/python3.11 /opt/py/lib/python3.11" in text
    assert "--ro-bind /dev/null /x/_ctypes.so" in text
    assert "--seccomp 7" in text
    assert "/etc" not in text
    assert "/home" not in text
    assert argv[-4:] == ["--", "python", "-c", "1"]


def test_sandbox_settings_jail_without_bubblewrap_refuses_to_build_commands() -> None:
    jail = Jail(None, _jail().runtime, "not installed")
    assert not jail.available
    with pytest.raises(RuntimeError):
        jail.command(["x"])


def test_sandbox_settings_scope_names_keep_only_bindable_identifiers() -> None:
    scope = {"input": 1, "my-key": 2, "class": 3, "$x": 4, "ok_1": 5, "None": 6}
    assert scope_names(scope) == ["input", "$x", "ok_1", "None"]
    assert python_names(scope) == ["input", "ok_1"]


@pytest.mark.parametrize(
    ("error", "type_"),
    [
        ({"kind": "timeout"}, errors.TIMEOUT),
        ({"kind": "memory"}, errors.MEMORY),
        ({"kind": "output", "size": 10}, errors.OUTPUT_TOO_LARGE),
        ({"kind": "user", "message": "TypeError: x"}, errors.ERROR),
    ],
)
def test_sandbox_settings_raise_for_maps_worker_errors_to_node_errors(
    error: dict[str, object], type_: str
) -> None:
    reply = JsReply({"ok": False, "error": error, "logs": {"lines": ["a"], "dropped": 0}}, b"")
    with pytest.raises(NodeError) as info:
        raise_for(reply, CodeLimits(1, 8, 5), "return x")
    assert info.value.type == type_
    assert info.value.details["logs"] == ["a"]


def test_sandbox_settings_raise_for_names_the_users_line_and_expression() -> None:
    err = {"kind": "user", "message": "ReferenceError: y is not defined", "line": 2, "index": 1}
    reply = JsReply({"ok": False, "error": err}, b"")
    with pytest.raises(NodeError) as info:
        raise_for(reply, CodeLimits(), ["1", "x +\ny"])
    assert info.value.message == ("in {{ x +\ny }}: ReferenceError: y is not defined (line 2: y)")
    assert info.value.details["line"] == 2
    assert info.value.retriable


def test_sandbox_settings_syntax_errors_are_not_retriable() -> None:
    err = {"kind": "user", "message": "SyntaxError: unexpected token", "line": 1}
    with pytest.raises(NodeError) as info:
        raise_for(JsReply({"ok": False, "error": err}, b""), CodeLimits(), "return )")
    assert not info.value.retriable


def test_sandbox_settings_reply_logs_note_dropped_lines() -> None:
    reply = JsReply({"ok": True, "logs": {"lines": ["x"], "dropped": 3}}, b"1")
    assert reply.logs() == ["x", "[sandbox] 3 more console lines were dropped"]

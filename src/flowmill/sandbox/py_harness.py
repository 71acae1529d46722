"""Inside the Python jail: read one request, lock the process down, run the code once.

Runs as ``python -I -S -c <this file's text>`` in a fresh process (in bubblewrap when
present), so it uses the standard library only. stdin carries one JSON request
``{code, scope, names, limits, ...}``. The result goes out on a private copy of fd 1 as
one frame (two big-endian ``u32`` lengths, then JSON ``{"ok": true, "value": ...}`` or
``{"ok": false, "error": {...}}``); the code's
own stdout and stderr both go to fd 2, which the engine turns into log lines.

The user's code is the body of a function whose parameters are the scope's names
(``input``, ``trigger``, ``nodes``, ``vars``, ``execution``, ...); what it returns is
the node's output. It is compiled from its own syntax tree, so line numbers in errors
are the user's.
"""

from __future__ import annotations

import json
import os
import resource
import struct
import sys
from typing import Any

FILENAME = "<code>"


def _dumps(value: Any, allow_nan: bool = True) -> str:
    # Never \ud800-style escapes: the engine's JSON reader refuses lone surrogates.
    return json.dumps(value, ensure_ascii=False, allow_nan=allow_nan)


NOBODY = 65534


def _limit(res: int, value: int) -> None:
    _soft, hard = resource.getrlimit(res)
    cap = value if hard == resource.RLIM_INFINITY else min(value, hard)
    resource.setrlimit(res, (cap, cap))


# Imported before privileges drop: without bubblewrap, a root engine's interpreter may
# live where ``nobody`` cannot read (e.g. under /root), so later imports would fail.
PRELOAD = (
    "base64 collections csv datetime decimal functools hashlib hmac itertools math "
    "operator random re statistics string textwrap time unicodedata urllib.parse uuid"
)


def _drop_privileges() -> None:
    # Without bubblewrap a root engine would hand root to the code: become nobody.
    if os.getuid() == 0:
        for name in PRELOAD.split():
            __import__(name)
        os.setgroups([])
        os.setgid(NOBODY)
        os.setuid(NOBODY)


def _seccomp(program_hex: str) -> None:
    """Load the seccomp program via prctl (only when bubblewrap did not load it)."""
    import ctypes

    program = bytes.fromhex(program_hex)

    class Prog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_char_p)]

    libc = ctypes.CDLL(None, use_errno=True)
    prog = Prog(len(program) // 8, program)
    if libc.prctl(38, 1, 0, 0, 0) != 0:  # PR_SET_NO_NEW_PRIVS
        raise OSError(ctypes.get_errno(), "PR_SET_NO_NEW_PRIVS failed")
    if libc.prctl(22, 2, ctypes.byref(prog), 0, 0) != 0:  # PR_SET_SECCOMP, FILTER
        raise OSError(ctypes.get_errno(), "PR_SET_SECCOMP failed")


MAX_RECURSION = 20_000
"""Deepest recursion the code may ask for. Python 3.11 raises no RecursionError past
the C stack; it fails with ``SystemError: error return without exception set``."""


def _cap_recursion() -> None:
    set_limit = sys.setrecursionlimit

    def setrecursionlimit(limit: int) -> None:
        set_limit(min(int(limit), MAX_RECURSION))

    sys.setrecursionlimit = setrecursionlimit


def _lock_down(req: dict[str, Any]) -> None:
    limits = req["limits"]
    if req.get("seccomp"):
        import ctypes  # noqa: F401 - loaded while the interpreter's files are readable
    if not req.get("jailed"):
        _drop_privileges()
    _limit(resource.RLIMIT_CORE, 0)
    _limit(resource.RLIMIT_CPU, int(limits["cpu_s"]))
    _limit(resource.RLIMIT_AS, int(limits["address_space_bytes"]))
    _limit(resource.RLIMIT_FSIZE, int(limits["file_bytes"]))
    _limit(resource.RLIMIT_NOFILE, int(limits["open_files"]))
    _limit(resource.RLIMIT_NPROC, int(limits["processes"]))
    _cap_recursion()
    if req.get("seccomp"):
        _seccomp(req["seccomp"])


def _compile(code: str, names: list[str]) -> Any:
    """The user's code as the body of ``main(<names>)``, keeping their line numbers.

    Built from the syntax tree of the code itself (``_ast``, not the slow-to-import
    ``ast`` module), so nothing is re-indented and lines stay the user's.
    """
    import _ast

    tree: Any = compile(code, FILENAME, "exec", _ast.PyCF_ONLY_AST)
    at: dict[str, Any] = {"lineno": 1, "col_offset": 0, "end_lineno": 1, "end_col_offset": 0}
    args = _ast.arguments(
        posonlyargs=[],
        args=[_ast.arg(arg=n, annotation=None, **at) for n in names],
        vararg=None,
        kwonlyargs=[],
        kw_defaults=[],
        kwarg=None,
        defaults=[],
    )
    extra: dict[str, Any] = {"type_params": []} if "type_params" in _ast.FunctionDef._fields else {}
    fn = _ast.FunctionDef(
        name="main",
        args=args,
        body=tree.body or [_ast.Pass(**at)],
        decorator_list=[],
        returns=None,
        **extra,
        **at,
    )
    module = _ast.Module(body=[fn], type_ignores=[])
    namespace: dict[str, Any] = {"__name__": "__flowmill__"}
    exec(compile(module, FILENAME, "exec"), namespace)  # noqa: S102 - inside the jail
    return namespace["main"]


def _user_error(e: BaseException, code: str) -> dict[str, Any]:
    import traceback  # only on the error path: it is slow to import

    lines = code.splitlines()
    line = None
    if isinstance(e, SyntaxError) and e.filename == FILENAME:
        line = e.lineno
    frames = [f for f in traceback.extract_tb(e.__traceback__) if f.filename == FILENAME]
    if frames:
        line = frames[-1].lineno
    stack = "".join(traceback.format_list(frames)).rstrip()
    message = "".join(traceback.format_exception_only(type(e), e)).strip().splitlines()[-1]
    return {
        "kind": "syntax" if isinstance(e, SyntaxError) else "user",
        "message": message,
        "line": line,
        "source": lines[line - 1] if line and 0 < line <= len(lines) else None,
        "stack": stack,
    }


def main() -> None:
    """Run one request from stdin."""
    req = json.loads(sys.stdin.buffer.read())
    out = os.dup(1)
    os.dup2(2, 1)  # the code's print() goes to the log pipe, never into the result
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    sys.stderr.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    _lock_down(req)
    code = req["code"]
    try:
        fn = _compile(code, req["names"])
        value = fn(*(req["scope"].get(n) for n in req["names"]))
        try:
            text = _dumps({"ok": True, "value": value}, allow_nan=False)
        except (TypeError, ValueError) as e:
            text = _dumps(
                {
                    "ok": False,
                    "error": {"kind": "user", "message": (f"the result is not JSON: {e}")},
                }
            )
    except MemoryError:
        text = _dumps({"ok": False, "error": {"kind": "memory"}})
    except BaseException as e:  # the user's error, reported with their line
        text = _dumps({"ok": False, "error": _user_error(e, code)})
    sys.stdout.flush()
    sys.stderr.flush()
    # A lone surrogate (valid in a Python str, not in UTF-8) becomes U+FFFD.
    data = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace").encode()
    data = struct.pack(">II", len(data), 0) + data  # one frame: the engine reads no more
    view = memoryview(data)
    while view:
        view = view[os.write(out, view) :]
    os.close(out)


if __name__ == "__main__":
    main()

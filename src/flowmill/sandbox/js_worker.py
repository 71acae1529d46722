"""JavaScript worker process: evaluates requests in a fresh QuickJS context each.

Runs as a separate process (``python -I -S js_worker.py LIBDIR``), inside bubblewrap
when it is present, and imports nothing but the standard library and ``_quickjs`` (the
C extension of the ``quickjs-ng`` distribution), so it
needs nothing of Flowmill in its jail. Frames on stdin/stdout: two big-endian ``u32``
lengths, a JSON header, a body. A request's body is the scope as JSON; a reply's body
is the result as JSON text (passed through, never decoded here).

Each request gets a new QuickJS runtime and context with a memory limit, a time limit
and a stack limit; before any user code runs, the prelude replaces ``eval`` and the
``Function`` constructors (code generation from strings is off), defines ``console``
(collected into the reply) and parses the scope. The context is dropped afterwards, so
nothing one evaluation does (globals, polluted prototypes) is seen by the next one.
"""

from __future__ import annotations

import json
import os
import re
import resource
import struct
import sys
import time
from typing import Any

_HEAD = struct.Struct(">II")
IDENT = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$]*$")
_INPUT_POS = re.compile(r"<input>:(\d+)")
_THROWS_NULL = re.compile(r"\b(?:throw\s*\(?\s*null|reject\s*\(\s*null)\b")
_RESERVED_WORDS = """
break case catch class const continue debugger default delete do else enum export extends
false finally for function if import in instanceof new null return super switch this throw
true try typeof var void while with yield let static implements interface package private
protected public await arguments eval
"""
RESERVED = frozenset(_RESERVED_WORDS.split())
STACK_BYTES = 512 * 1024

PRELUDE = r"""
(() => {
  "use strict";
  const g = globalThis, stringify = JSON.stringify, parse = JSON.parse, Str = String;
  const P = Promise, then = Promise.prototype.then, apply = Reflect.apply;
  const MAX_LINES = %(max_lines)d, MAX_BYTES = %(max_bytes)d;
  const logs = [];
  let bytes = 0, dropped = 0;
  const fmt = (v) => {
    if (typeof v === "string") return v;
    try { const s = stringify(v); return s === undefined ? Str(v) : s; }
    catch (e) { return Str(v); }
  };
  const emit = (level) => (...args) => {
    const text = (level === "log" || level === "info" ? "" : "[" + level + "] ") +
      args.map(fmt).join(" ");
    if (logs.length >= MAX_LINES || bytes + text.length > MAX_BYTES) { dropped++; return; }
    bytes += text.length;
    logs.push(text);
  };
  const fixed = (obj, name, value) =>
    Object.defineProperty(obj, name, { value, writable: false, configurable: false });
  // Code generation from strings is off: eval, Function and its async/generator
  // siblings (reachable through any function's .constructor) all throw.
  const denied = function () {
    throw new EvalError("code generation from strings is disabled in the sandbox");
  };
  denied.prototype = Function.prototype;
  for (const f of [function () {}, function* () {}, async function () {}, async function* () {}]) {
    fixed(Object.getPrototypeOf(f), "constructor", denied);
  }
  fixed(g, "Function", denied);
  fixed(g, "eval", denied);
  fixed(g, "console", Object.freeze({
    log: emit("log"), info: emit("info"), debug: emit("debug"),
    warn: emit("warn"), error: emit("error"),
  }));
  const scope = parse(g.__fm_scope);
  delete g.__fm_scope;
  const state = { settled: false, value: undefined, error: undefined, index: -1 };
  const isObj = scope !== null && typeof scope === "object";
  const args = (names) => names.map((n) => (isObj ? scope[n] : undefined));
  const json = (v) => { const s = stringify(v); return s === undefined ? "null" : s; };
  fixed(g, "__fm", Object.freeze({
    run(fn, names) {
      let r;
      try { r = apply(fn, undefined, args(names)); }
      catch (e) { state.error = e; state.settled = true; return; }
      apply(then, P.resolve(r), [
        (v) => { state.value = v; state.settled = true; },
        (e) => { state.error = e; state.settled = true; },
      ]);
    },
    exprs(fns, names) {
      const a = args(names), out = [];
      for (let i = 0; i < fns.length; i++) {
        state.index = i;
        try { out.push(json(apply(fns[i], undefined, a))); }
        catch (e) { state.error = e; state.settled = true; return; }
      }
      state.value = out; state.settled = true;
    },
    settled() { return state.settled; },
    error() {
      const e = state.error;
      if (e === undefined) return null;
      const isErr = e !== null && typeof e === "object";
      return stringify({
        isNull: e === null, index: state.index,
        name: isErr ? Str(e.name) : "Error",
        message: isErr ? Str(e.message) : fmt(e),
        stack: isErr && e.stack ? Str(e.stack) : "",
      });
    },
    value(isList) { return isList ? "[" + state.value.join(",") + "]" : json(state.value); },
    logs() { return stringify({ lines: logs, dropped }); },
  }));
})();
"""


class _Fail(Exception):
    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(error.get("message", ""))
        self.error = error


def _read_exact(n: int) -> bytes:
    chunks: list[bytes] = []
    while n:
        chunk = os.read(0, n)
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def _write_all(data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(1, view) :]


def _names(raw: Any) -> list[str]:
    # Names become parameters in generated source text: only plain identifiers pass.
    return [n for n in raw if isinstance(n, str) and IDENT.match(n) and n not in RESERVED]


def _classify(ctx: Any, message: str, limit_bytes: int) -> dict[str, Any] | None:
    """A timeout or out-of-memory kind for an engine exception, else None."""
    if "InternalError: interrupted" in message:
        return {"kind": "timeout"}
    if "out of memory" in message or message.strip() == "null":
        return {"kind": "memory"}
    try:
        used = int(ctx.memory().get("malloc_size", 0))
    except Exception:  # the context may be unusable after an engine error
        used = 0
    if used > limit_bytes * 0.9:
        return {"kind": "memory"}
    return None


class Evaluation:
    """One request in one fresh context."""

    def __init__(self, quickjs: Any, header: dict[str, Any], scope: str) -> None:
        self.q = quickjs
        self.header = header
        self.deadline = time.monotonic() + float(header["timeout_s"])
        self.limit_bytes = int(header["memory_mb"]) << 20
        ctx = quickjs.Context()
        ctx.set_memory_limit(self.limit_bytes)
        ctx.set_max_stack_size(STACK_BYTES)
        self.ctx = ctx
        ctx.set("__fm_scope", scope)
        prelude = PRELUDE % {
            "max_lines": int(header.get("max_log_lines", 200)),
            "max_bytes": int(header.get("max_log_bytes", 65536)),
        }
        self.eval(prelude)

    def eval(self, text: str) -> Any:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise _Fail({"kind": "timeout"})
        self.ctx.set_time_limit(remaining)
        try:
            return self.ctx.eval(text)
        except (self.q.JSException, self.q.StackOverflow) as e:
            message = str(e)
            kind = _classify(self.ctx, message, self.limit_bytes)
            raise _Fail(kind or {"kind": "user", "message": message, "stack": message}) from e

    def run(self) -> str:
        names = _names(self.header.get("names", []))
        params = ", ".join(names)
        if self.header["op"] == "code":
            text = f"__fm.run(async function ({params}) {{\n{self.header['code']}\n}}, "
            text += json.dumps(names) + ")"
            spans = [(2, 2 + len(self.header["code"].split("\n")))]
        else:
            parts, spans, line = [], [], 2
            for expr in self.header["exprs"]:
                parts.append(f"function ({params}) {{ return (\n{expr}\n); }}")
                height = len(expr.split("\n"))
                # The closing line counts as the expression's: a parser reports there.
                spans.append((line + 1, line + height + 1))
                line += height + 2
            text = "__fm.exprs([\n" + ",\n".join(parts) + "\n], " + json.dumps(names) + ")"
        self.spans = spans
        try:
            self.eval(text)
        except _Fail as f:
            raise self._located(f.error) from f
        self._drain()
        if not self.eval("__fm.settled()"):
            raise _Fail({"kind": "user", "message": "Error: the code's promise never settled"})
        error = self.eval("__fm.error()")
        if error is not None:
            raise self._located(self._rejected(json.loads(error)))
        try:
            is_list = "false" if self.header["op"] == "code" else "true"
            return str(self.eval(f"__fm.value({is_list})"))
        except _Fail as f:
            if f.error["kind"] == "user":
                f.error["message"] = "the result is not JSON: " + f.error["message"].split("\n")[0]
                f.error["stack"] = ""
            raise

    def _drain(self) -> None:
        # Promise jobs run one at a time; a chain of awaits that never ends is stopped
        # here by the wall clock (the engine's time limit is per call).
        while True:
            if time.monotonic() > self.deadline:
                raise _Fail({"kind": "timeout"})
            try:
                if not self.ctx.execute_pending_job():
                    return
            except (self.q.JSException, self.q.StackOverflow) as e:
                kind = _classify(self.ctx, str(e), self.limit_bytes)
                raise _Fail(kind or {"kind": "user", "message": str(e)}) from e

    def _rejected(self, err: dict[str, Any]) -> dict[str, Any]:
        if err["name"] == "InternalError" and "interrupted" in err["message"]:
            return {"kind": "timeout"}
        # QuickJS rejects with null when it cannot even allocate the "out of memory"
        # error; a user's own `throw null` is told apart by their source.
        if (err["name"] == "InternalError" and "out of memory" in err["message"]) or (
            err["isNull"] and not _THROWS_NULL.search(str(self.header.get("code", "")))
        ):
            return {"kind": "memory"}
        return {
            "kind": "user",
            "message": f"{err['name']}: {err['message']}",
            "stack": err["stack"],
            "index": err["index"],
        }

    def _located(self, error: dict[str, Any]) -> _Fail:
        """Give a user error the user's line (1-based in their own code) and stack."""
        if error.get("kind") != "user":
            return _Fail(error)
        message = str(error.get("message", "")).split("\n")[0]
        stack = str(error.get("stack") or error.get("message", ""))
        index = int(error.get("index", -1))
        candidates = [index] if 0 <= index < len(self.spans) else range(len(self.spans))
        frames: list[str] = []
        for i in candidates:
            first, last = self.spans[i]
            frames = _user_frames(stack, first, last)
            if frames:
                error["index"] = i
                error["line"] = int(_INPUT_POS.search(frames[0]).group(1))  # type: ignore[union-attr]
                break
        error["message"] = message
        error["stack"] = "\n".join(f.replace("<input>:", "line ") for f in frames)
        return _Fail(error)


def _user_frames(stack: str, first: int, last: int) -> list[str]:
    """Stack lines inside the user's code, renumbered to their own lines."""
    out = []
    for text in stack.split("\n"):
        m = _INPUT_POS.search(text)
        if m and first <= int(m.group(1)) <= last:
            n = min(int(m.group(1)), last - 1) - first + 1
            out.append(text[: m.start()] + f"<input>:{n}" + text[m.end() :])
    return out


def _handle(quickjs: Any, header: dict[str, Any], body: bytes) -> tuple[dict[str, Any], bytes]:
    ev: Evaluation | None = None
    try:
        ev = Evaluation(quickjs, header, body.decode("utf-8"))
        value = ev.run().encode("utf-8")
        reply: dict[str, Any] = {"ok": True}
        limit = int(header["max_output"])
        if len(value) > limit:
            reply, value = {"ok": False, "error": {"kind": "output", "size": len(value)}}, b""
    except _Fail as f:
        reply, value = {"ok": False, "error": f.error}, b""
    except MemoryError:
        reply, value = {"ok": False, "error": {"kind": "memory"}}, b""
    if ev is not None:
        try:
            reply["logs"] = json.loads(ev.eval("__fm.logs()"))
        except Exception:  # logs are best effort once the context is broken
            reply["logs"] = {"lines": [], "dropped": 0}
        ev.ctx = None
    return reply, value


def _limit_self(address_space_mb: int) -> None:
    # The worker's own backstop below the JS engine's limit: a bug that allocates past
    # QuickJS's accounting hits the address-space limit and kills only this process.
    for res, value in (
        (resource.RLIMIT_AS, address_space_mb << 20),
        (resource.RLIMIT_CORE, 0),
        (resource.RLIMIT_FSIZE, 0),
        (resource.RLIMIT_NOFILE, 16),
    ):
        _soft, hard = resource.getrlimit(res)
        cap = value if hard == resource.RLIM_INFINITY else min(value, hard)
        resource.setrlimit(res, (cap, cap))


def main() -> None:
    """Serve requests until stdin closes."""
    sys.path.insert(0, sys.argv[1])
    address_space_mb = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    # The C extension alone: the `quickjs` package starts a thread pool on import,
    # which the jail's seccomp filter (rightly) refuses.
    import _quickjs as quickjs  # type: ignore[import-not-found]

    if address_space_mb:
        _limit_self(address_space_mb)
    _write_all(_HEAD.pack(2, 0) + b"{}")  # ready
    while True:
        try:
            hlen, blen = _HEAD.unpack(_read_exact(_HEAD.size))
            header = json.loads(_read_exact(hlen))
            body = _read_exact(blen)
        except EOFError:
            return
        reply, value = _handle(quickjs, header, body)
        head = json.dumps(reply).encode()
        _write_all(_HEAD.pack(len(head), len(value)) + head + value)


if __name__ == "__main__":
    main()

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
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
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
  // Array methods are captured: code may replace them before its result is read.
  const { push, join, map } = Array.prototype;
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
      apply(join, apply(map, args, [fmt]), [" "]);
    if (logs.length >= MAX_LINES || bytes + text.length > MAX_BYTES) { dropped++; return; }
    bytes += text.length;
    apply(push, logs, [text]);
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
  let scope = null;
  const state = { settled: false, value: undefined, error: undefined, index: -1, text: "" };
  const args = (names) => apply(map, names, [(n) => (scope !== null &&
    typeof scope === "object" ? scope[n] : undefined)]);
  const json = (v) => { const s = stringify(v); return s === undefined ? "null" : s; };
  const describe = (e) => {
    const isErr = e !== null && typeof e === "object";
    return {
      isNull: e === null, index: state.index,
      name: isErr ? Str(e.name) : "Error",
      message: isErr ? Str(e.message) : fmt(e),
      stack: isErr && e.stack ? Str(e.stack) : "",
    };
  };
  fixed(g, "__fm", Object.freeze({
    begin() { scope = parse(g.__fm_scope); delete g.__fm_scope; },
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
        // Encoded once here so a value that is not JSON is blamed on its expression.
        try { const v = apply(fns[i], undefined, a); json(v); apply(push, out, [v]); }
        catch (e) { state.error = e; state.settled = true; return; }
      }
      state.value = out; state.settled = true;
    },
    // What the worker reads afterwards: a JSON header, then (separately, because the
    // binding cannot read a concatenated "rope" string) the value as JSON text.
    finish() {
      const out = { settled: state.settled, logs: { lines: logs, dropped } };
      state.text = "";
      if (state.error !== undefined) {
        out.error = describe(state.error);
      } else if (state.settled) {
        try { state.text = json(state.value); } catch (e) { out.notJson = describe(e); }
      }
      return stringify(out);
    },
    text() { return state.text; },
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
    """One fresh context, built before its request arrives, used for one request."""

    def __init__(self, quickjs: Any, max_log_lines: int, max_log_bytes: int) -> None:
        self.q = quickjs
        ctx = quickjs.Context()
        ctx.set_max_stack_size(STACK_BYTES)
        self.ctx = ctx
        self.deadline = time.monotonic() + 10.0
        self.limit_bytes = 64 << 20
        ctx.set_memory_limit(self.limit_bytes)
        self.eval(PRELUDE % {"max_lines": max_log_lines, "max_bytes": max_log_bytes})
        self.header: dict[str, Any] = {}
        self.spans: list[tuple[int, int]] = []
        self.logs: dict[str, Any] | None = None

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

    def run(self, header: dict[str, Any], scope: str) -> str:
        """Evaluate the request; the value as JSON text."""
        self.header = header
        self.deadline = time.monotonic() + float(header["timeout_s"])
        self.limit_bytes = int(header["memory_mb"]) << 20
        self.ctx.set_memory_limit(self.limit_bytes)
        self.ctx.set("__fm_scope", scope)
        self.eval("__fm.begin()")
        names = _names(header.get("names", []))
        params = ", ".join(names)
        if header["op"] == "code":
            text = f"__fm.run(async function ({params}) {{\n{header['code']}\n}}, "
            text += json.dumps(names) + ")"
            spans = [(2, 2 + len(header["code"].split("\n")))]
        else:
            parts, spans, line = [], [], 2
            for expr in header["exprs"]:
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
        out = json.loads(str(self.eval("__fm.finish()")))
        self.logs = out["logs"]
        if "error" in out:
            raise self._located(self._rejected(out["error"]))
        if "notJson" in out:
            err = out["notJson"]
            if err["name"] == "InternalError" and "out of memory" in err["message"]:
                # Serialising a huge result ran out of the context's memory: a limit
                # was hit, which the engine reports as such (not as the code's bug).
                raise _Fail({"kind": "memory"})
            message = f"the result is not JSON: {err['name']}: {err['message']}"
            raise _Fail({"kind": "user", "message": message})
        if not out["settled"]:
            raise _Fail({"kind": "user", "message": "Error: the code's promise never settled"})
        return str(self.eval("__fm.text()"))

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


def _well_formed(text: str) -> bytes:
    """UTF-8 JSON of ``text``; escaped lone surrogates (which JavaScript strings may
    hold and strict JSON readers refuse) become U+FFFD."""
    if _SURROGATE_ESCAPE.search(text):
        text = json.dumps(json.loads(text), ensure_ascii=False)
        text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text.encode("utf-8", "replace")


def _handle(ev: Evaluation, header: dict[str, Any], body: bytes) -> tuple[dict[str, Any], bytes]:
    ev.logs = None
    try:
        value = _well_formed(ev.run(header, body.decode("utf-8")))
        reply: dict[str, Any] = {"ok": True}
        if len(value) > int(header["max_output"]):
            reply, value = {"ok": False, "error": {"kind": "output", "size": len(value)}}, b""
    except _Fail as f:
        reply, value = {"ok": False, "error": f.error}, b""
    except MemoryError:
        reply, value = {"ok": False, "error": {"kind": "memory"}}, b""
    except Exception as e:  # a binding error must cost this request, not the worker
        error = {"kind": "user", "message": f"InternalError: {e}"}
        reply, value = {"ok": False, "error": error}, b""
    if ev.logs is None:
        # The run failed before its logs were read; read them now (best effort: the
        # context may be broken after an engine error).
        try:
            ev.deadline = time.monotonic() + 1.0
            ev.ctx.set_memory_limit(ev.limit_bytes + (8 << 20))
            ev.logs = json.loads(str(ev.eval("__fm.finish()")))["logs"]
        except Exception:
            ev.logs = {"lines": [], "dropped": 0}
    reply["logs"] = ev.logs
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
    address_space_mb = int(sys.argv[2])
    # The C extension alone: the `quickjs` package starts a thread pool on import,
    # which the jail's seccomp filter (rightly) refuses.
    import _quickjs as quickjs  # type: ignore[import-not-found]

    _limit_self(address_space_mb)
    max_lines, max_bytes = int(sys.argv[3]), int(sys.argv[4])
    _write_all(_HEAD.pack(2, 0) + b"{}")  # ready
    while True:
        # The next request's context is built while waiting for it: its cost is
        # off the critical path, and each context still serves exactly one request.
        ev = Evaluation(quickjs, max_lines, max_bytes)
        try:
            hlen, blen = _HEAD.unpack(_read_exact(_HEAD.size))
            header = json.loads(_read_exact(hlen))
            body = _read_exact(blen)
        except EOFError:
            return
        reply, value = _handle(ev, header, body)
        ev.ctx = None
        head = json.dumps(reply, ensure_ascii=False).encode("utf-8", "replace")
        _write_all(_HEAD.pack(len(head), len(value)) + head + value)


if __name__ == "__main__":
    main()

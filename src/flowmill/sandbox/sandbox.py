"""The sandbox the engine is given: a ``CodeRunner`` and an ``ExpressionEvaluator``.

JavaScript (code nodes, string conditions, ``{{ }}`` expressions) goes to the QuickJS
worker pool; Python code nodes go to the jailed runner. Create one per process, call
:meth:`Sandbox.start` at startup (it reports what isolation is in force) and
:meth:`Sandbox.close` at shutdown::

    sandbox = await Sandbox.create(SandboxSettings())
    log.info("sandbox", **sandbox.describe())
    services = NodeServices(
        code=sandbox, expressions=sandbox,
        code_limits=sandbox.settings.default_limits,
        max_code_limits=sandbox.settings.max_limits,
    )
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from flowmill import jsonutil
from flowmill.sandbox import errors
from flowmill.sandbox.jail import Jail
from flowmill.sandbox.js_pool import JsPool, raise_for
from flowmill.sandbox.limits import CodeLimits, CodeResult
from flowmill.sandbox.python_runner import PythonRunner
from flowmill.sandbox.settings import SandboxSettings

LANGUAGES = ("javascript", "python")


class Sandbox:
    """Isolated execution of user code for both languages, and expressions.

    Args:
        settings: Limits, pool size, isolation options.
        jail: Bubblewrap detection result (found by :meth:`Jail.detect` when omitted).
        tenant_cap: Most evaluations of one tenant at once in each pool (0: none), by
            tenant (its ``sandbox_concurrency`` quota).
    """

    def __init__(
        self,
        settings: SandboxSettings | None = None,
        jail: Jail | None = None,
        tenant_cap: Callable[[str], int] | None = None,
    ) -> None:
        self.settings = settings or SandboxSettings()
        self.jail = jail or Jail.detect(self.settings.bwrap, self.settings.python_executable)
        self.js = JsPool(self.settings, self.jail, tenant_cap)
        self.python = PythonRunner(self.settings, self.jail, tenant_cap)

    @classmethod
    async def create(
        cls, settings: SandboxSettings | None = None, tenant_cap: Callable[[str], int] | None = None
    ) -> Sandbox:
        """Detect bubblewrap (off the event loop), then start the worker pool."""
        s = settings or SandboxSettings()
        jail = await asyncio.to_thread(Jail.detect, s.bwrap, s.python_executable)
        sandbox = cls(s, jail, tenant_cap)
        await sandbox.start()
        return sandbox

    async def start(self) -> None:
        """Start the JavaScript workers and Python spares (else they start on first use)."""
        await self.js.start()
        await self.python.start()

    async def close(self) -> None:
        """Stop every sandbox process."""
        await self.js.close()
        await self.python.close()

    async def __aenter__(self) -> Sandbox:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def describe(self) -> dict[str, Any]:
        """What isolation is in force, for the server to log at start."""
        out: dict[str, Any] = {
            "javascript": "quickjs worker processes"
            + (" in bubblewrap" if self.js.jailed else " (no bubblewrap)"),
            "js_workers": self.settings.worker_count,
            "python": self.python.isolation,
            "bubblewrap": self.jail.bwrap or None,
            "seccomp": self.jail.has_seccomp,
        }
        if not self.jail.available:
            out["warning"] = f"{self.jail.problem}; " + (
                "Python code nodes run with rlimits only (allow_rlimit_only_python)"
                if self.settings.allow_rlimit_only_python
                else "Python code nodes are refused"
            )
        return out

    async def run(
        self, language: str, code: str, scope: Mapping[str, Any], limits: CodeLimits
    ) -> CodeResult:
        """Run a code node's ``code`` (a function body) with ``scope``'s names bound.

        Raises:
            NodeError: ``SandboxTimeout``, ``SandboxMemoryExceeded``, ``SandboxError``,
                ``SandboxOutputTooLarge`` or ``SandboxUnavailable``.
        """
        limits = self.settings.clamp(limits)
        if language == "python":
            return await self.python.run(code, scope, limits)
        if language != "javascript":
            raise errors.unavailable(f"unknown language {language!r}; use one of {LANGUAGES}")
        reply = await self.js.request({"op": "code", "code": code}, scope, limits)
        raise_for(reply, limits, code)
        return CodeResult(value=jsonutil.loads(reply.value), logs=reply.logs())

    async def evaluate_many(
        self, expressions: Sequence[str], scope: Mapping[str, Any]
    ) -> list[Any]:
        """Evaluate JavaScript ``expressions`` in one fresh context, one round trip.

        Non-JSON values (``undefined``, functions) become ``None``.
        """
        if not expressions:
            return []
        exprs = list(expressions)
        limits = self.settings.expression_limits
        reply = await self.js.request({"op": "exprs", "exprs": exprs}, scope, limits)
        raise_for(reply, limits, exprs)
        values = jsonutil.loads(reply.value)
        if not isinstance(values, list) or len(values) != len(exprs):
            raise errors.crashed("JavaScript", "the worker sent a malformed reply")
        return values

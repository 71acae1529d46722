"""User code in isolation: JavaScript in QuickJS worker processes, Python in a jail.

See ``docs/sandbox.md``. The engine is given one :class:`Sandbox` (a ``CodeRunner``
and an ``ExpressionEvaluator``) built from :class:`SandboxSettings`.
"""

from flowmill.sandbox.jail import Jail
from flowmill.sandbox.sandbox import Sandbox
from flowmill.sandbox.settings import SandboxSettings

__all__ = ["Jail", "Sandbox", "SandboxSettings"]

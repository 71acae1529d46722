"""The value types of one sandboxed evaluation: its limits and its result.

They live in the sandbox, a leaf that imports nothing of the engine, so the sandbox's
worker processes stay light; ``flowmill.engine.services`` names them for the nodes and
the ``CodeRunner`` port.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class CodeLimits:
    """Limits of one sandboxed evaluation."""

    timeout_s: float = 5.0
    memory_mb: int = 128
    max_output_bytes: int = 1024 * 1024


@dataclass
class CodeResult:
    """What sandboxed code returned and printed."""

    value: Any
    logs: list[str] = field(default_factory=list)

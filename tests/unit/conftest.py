"""Unit-test harness: the engine on in-memory fakes, plus test-only node types.

The pieces live in ``tests/engine_support.py``; the names are re-exported here for
modules that still import them from this file.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.engine_support import (
    CALLS,
    FlakyConfig,
    FlakyNode,
    Harness,
    MakeHarness,
    SlowConfig,
    SlowNode,
    open_harness,
    registry,
    wf,
)

__all__ = [
    "CALLS",
    "FlakyConfig",
    "FlakyNode",
    "Harness",
    "MakeHarness",
    "SlowConfig",
    "SlowNode",
    "registry",
    "wf",
]


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    async with open_harness() as opened:
        yield opened

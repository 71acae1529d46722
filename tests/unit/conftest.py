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


@pytest.fixture(autouse=True)
def _fresh_template_cache() -> None:
    """Each test parses its templates anew.

    ``templates.parse`` memoises parsed templates: a parse cached by an earlier test (or,
    under mutmut, by the parent process the mutants fork from) would hide a mutation of
    the parser from every later test that renders the same text.
    """
    from flowmill.engine import templates

    templates._parse_cached.cache_clear()

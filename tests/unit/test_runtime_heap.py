"""The runtime takes the startup heap out of the garbage collector's sight, once."""

from __future__ import annotations

import gc

from flowmill.config import Settings
from flowmill.runtime import freeze_startup_heap, open_runtime


async def test_runtime_heap_frozen_once_the_first_runtime_is_up(sqlite_url: str) -> None:
    settings = Settings(database_url=sqlite_url, sandbox_enabled=False)
    async with open_runtime(settings):
        assert gc.get_freeze_count() > 0
    before = freeze_startup_heap.cache_info()
    async with open_runtime(settings):
        pass
    after = freeze_startup_heap.cache_info()
    # The second runtime froze nothing more (and collected nothing first).
    assert (after.misses, after.hits) == (before.misses, before.hits + 1)
    assert after.misses == 1

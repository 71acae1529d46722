"""What a long-lived process runs beside its work: the heap freeze of start-up."""

from __future__ import annotations

import gc

import pytest

from flowmill.background import running_background
from flowmill.config import Settings
from flowmill.runtime import open_runtime


@pytest.mark.parametrize("freeze", [True, False])
async def test_background_freezes_the_start_up_heap_only_when_asked(
    sqlite_url: str, freeze: bool
) -> None:
    # A full collection walked every object of start-up each time (~190,000, tens of
    # milliseconds with the event loop stopped); serve, worker and scheduler freeze them.
    settings = Settings(database_url=sqlite_url, sandbox_enabled=False)
    gc.unfreeze()
    try:
        async with (
            open_runtime(settings) as rt,
            running_background(rt, kind="worker", projector=False, freeze_heap=freeze),
        ):
            frozen = gc.get_freeze_count()
    finally:
        gc.unfreeze()
    if freeze:
        assert frozen > 10_000, f"only {frozen} objects frozen"
    else:
        assert frozen == 0

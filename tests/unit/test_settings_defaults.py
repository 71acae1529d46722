"""Each default is written once: the settings take the engine's and the sandbox's own,
so changing one of those changes what an unset FLOWMILL_* variable means."""

from __future__ import annotations

import pytest

from flowmill.config import Settings
from flowmill.engine.options import EngineOptions
from flowmill.sandbox.limits import CodeLimits

SAME = [
    ("concurrency", EngineOptions, "concurrency"),
    ("shutdown_grace_s", EngineOptions, "shutdown_grace_s"),
    ("sweep_interval_s", EngineOptions, "sweep_interval_s"),
    ("dead_worker_after_s", EngineOptions, "dead_after_s"),
    ("orphan_grace_s", EngineOptions, "orphan_grace_s"),
    ("max_output_bytes", EngineOptions, "max_output_bytes"),
    ("wait_fallback_s", EngineOptions, "wait_fallback_s"),
    ("sandbox_timeout_s", CodeLimits, "timeout_s"),
    ("sandbox_memory_mb", CodeLimits, "memory_mb"),
    ("sandbox_max_output_bytes", CodeLimits, "max_output_bytes"),
]


@pytest.mark.parametrize(("setting", "owner", "field"), SAME, ids=[s for s, _, _ in SAME])
def test_settings_defaults_follow_the_options_they_feed(
    setting: str, owner: type, field: str
) -> None:
    assert Settings.model_fields[setting].default == getattr(owner(), field)

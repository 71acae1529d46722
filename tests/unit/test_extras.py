"""Optional dependencies: the embedded default imports none, a missing one names its extra."""

from __future__ import annotations

import subprocess
import sys

import pytest

from flowmill.extras import MissingExtra, require


def test_extras_embedded_default_imports_no_server_driver() -> None:
    code = (
        "import sys, flowmill.cli, flowmill.runtime, flowmill.api.server, flowmill.runs; "
        "print(sorted(m for m in ('redis', 'asyncpg', 'bullmq', 'msgpack', 'socketio', "
        "'openai', 'anthropic') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"


def test_extras_missing_module_names_the_extra() -> None:
    e = MissingExtra("asyncpg")
    assert str(e) == (
        "PostgreSQL needs the 'asyncpg' package, which is not installed; "
        "install Flowmill with it: pip install 'flowmill[postgres]'"
    )
    assert MissingExtra("redis.exceptions").extra == "redis"
    assert isinstance(e, ImportError)


def test_extras_require_imports_or_raises() -> None:
    assert require("json").__name__ == "json"
    with pytest.raises(MissingExtra, match=r"pip install 'flowmill\[all\]'"):
        require("flowmill_no_such_package")

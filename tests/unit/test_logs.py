"""The console log format: readable, and cheap enough to log on the event loop."""

from __future__ import annotations

import logging

import pytest
import structlog

from flowmill import logs


@pytest.fixture(autouse=True)
def _restore_logging() -> object:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers, root.level = handlers, level
    structlog.reset_defaults()


def _fail(payload: dict[str, list[int]]) -> None:
    raise ValueError("boom")


def test_logs_console_exception_is_a_plain_traceback_without_locals(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # A rich traceback renders each frame's locals: with a request's state in them that
    # took seconds of CPU on the event loop per logged exception.
    logs.configure("info", "console")
    payload = {f"key{i}": list(range(20)) for i in range(200)}
    try:
        _fail(payload)
    except ValueError:
        logging.getLogger("flowmill.test").exception("Exception in ASGI application")
    err = capsys.readouterr().err
    assert "Traceback (most recent call last):" in err
    assert "ValueError: boom" in err
    assert "key199" not in err, "the frame's locals were rendered"
    assert "╭" not in err, "a rich panel was rendered"

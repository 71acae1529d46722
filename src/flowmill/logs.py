"""Logging through structlog: JSON in production, readable on a terminal.

One format either way: the standard library's records (uvicorn, SQLAlchemy, asyncio…)
go through the same renderer as Flowmill's own. Alembic's chatter at info (a line per
plugin and per migration step) is left out; Flowmill logs one line when it migrates.
On a terminal, a record's ``stack`` field (the loop-lag monitor's, say) is shown only at
debug level: rendered, it looks like a crash; the JSON format always keeps it.
"""

from __future__ import annotations

import logging
import sys

import structlog


def configure(level: str = "info", fmt: str = "console") -> None:
    """Set up structlog and the standard library logging it feeds."""
    lvl = getattr(logging, level.upper(), logging.INFO)
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(
            colors=sys.stderr.isatty(),
            # Rich's tracebacks render every frame's locals: a few hundred milliseconds to
            # seconds of CPU per logged exception, on the event loop, so a burst of
            # failing requests froze the API (seen in the soak). Plain text costs ~0.1 ms.
            exception_formatter=structlog.dev.plain_traceback,
        )
    )
    tidy: list[structlog.types.Processor] = []
    if fmt != "json" and lvl > logging.DEBUG:
        tidy.append(_without_stack)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            *tidy,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(lvl),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    # The standard library's records (uvicorn, SQLAlchemy...) in the same format, with the
    # same context (request id, tenant, execution...).
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processor=renderer,
            foreign_pre_chain=[
                structlog.contextvars.merge_contextvars,
                structlog.stdlib.add_log_level,
                structlog.stdlib.add_logger_name,
                structlog.processors.TimeStamper(fmt="iso", utc=True),
            ],
        )
    )
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(lvl)
    logging.getLogger("alembic").setLevel(max(lvl, logging.WARNING))


def _without_stack(
    _logger: object, _method: str, event: structlog.types.EventDict
) -> structlog.types.EventDict:
    event.pop("stack", None)
    return event

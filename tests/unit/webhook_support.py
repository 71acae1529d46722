"""Moved to ``tests/webhook_support.py`` (one module of webhook helpers); this name is
kept so modules written against it still import. Import from there in new code."""

from tests.webhook_support import *  # noqa: F403
from tests.webhook_support import __all__  # noqa: F401

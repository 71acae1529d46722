"""Moved to ``flowmill.testing`` (``stub_api``, ``StubServer``: one stub HTTP server for
every test); this name is kept so modules written against it still import."""

from flowmill.testing import Seen as Recorded
from flowmill.testing import StubServer as StubApi
from flowmill.testing import stub_api

__all__ = ["Recorded", "StubApi", "stub_api"]

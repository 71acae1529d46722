"""The HTTP API (FastAPI): ``create_app(runtime)`` and ``flowmill serve``."""

"""Alembic migrations; applied on start and by ``flowmill db upgrade``."""

"""Alembic migrations; applied on start and by ``flowmill db upgrade``."""

#: The newest revision. Start-up compares it with the database without loading Alembic;
#: ``tests/integration/test_migrations.py`` checks it is Alembic's head.
HEAD = "0008"

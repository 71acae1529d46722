"""Persistence: SQLAlchemy tables, repositories, event store, read models, migrations."""

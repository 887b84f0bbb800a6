"""Alembic revisions of the api database tier (shipped as ``cellrouter.migrations_api``)."""

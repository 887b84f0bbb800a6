"""Alembic revisions of the cell database tier (shipped as ``cellrouter.migrations_cell``)."""

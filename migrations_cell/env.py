"""Alembic environment of the cell tier: all logic lives in cellrouter.db.migration."""

from cellrouter.db import migration

migration.run_env("cell")

"""Alembic environment of the cell tier: all logic lives in cellrouter.migration."""

from cellrouter import migration

migration.run_env("cell")

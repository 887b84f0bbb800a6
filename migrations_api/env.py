"""Alembic environment of the api tier: all logic lives in cellrouter.migration."""

from cellrouter import migration

migration.run_env("api")

"""Alembic environment of the api tier: all logic lives in cellrouter.db.migration."""

from cellrouter.db import migration

migration.run_env("api")

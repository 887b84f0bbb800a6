"""Migration behaviour of both schema tiers, one test class run on every backend.

A test module subclasses :class:`MigrationBehaviour` and provides the
``new_database`` fixture (``new_database(label) -> url`` of an empty database):
SQLite files in ``tests/unit``, MariaDB and PostgreSQL in ``tests/functional``.
"""

from __future__ import annotations

import importlib.resources
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.config import Config
from alembic.script import ScriptDirectory

from cellrouter import exception
from cellrouter.db import api_schema, cell_schema, migration

TIERS = ["api", "cell"]
METADATA = {"api": api_schema.metadata, "cell": cell_schema.metadata}
VERSION_TABLES = {"api": "alembic_version_api", "cell": "alembic_version_cell"}


def script(tier: str) -> ScriptDirectory:
    """The tier's alembic scripts, from the installed package."""
    cfg = Config()
    cfg.set_main_option(
        "script_location", str(importlib.resources.files(f"cellrouter.migrations_{tier}"))
    )
    return ScriptDirectory.from_config(cfg)


def revisions(tier: str) -> list[str]:
    """The tier's revisions, oldest first."""
    return [rev.revision for rev in reversed(list(script(tier).walk_revisions()))]


def tables(url: str) -> set[str]:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


@pytest.mark.parametrize("tier", TIERS)
class MigrationBehaviour:
    """Up to head, back to base, up again; step by step; no drift from the models."""

    def test_upgrade_downgrade_upgrade(self, tier: str, new_database: Callable[..., str]) -> None:
        url = new_database(f"mig_{tier}")
        head = migration.head(tier)
        model_tables = set(METADATA[tier].tables)
        assert head != "base", "the tier has no revisions"

        assert migration.version(tier, url) is None
        assert migration.sync(tier, url) == (None, head)
        assert migration.version(tier, url) == head
        assert tables(url) == model_tables | {VERSION_TABLES[tier]}
        assert migration.sync(tier, url) == (head, head)  # up to date: a no-op

        assert migration.sync(tier, url, "base") == (head, None)
        assert migration.version(tier, url) is None
        assert tables(url) <= {VERSION_TABLES[tier]}

        assert migration.sync(tier, url) == (None, head)
        assert migration.version(tier, url) == head
        assert tables(url) == model_tables | {VERSION_TABLES[tier]}

    def test_walk_revisions_one_step_at_a_time(
        self, tier: str, new_database: Callable[..., str]
    ) -> None:
        """Every revision upgrades from its predecessor and downgrades back to it."""
        url = new_database(f"walk_{tier}")
        steps = revisions(tier)
        previous = None
        for rev in steps:
            assert migration.sync(tier, url, rev) == (previous, rev)
            previous = rev
        assert previous == migration.head(tier)
        for older in [*reversed(steps[:-1]), None]:
            assert migration.sync(tier, url, older or "base") == (previous, older)
            previous = older
        assert tables(url) <= {VERSION_TABLES[tier]}

    def test_migrated_schema_matches_models(
        self, tier: str, new_database: Callable[..., str], schema_drift: Any
    ) -> None:
        url = new_database(f"drift_{tier}")
        migration.sync(tier, url)
        diff = schema_drift(tier, url)
        assert diff == [], (
            f"{tier} migrations and cellrouter/{tier}_schema.py disagree on this backend; "
            f"add a revision to migrations_{tier}/versions: {diff}"
        )

    def test_unknown_revision_leaves_schema_alone(
        self, tier: str, new_database: Callable[..., str]
    ) -> None:
        url = new_database(f"badrev_{tier}")
        migration.sync(tier, url)
        with pytest.raises(exception.UnknownRevision, match="no_such_revision"):
            migration.sync(tier, url, "no_such_revision")
        assert migration.version(tier, url) == migration.head(tier)

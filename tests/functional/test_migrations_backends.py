"""Schema migrations of both tiers on MariaDB and PostgreSQL (fresh database each)."""

from __future__ import annotations

import importlib.resources
from collections.abc import Callable

import pytest
import sqlalchemy as sa
from alembic.config import Config
from alembic.script import ScriptDirectory

from cellrouter import api_schema, cell_schema, exception, migration

TIERS = ["api", "cell"]
BACKENDS = ["mariadb", "postgresql"]
METADATA = {"api": api_schema.metadata, "cell": cell_schema.metadata}
VERSION_TABLES = {"api": "alembic_version_api", "cell": "alembic_version_cell"}


@pytest.fixture(params=BACKENDS)
def new_database(request: pytest.FixtureRequest) -> Callable[..., str]:
    """``new_database(label) -> url`` on the parametrized backend."""
    factory = "mysql_db_factory" if request.param == "mariadb" else "pg_db_factory"
    return request.getfixturevalue(factory)


def revisions(tier: str) -> list[str]:
    """The tier's revisions, oldest first."""
    cfg = Config()
    cfg.set_main_option(
        "script_location", str(importlib.resources.files(f"cellrouter.migrations_{tier}"))
    )
    script = ScriptDirectory.from_config(cfg)
    return [rev.revision for rev in reversed(list(script.walk_revisions()))]


def _tables(url: str) -> set[str]:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


@pytest.mark.parametrize("tier", TIERS)
def test_upgrade_downgrade_upgrade(tier: str, new_database: Callable[..., str]) -> None:
    url = new_database(f"mig_{tier}")
    head = migration.head(tier)
    model_tables = set(METADATA[tier].tables)

    assert migration.version(tier, url) is None
    assert migration.sync(tier, url) == (None, head)
    assert migration.version(tier, url) == head
    assert _tables(url) == model_tables | {VERSION_TABLES[tier]}
    assert migration.sync(tier, url) == (head, head)

    assert migration.sync(tier, url, "base") == (head, None)
    assert migration.version(tier, url) is None
    assert _tables(url) <= {VERSION_TABLES[tier]}

    assert migration.sync(tier, url) == (None, head)
    assert migration.version(tier, url) == head
    assert _tables(url) == model_tables | {VERSION_TABLES[tier]}


@pytest.mark.parametrize("tier", TIERS)
def test_walk_revisions_one_step_at_a_time(tier: str, new_database: Callable[..., str]) -> None:
    """Every revision upgrades from its predecessor and downgrades back to it."""
    url = new_database(f"walk_{tier}")
    steps = revisions(tier)
    previous = None
    for rev in steps:
        assert migration.sync(tier, url, rev) == (previous, rev)
        previous = rev
    for older in [*reversed(steps[:-1]), None]:
        assert migration.sync(tier, url, older or "base") == (previous, older)
        previous = older
    assert _tables(url) <= {VERSION_TABLES[tier]}


@pytest.mark.parametrize("tier", TIERS)
def test_migrated_schema_matches_models(
    tier: str, new_database: Callable[..., str], schema_drift
) -> None:
    url = new_database(f"drift_{tier}")
    migration.sync(tier, url)
    diff = schema_drift(tier, url)
    assert diff == [], (
        f"{tier} migrations and cellrouter/{tier}_schema.py disagree on this backend; "
        f"add a revision to migrations_{tier}/versions: {diff}"
    )


def test_unknown_revision_leaves_schema_alone(new_database: Callable[..., str]) -> None:
    url = new_database("badrev")
    migration.sync("cell", url)
    with pytest.raises(exception.UnknownRevision, match="no_such_revision"):
        migration.sync("cell", url, "no_such_revision")
    assert migration.version("cell", url) == migration.head("cell")

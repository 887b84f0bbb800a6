"""Schema migrations of both tiers on SQLite (no server needed)."""

from __future__ import annotations

import importlib.resources
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.config import Config
from alembic.script import ScriptDirectory

from cellrouter import api_schema, cell_schema, exception, migration

TIERS = ["api", "cell"]
METADATA = {"api": api_schema.metadata, "cell": cell_schema.metadata}
VERSION_TABLES = {"api": "alembic_version_api", "cell": "alembic_version_cell"}


def _url(tmp_path: Path, name: str) -> str:
    return f"sqlite:///{tmp_path / name}"


def _script(tier: str) -> ScriptDirectory:
    cfg = Config()
    cfg.set_main_option(
        "script_location", str(importlib.resources.files(f"cellrouter.migrations_{tier}"))
    )
    return ScriptDirectory.from_config(cfg)


def revisions(tier: str) -> list[str]:
    """The tier's revisions, oldest first."""
    return [rev.revision for rev in reversed(list(_script(tier).walk_revisions()))]


def _tables(url: str) -> set[str]:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


@pytest.mark.parametrize("tier", TIERS)
def test_upgrade_downgrade_upgrade(tier: str, tmp_path: Path) -> None:
    url = _url(tmp_path, f"{tier}.db")
    head = migration.head(tier)
    model_tables = set(METADATA[tier].tables)
    assert head != "base", "the tier has no revisions"

    assert migration.version(tier, url) is None
    assert migration.sync(tier, url) == (None, head)
    assert migration.version(tier, url) == head
    assert _tables(url) == model_tables | {VERSION_TABLES[tier]}

    # Syncing an up-to-date schema is a no-op.
    assert migration.sync(tier, url) == (head, head)

    assert migration.sync(tier, url, "base") == (head, None)
    assert migration.version(tier, url) is None
    assert _tables(url) <= {VERSION_TABLES[tier]}

    assert migration.sync(tier, url) == (None, head)
    assert migration.version(tier, url) == head
    assert _tables(url) == model_tables | {VERSION_TABLES[tier]}


@pytest.mark.parametrize("tier", TIERS)
def test_walk_revisions_one_step_at_a_time(tier: str, tmp_path: Path) -> None:
    """Every revision upgrades from its predecessor and downgrades back to it."""
    url = _url(tmp_path, f"{tier}.db")
    steps = revisions(tier)
    previous = None
    for rev in steps:
        assert migration.sync(tier, url, rev) == (previous, rev)
        previous = rev
    assert previous == migration.head(tier)
    for older in [*reversed(steps[:-1]), None]:
        assert migration.sync(tier, url, older or "base") == (previous, older)
        previous = older
    assert _tables(url) <= {VERSION_TABLES[tier]}


@pytest.mark.parametrize("tier", TIERS)
def test_downgrade_helper(tier: str, tmp_path: Path) -> None:
    url = _url(tmp_path, f"{tier}.db")
    migration.sync(tier, url)
    assert migration.downgrade(tier, url) == (migration.head(tier), None)
    assert migration.version(tier, url) is None


@pytest.mark.parametrize("tier", TIERS)
def test_sync_to_explicit_head_revision(tier: str, tmp_path: Path) -> None:
    url = _url(tmp_path, f"{tier}.db")
    head = migration.head(tier)
    assert migration.sync(tier, url, head) == (None, head)
    assert migration.version(tier, url) == head


@pytest.mark.parametrize("tier", TIERS)
def test_migrated_schema_matches_models(tier: str, tmp_path: Path, schema_drift) -> None:
    url = _url(tmp_path, f"{tier}.db")
    migration.sync(tier, url)
    diff = schema_drift(tier, url)
    assert diff == [], (
        f"{tier} migrations and cellrouter/{tier}_schema.py disagree; add a revision "
        f"to migrations_{tier}/versions: {diff}"
    )


def test_both_tiers_share_one_database(tmp_path: Path, schema_drift) -> None:
    url = _url(tmp_path, "dev.db")
    migration.sync("api", url)
    migration.sync("cell", url)
    assert migration.version("api", url) == migration.head("api")
    assert migration.version("cell", url) == migration.head("cell")
    assert schema_drift("api", url) == []
    assert schema_drift("cell", url) == []

    migration.sync("api", url, "base")
    assert migration.version("api", url) is None
    assert migration.version("cell", url) == migration.head("cell")
    assert set(METADATA["cell"].tables) <= _tables(url)
    assert not set(METADATA["api"].tables) & _tables(url)


@pytest.mark.parametrize("tier", TIERS)
def test_sync_to_unknown_revision_fails_clearly(tier: str, tmp_path: Path) -> None:
    url = _url(tmp_path, f"{tier}.db")
    migration.sync(tier, url)
    with pytest.raises(exception.UnknownRevision) as caught:
        migration.sync(tier, url, "no_such_revision")
    message = str(caught.value)
    assert f"Unknown {tier} schema revision 'no_such_revision'" in message
    assert migration.head(tier) in message  # lists the known revisions
    # Nothing was touched.
    assert migration.version(tier, url) == migration.head(tier)


def test_unknown_tier_is_rejected(tmp_path: Path) -> None:
    url = _url(tmp_path, "x.db")
    for call in (
        lambda: migration.sync("compute", url),  # type: ignore[arg-type]
        lambda: migration.version("compute", url),  # type: ignore[arg-type]
    ):
        with pytest.raises(ValueError, match="unknown schema tier 'compute'"):
            call()


@pytest.mark.parametrize("tier", TIERS)
def test_migrations_load_from_installed_package(tier: str) -> None:
    location = importlib.resources.files(f"cellrouter.migrations_{tier}")
    assert location.is_dir()
    assert location.joinpath("env.py").is_file()
    assert location.joinpath("script.py.mako").is_file()
    revisions = [
        entry.name
        for entry in location.joinpath("versions").iterdir()
        if entry.name.endswith(".py") and entry.name != "__init__.py"
    ]
    assert revisions, f"no revision files in {location}/versions"

    script = _script(tier)
    assert len(script.get_heads()) == 1, f"{tier} tier has several heads: {script.get_heads()}"
    assert script.get_current_head() == migration.head(tier)

"""Schema migrations of both tiers on SQLite (no server needed)."""

from __future__ import annotations

import importlib.resources
from collections.abc import Callable
from pathlib import Path

import pytest
from alembic import command as alembic_command
from alembic.config import Config
from migration_behaviour import METADATA, TIERS, MigrationBehaviour, script, tables

from cellrouter import exception
from cellrouter.db import migration


class TestMigrationsOnSQLite(MigrationBehaviour):
    @pytest.fixture
    def new_database(self, tmp_path: Path) -> Callable[..., str]:
        return lambda label: _url(tmp_path, f"{label}.db")


def _url(tmp_path: Path, name: str) -> str:
    return f"sqlite:///{tmp_path / name}"


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
    assert set(METADATA["cell"].tables) <= tables(url)
    assert not set(METADATA["api"].tables) & tables(url)


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
        with pytest.raises(exception.InvalidValue, match="schema tier: 'compute'"):
            call()


@pytest.mark.parametrize("tier", TIERS)
def test_a_bare_alembic_command_is_refused(tier: str) -> None:
    # What `alembic upgrade head` does with cellrouter's tree: no connection handed over.
    cfg = Config()
    cfg.set_main_option(
        "script_location", str(importlib.resources.files(f"cellrouter.migrations_{tier}"))
    )
    with pytest.raises(
        exception.ConfigurationError, match=f"the {tier} schema migrations run through"
    ):
        alembic_command.upgrade(cfg, "head")


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

    scripts = script(tier)
    assert len(scripts.get_heads()) == 1, f"{tier} tier has several heads: {scripts.get_heads()}"
    assert scripts.get_current_head() == migration.head(tier)

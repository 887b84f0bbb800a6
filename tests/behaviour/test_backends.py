"""The backend matrix itself: every database a test gets is fresh, on every backend."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from backends import SERVER_BACKENDS, Backend, Pool, ServerBackend
from migration_behaviour import METADATA, TIERS, tables

from cellrouter.db import migration
from cellrouter.db.api_schema import cell_mappings, host_mappings


def contents(url: str, tier: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the tier's tables, by table."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            return {
                table.name: sorted(tuple(row) for row in conn.execute(table.select()))
                for table in METADATA[tier].sorted_tables
            }
    finally:
        engine.dispose()


def just_migrated(backend: Backend, tier: str) -> dict[str, list[tuple[Any, ...]]]:
    """The contents of a database of ``tier`` migrated right now (seeded rows, if any)."""
    url = backend.new_database(f"ref_{tier}")
    migration.sync(tier, url)  # type: ignore[arg-type]
    return contents(url, tier)


def add_cell_and_host(url: str) -> int:
    """A cell mapping and a host mapping that refers to it; returns the cell's id."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as conn:
            key = conn.execute(
                sa.insert(cell_mappings).values(
                    uuid="cell-uuid", database_connection="sqlite://", transport_url="fake://"
                )
            ).inserted_primary_key
            assert key is not None
            conn.execute(sa.insert(host_mappings).values(host="h", cell_id=key[0]))
        return int(key[0])
    finally:
        engine.dispose()


def database_exists(url: str) -> bool:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect():
            return True
    except sa.exc.OperationalError:
        return False
    finally:
        engine.dispose()


class TestBackend:
    @pytest.mark.parametrize("tier", TIERS)
    def test_migrated_is_at_head_as_migrations_left_it(self, backend: Backend, tier: str) -> None:
        url = backend.migrated(tier, f"m_{tier}")
        assert migration.version(tier, url) == migration.head(tier)  # type: ignore[arg-type]
        assert contents(url, tier) == just_migrated(backend, tier)
        assert backend.migrated(tier, f"other_{tier}") != url

    def test_new_database_is_empty_and_named(self, backend: Backend) -> None:
        url = backend.new_database("scratch")
        assert url == backend.url("scratch")
        assert tables(url) == set()

    def test_sibling_adds_the_suffix_to_the_name(self, backend: Backend) -> None:
        sibling = backend.sibling(backend.url("nova"), "_cell0")
        assert sa.make_url(sibling) == sa.make_url(backend.url("nova_cell0"))  # query: any order
        assert backend.create(sibling) == sibling
        assert tables(backend.url("nova_cell0")) == set()

    def test_missing_database_cannot_be_opened(self, backend: Backend) -> None:
        assert not database_exists(backend.missing("gone"))


# SQLite files are per test (tmp_path): only the servers reuse databases.
@pytest.mark.parametrize("backend", SERVER_BACKENDS, indirect=True)
def test_pool_gives_back_emptied_databases_and_drops_changed_ones(backend: Backend) -> None:
    assert isinstance(backend, ServerBackend)
    pool = Pool(backend.server, "api")
    try:
        url = pool.lease()
        migrated = contents(url, "api")
        assert migrated == just_migrated(backend, "api")
        assert add_cell_and_host(url) == 1
        pool.give_back(url)
        assert pool.lease() == url  # reused ...
        assert contents(url, "api") == migrated  # ... as migrated (seeded rows too) ...
        assert add_cell_and_host(url) == 1  # ... with identities starting over

        migration.sync("cell", url)  # the test changed its schema: not reusable
        pool.give_back(url)
        assert not database_exists(url)
        fresh = pool.lease()
        assert fresh != url
        assert contents(fresh, "api") == migrated
    finally:
        assert pool.close() == []
    assert not database_exists(fresh)

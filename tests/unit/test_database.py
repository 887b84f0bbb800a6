"""api_engine/local_engine (the no-up-call rule) and create_engine's pool policy."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from oslo_config import cfg
from sqlalchemy import pool

from cellrouter import exception
from cellrouter.cells import registry
from cellrouter.cells.context import RequestContext, target_cell
from cellrouter.cells.routing import route_instance
from cellrouter.db import database, migration
from cellrouter.db.cell_schema import instance_extra
from cellrouter.db.engine import create_engine
from cellrouter.index.build_request import BuildRequest
from cellrouter.index.cell_mapping import CellMapping
from cellrouter.index.host_mapping import HostMapping
from cellrouter.index.instance_mapping import InstanceMapping

MakeCells = Callable[..., list[CellMapping]]

UUID = "6f1b8a52-9a5e-4a0e-8d3e-0c1f2a3b4c5d"
FAKE_CELL = CellMapping(
    id=1,
    uuid=UUID,
    name="c",
    database_connection="sqlite://",
    transport_url="fake://",
    database_connection_template="sqlite://",
    transport_url_template="fake://",
)

#: Every way the library reads or writes the mapping index.
MAPPING_CALLS: dict[str, Callable[[RequestContext], Any]] = {
    "CellMapping.get_by_uuid": lambda ctx: CellMapping.get_by_uuid(ctx, UUID),
    "CellMapping.get_all": lambda ctx: CellMapping.get_all(ctx),
    "CellMapping.get_by_disabled": lambda ctx: CellMapping.get_by_disabled(ctx, False),
    "CellMapping.get_by_project": lambda ctx: CellMapping.get_by_project(ctx, "p"),
    "CellMapping.get_by_urls": lambda ctx: CellMapping.get_by_urls(ctx, "sqlite://"),
    "CellMapping.create": lambda ctx: CellMapping.create(
        ctx, database_connection="sqlite://", transport_url="fake://"
    ),
    "CellMapping.update": lambda ctx: FAKE_CELL.update(ctx, name="x"),
    "CellMapping.destroy": lambda ctx: FAKE_CELL.destroy(ctx),
    "InstanceMapping.get_by_instance_uuid": lambda ctx: InstanceMapping.get_by_instance_uuid(
        ctx, UUID
    ),
    "InstanceMapping.get_by_instance_uuids": lambda ctx: InstanceMapping.get_by_instance_uuids(
        ctx, [UUID]
    ),
    "InstanceMapping.get_by_cell": lambda ctx: InstanceMapping.get_by_cell(ctx, UUID),
    "InstanceMapping.get_by_project": lambda ctx: InstanceMapping.get_by_project(ctx, "p"),
    "InstanceMapping.count_by_cell": lambda ctx: InstanceMapping.count_by_cell(ctx, UUID),
    "InstanceMapping.create": lambda ctx: InstanceMapping.create(
        ctx, instance_uuid=UUID, project_id="p"
    ),
    "InstanceMapping.destroy_many": lambda ctx: InstanceMapping.destroy_many(ctx, [UUID]),
    "HostMapping.get_by_host": lambda ctx: HostMapping.get_by_host(ctx, "h"),
    "HostMapping.get_all": lambda ctx: HostMapping.get_all(ctx),
    "HostMapping.get_by_cell": lambda ctx: HostMapping.get_by_cell(ctx, UUID),
    "HostMapping.create": lambda ctx: HostMapping.create(ctx, host="h", cell_mapping=FAKE_CELL),
    "BuildRequest.get_by_instance_uuid": lambda ctx: BuildRequest.get_by_instance_uuid(ctx, UUID),
    "BuildRequest.get_all": lambda ctx: BuildRequest.get_all(ctx),
    "BuildRequest.create": lambda ctx: BuildRequest.create(ctx, instance_uuid=UUID, project_id="p"),
    "route_instance": lambda ctx: route_instance(ctx, UUID),
}


# -- the no-up-call rule -------------------------------------------------------------


@pytest.fixture
def cell_service(conf: cfg.ConfigOpts, tmp_path: Path) -> str:
    """Configure a cell-level service: only [database]/connection (a real, migrated DB)."""
    url = f"sqlite:///{tmp_path / 'own-cell.db'}"
    migration.sync("cell", url)
    conf.set_override("connection", url, group="database")
    return url


def test_api_engine_is_forbidden_in_a_cell_service(cell_service: str) -> None:
    with pytest.raises(exception.UpcallForbidden) as err:
        database.api_engine()
    assert "[api_database]/connection" in str(err.value)
    # ... while the service's own cell database is fine.
    assert database.local_engine().url.database == sa.make_url(cell_service).database


@pytest.mark.parametrize("call", MAPPING_CALLS.values(), ids=MAPPING_CALLS.keys())
def test_every_mapping_access_is_forbidden_in_a_cell_service(
    cell_service: str, admin_ctx: RequestContext, call: Callable[[RequestContext], Any]
) -> None:
    with pytest.raises(exception.UpcallForbidden):
        call(admin_ctx)


def test_forbidden_even_when_an_api_database_would_be_reachable(
    cell_service: str, api_db: str, conf: cfg.ConfigOpts, admin_ctx: RequestContext
) -> None:
    """The rule is about configuration: it holds whatever engine (or cell list) was
    built before. The cached cell list checks it each time it checks the cell
    generation: every use with refresh_interval 0, else within that interval."""
    conf.set_override("refresh_interval", 0, group="cells")
    assert CellMapping.get_all(admin_ctx) == []  # both set: an API-level service
    conf.clear_override("connection", group="api_database")
    with pytest.raises(exception.UpcallForbidden):
        CellMapping.get_all(admin_ctx)


@pytest.mark.parametrize("call", MAPPING_CALLS.values(), ids=MAPPING_CALLS.keys())
def test_nothing_configured_names_the_missing_option(
    conf: cfg.ConfigOpts, admin_ctx: RequestContext, call: Callable[[RequestContext], Any]
) -> None:
    with pytest.raises(exception.MissingConnection) as err:
        call(admin_ctx)
    assert "[api_database]/connection" in str(err.value)
    assert not isinstance(err.value, exception.UpcallForbidden)


def test_local_engine_without_configuration_names_the_missing_option(
    conf: cfg.ConfigOpts,
) -> None:
    with pytest.raises(exception.MissingConnection, match=r"\[database\]/connection"):
        database.local_engine()


def test_api_engine_is_reused_and_rebuilt_when_the_url_changes(
    api_db: str, conf: cfg.ConfigOpts, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = database.api_engine()
    assert database.api_engine() is first
    assert first.url.database == sa.make_url(api_db).database
    disposed: list[sa.Engine] = []
    real_dispose = first.dispose
    monkeypatch.setattr(first, "dispose", lambda *a, **k: (disposed.append(first), real_dispose()))

    other = f"sqlite:///{tmp_path / 'api2.db'}"
    migration.sync("api", other)
    conf.set_override("connection", other, group="api_database")
    second = database.api_engine()
    assert second is not first
    assert second.url.database == str(tmp_path / "api2.db")
    assert disposed == [first]

    database.reset()
    assert database.api_engine() is not second


# -- SQLite pragmas ------------------------------------------------------------------


def _pragmas(engine: sa.Engine) -> dict[str, Any]:
    with engine.connect() as conn:
        return {
            name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()
            for name in ("journal_mode", "foreign_keys", "busy_timeout", "synchronous")
        }


EXPECTED_PRAGMAS = {
    "journal_mode": "wal",
    "foreign_keys": 1,
    "busy_timeout": 30000,
    "synchronous": 1,
}


def test_sqlite_pragmas_on_cell_and_api_engines(
    make_cells: MakeCells, admin_ctx: RequestContext
) -> None:
    (cell,) = make_cells(1)
    with target_cell(admin_ctx, cell) as cctx:
        assert _pragmas(cctx.engine) == EXPECTED_PRAGMAS
    assert _pragmas(database.api_engine()) == EXPECTED_PRAGMAS


def test_sqlite_pragmas_on_every_pooled_connection(tmp_path: Path, conf: cfg.ConfigOpts) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'x.db'}")
    try:
        with engine.connect() as a, engine.connect() as b:  # two distinct DBAPI connections
            for conn in (a, b):
                assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
                assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    finally:
        engine.dispose()


def test_sqlite_foreign_keys_are_enforced_in_cells(
    make_cells: MakeCells, admin_ctx: RequestContext
) -> None:
    (cell,) = make_cells(1)
    with target_cell(admin_ctx, cell) as cctx, pytest.raises(sa.exc.IntegrityError):
        with cctx.engine.begin() as conn:
            conn.execute(sa.insert(instance_extra).values(instance_uuid=UUID, deleted=0))


# -- pool policy ---------------------------------------------------------------------


def test_pool_options_come_from_cells_group(
    make_cells: MakeCells, conf: cfg.ConfigOpts, admin_ctx: RequestContext
) -> None:
    conf.set_override("db_pool_size", 2, group="cells")
    conf.set_override("db_max_overflow", 3, group="cells")
    conf.set_override("db_pool_timeout", 1.5, group="cells")
    conf.set_override("db_pool_recycle", 120, group="cells")
    (cell,) = make_cells(1)
    engine = registry.get(cell).engine
    assert isinstance(engine.pool, pool.QueuePool)
    assert engine.pool.size() == 2
    assert engine.pool._max_overflow == 3  # noqa: SLF001 - no public accessor
    assert engine.pool.timeout() == 1.5
    assert engine.pool._recycle == 120  # noqa: SLF001
    assert engine.pool._pre_ping is False  # SQLite files need no ping  # noqa: SLF001


@pytest.mark.parametrize(
    "url", ["mysql+pymysql://u:p@db.invalid/x", "postgresql+psycopg://u:p@db.invalid/x"]
)
@pytest.mark.parametrize("pre_ping", [True, False])
def test_pre_ping_for_server_databases(conf: cfg.ConfigOpts, url: str, pre_ping: bool) -> None:
    conf.set_override("db_pool_pre_ping", pre_ping, group="cells")
    engine = create_engine(url)  # does not connect
    try:
        assert isinstance(engine.pool, pool.QueuePool)
        assert engine.pool._pre_ping is pre_ping  # noqa: SLF001
        assert engine.pool.size() == conf.cells.db_pool_size
    finally:
        engine.dispose()


def test_unpooled_and_in_memory_engines(conf: cfg.ConfigOpts, tmp_path: Path) -> None:
    unpooled = create_engine(f"sqlite:///{tmp_path / 'x.db'}", pooled=False)
    memory = create_engine("sqlite://")
    try:
        assert isinstance(unpooled.pool, pool.NullPool)
        assert isinstance(memory.pool, pool.StaticPool)
        with memory.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    finally:
        unpooled.dispose()
        memory.dispose()


@pytest.mark.parametrize("url", ["nosuchdialect://u:pw-123@h/db", "::not a url::"])
def test_create_engine_invalid_url_is_masked(conf: cfg.ConfigOpts, url: str) -> None:
    with pytest.raises(exception.InvalidURL) as err:
        create_engine(url)
    assert "pw-123" not in str(err.value)


def test_engines_keep_bound_parameters_out_of_errors(tmp_path: Path) -> None:
    """A failed write of a cell URL must not print the URL (and its password)."""
    from cellrouter.db.engine import create_engine

    engine = create_engine(f"sqlite:///{tmp_path / 'x.db'}")
    with pytest.raises(sa.exc.OperationalError) as err:
        with engine.connect() as conn:
            conn.execute(sa.text("INSERT INTO nosuch VALUES (:url)"), {"url": "mysql://u:S3CRET@h"})
    assert "S3CRET" not in str(err.value)
    engine.dispose()

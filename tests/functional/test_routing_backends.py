"""The routing core against every supported backend: SQLite, MariaDB, PostgreSQL.

One test class; every method runs once per backend (the ``backend`` fixture is
parametrized, SQLAlchemy's style). The API database and each cell database are
separate databases on the same server (files for SQLite).
"""

from __future__ import annotations

import dataclasses
import itertools
import threading
import uuid as uuidlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from oslo_config import cfg

import cellrouter.conf
from cellrouter import exception
from cellrouter.cells import registry
from cellrouter.cells.context import RequestContext, get_admin_context, set_target_cell, target_cell
from cellrouter.cells.instance import get_instance
from cellrouter.cells.routing import route_instance
from cellrouter.db import migration
from cellrouter.db.cell_schema import instances
from cellrouter.db.types import utcnow
from cellrouter.index.build_request import BuildRequest
from cellrouter.index.cell_mapping import CellMapping
from cellrouter.index.host_mapping import HostMapping
from cellrouter.index.instance_mapping import InstanceMapping
from cellrouter.url import format_url, url_parts

pytestmark = pytest.mark.functional

BACKENDS = ["sqlite", "mariadb", "postgresql"]


@dataclasses.dataclass
class Backend:
    name: str
    #: ``make_db(label) -> url`` of a fresh, empty database
    make_db: Callable[[str], str]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    name: str = request.param
    if name == "sqlite":
        counter = itertools.count(1)

        def make_sqlite(label: str = "db") -> str:
            return f"sqlite:///{tmp_path / f'{label}_{next(counter)}.db'}"

        return Backend(name, make_sqlite)
    factory = "mysql_db_factory" if name == "mariadb" else "pg_db_factory"
    return Backend(name, request.getfixturevalue(factory))


class Env:
    """A configured API database on ``backend`` and a way to add mapped cells."""

    def __init__(self, backend: Backend, conf: cfg.ConfigOpts) -> None:
        self.backend = backend
        self.conf = conf
        self.ctx: RequestContext = get_admin_context()
        self.api_url = backend.make_db("api")
        migration.sync("api", self.api_url)
        conf.set_override("connection", self.api_url, group="api_database")
        self._index = itertools.count(1)

    def cell_db(self) -> str:
        url = self.backend.make_db("cell")
        migration.sync("cell", url)
        return url

    def make_cell(self, database_connection: str | None = None, **kw: Any) -> CellMapping:
        index = next(self._index)
        return CellMapping.create(
            self.ctx,
            name=f"cell{index}",
            database_connection=database_connection or self.cell_db(),
            transport_url=f"fake://cell{index}/",
            **kw,
        )

    def add_instance(self, cell: CellMapping, *, mapped: bool = True, **values: Any) -> str:
        row: dict[str, Any] = {
            "uuid": str(uuidlib.uuid4()),
            "project_id": "project-a",
            "host": "compute-1",
            "created_at": utcnow(),
            "deleted": 0,
        }
        row.update(values)
        engine = sa.create_engine(cell.database_connection, poolclass=sa.pool.NullPool)
        try:
            with engine.begin() as conn:
                conn.execute(sa.insert(instances).values(row))
        finally:
            engine.dispose()
        if mapped:
            InstanceMapping.create(
                self.ctx, instance_uuid=row["uuid"], project_id=row["project_id"], cell_mapping=cell
            )
        return str(row["uuid"])


@pytest.fixture
def env(backend: Backend) -> Iterator[Env]:
    conf = cellrouter.conf.setup([], default_config_files=[])
    try:
        yield Env(backend, conf)
    finally:
        # Close every pooled connection before the databases are dropped.
        registry.reset()
        conf.reset()
        format_url.cache_clear()
        url_parts.cache_clear()
        cellrouter.conf.setup([], default_config_files=[])


class TestRoutingBackends:
    def test_route_instances_across_cells(self, env: Env) -> None:
        cells = [env.make_cell() for _ in range(3)]
        placed = {}
        for index in range(9):
            cell = cells[index % 3]
            placed[env.add_instance(cell, host=f"compute-{index}")] = (cell, f"compute-{index}")
        for instance_uuid, (cell, host) in placed.items():
            route = route_instance(env.ctx, instance_uuid)
            assert (route.cell_uuid, route.host) == (cell.uuid, host)
        assert env.ctx.cell_mapping is None

    def test_route_failures(self, env: Env) -> None:
        c1, c2 = env.make_cell(), env.make_cell()
        with pytest.raises(exception.InstanceMappingNotFound):
            route_instance(env.ctx, str(uuidlib.uuid4()))

        building = str(uuidlib.uuid4())
        InstanceMapping.create(env.ctx, instance_uuid=building, project_id="p")
        with pytest.raises(exception.InstanceNotScheduled, match="still building"):
            route_instance(env.ctx, building)

        stray = env.add_instance(c2, mapped=False)
        InstanceMapping.create(env.ctx, instance_uuid=stray, project_id="p", cell_mapping=c1)
        with pytest.raises(exception.InstanceNotFound, match=c1.uuid):
            route_instance(env.ctx, stray)

        deleted = env.add_instance(c1, deleted=1)
        with pytest.raises(exception.InstanceNotFound):
            route_instance(env.ctx, deleted)
        assert route_instance(get_admin_context(read_deleted="yes"), deleted).cell_uuid == c1.uuid

    def test_mapping_lifecycle_and_errors(self, env: Env) -> None:
        c1, c2 = env.make_cell(), env.make_cell(disabled=True)
        assert [c.uuid for c in CellMapping.get_all(env.ctx)] == [c1.uuid, c2.uuid]
        assert [c.uuid for c in CellMapping.get_by_disabled(env.ctx, True)] == [c2.uuid]
        with pytest.raises(exception.CellMappingExists):
            CellMapping.create(
                env.ctx,
                uuid=c1.uuid,
                database_connection=c1.database_connection,
                transport_url="fake://x/",
            )
        updated = c2.update(env.ctx, disabled=False, name="renamed")
        assert CellMapping.get_by_uuid(env.ctx, c2.uuid) == updated

        HostMapping.create(env.ctx, host="compute-1", cell_mapping=c1)
        with pytest.raises(exception.HostMappingExists, match=c1.uuid):
            HostMapping.create(env.ctx, host="compute-1", cell_mapping=c2)
        with pytest.raises(exception.HostMappingNotFound):
            HostMapping.get_by_host(env.ctx, "compute-2")
        # The foreign keys hold on every backend.
        with pytest.raises(exception.CellHasHosts):
            c1.destroy(env.ctx)

        iuuid = env.add_instance(c1)
        with pytest.raises(exception.InstanceMappingExists):
            InstanceMapping.create(env.ctx, instance_uuid=iuuid, project_id="p")
        assert [c.uuid for c in CellMapping.get_by_project(env.ctx, "project-a")] == [c1.uuid]
        assert InstanceMapping.count_by_cell(env.ctx, c1.uuid) == 1

        request = BuildRequest.create(env.ctx, instance_uuid=iuuid, project_id="p", instance="{}")
        assert BuildRequest.get_by_instance_uuid(env.ctx, iuuid) == request
        request.destroy(env.ctx)
        with pytest.raises(exception.BuildRequestNotFound):
            BuildRequest.get_by_instance_uuid(env.ctx, iuuid)

        HostMapping.get_by_host(env.ctx, "compute-1").destroy(env.ctx)
        InstanceMapping.get_by_instance_uuid(env.ctx, iuuid).destroy(env.ctx)
        c1.destroy(env.ctx)
        with pytest.raises(exception.CellMappingNotFound):
            CellMapping.get_by_uuid(env.ctx, c1.uuid)

    def test_bulk_instance_mapping_lookup(self, env: Env) -> None:
        cell = env.make_cell()
        uuids = [str(uuidlib.uuid4()) for _ in range(1100)]  # three IN-list chunks
        for iuuid in uuids:
            InstanceMapping.create(env.ctx, instance_uuid=iuuid, project_id="p", cell_mapping=cell)
        found = InstanceMapping.get_by_instance_uuids(env.ctx, [*uuids, str(uuidlib.uuid4())])
        assert sorted(m.instance_uuid for m in found) == sorted(uuids)
        assert {m.cell_uuid for m in found} == {cell.uuid}
        assert InstanceMapping.destroy_many(env.ctx, uuids) == len(uuids)

    def test_targeting_isolates_cells(self, env: Env) -> None:
        c1, c2 = env.make_cell(), env.make_cell()
        in_c1 = env.add_instance(c1, host="h1")
        ctx = RequestContext(user_id="u", project_id="project-a")
        with target_cell(ctx, c1) as cctx:
            assert get_instance(cctx, in_c1)["host"] == "h1"
        with target_cell(ctx, c2) as cctx:
            with pytest.raises(exception.InstanceNotFound):
                get_instance(cctx, in_c1)
        assert ctx.cell_mapping is None
        set_target_cell(ctx, c1)
        assert get_instance(ctx, in_c1)["host"] == "h1"
        set_target_cell(ctx, None)
        assert ctx.cell_mapping is None

    def test_template_formatted_from_own_connection(self, env: Env) -> None:
        """A cell stored as a template reaches the same database as its plain URL."""
        real = env.cell_db()
        env.conf.set_override("connection", env.api_url, group="database")
        parts = url_parts(real)
        if env.backend.name == "sqlite":
            template = "{scheme}:///" + "/" + parts["path"]
        else:
            template = "{scheme}://{username}@{hostname}"
            template += ":{port}" if parts["port"] else ""
            template += "/" + parts["path"]
            template += "?{query}" if parts["query"] else ""
        assert template != real
        cell = env.make_cell(database_connection=template)
        assert cell.database_connection_template == template
        assert cell.database_connection == real
        instance_uuid = env.add_instance(cell, host="templated-host")
        assert route_instance(env.ctx, instance_uuid).host == "templated-host"

    def test_url_change_replaces_the_engine(self, env: Env) -> None:
        cell = env.make_cell()
        first = env.add_instance(cell, host="old-db")
        assert route_instance(env.ctx, first).host == "old-db"
        old_conn = registry.get(cell)
        old_pool = old_conn.engine.pool

        new_db = env.cell_db()
        moved = cell.update(env.ctx, database_connection=new_db)
        new_conn = registry.get(moved)
        assert new_conn is not old_conn
        assert old_conn.engine.pool is not old_pool  # disposed
        with pytest.raises(exception.InstanceNotFound):
            route_instance(env.ctx, first)  # the mapping now points at the new database
        second = env.add_instance(moved, host="new-db")
        assert route_instance(env.ctx, second).host == "new-db"

    def test_one_engine_per_cell_under_concurrent_first_callers(self, env: Env) -> None:
        cells = [env.make_cell() for _ in range(2)]
        uuids = [env.add_instance(cell, host=cell.name) for cell in cells]
        barrier = threading.Barrier(16)
        seen: list[tuple[int, str | None]] = []
        errors: list[BaseException] = []
        lock = threading.Lock()

        def worker(index: int) -> None:
            try:
                barrier.wait(timeout=10)
                route = route_instance(env.ctx, uuids[index % 2])
                with target_cell(env.ctx, route.cell_mapping) as cctx:
                    engine_id = id(cctx.engine)
                with lock:
                    seen.append((engine_id, route.host))
            except BaseException as exc:  # noqa: BLE001 - re-raised below
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert not errors, errors
        assert len(seen) == 16
        assert len({engine_id for engine_id, _ in seen}) == 2
        by_engine: dict[int, set[str | None]] = {}
        for engine_id, host in seen:
            by_engine.setdefault(engine_id, set()).add(host)
        assert sorted(by_engine.values(), key=sorted) == [{"cell1"}, {"cell2"}]

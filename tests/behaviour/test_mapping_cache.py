"""The mapping cache, one behaviour class run on every cache backend: memory
(always), Redis and memcached (the real servers, marked ``functional``).

The databases are SQLite files (the cache backend is what varies here). Each
test gets its own key prefix, so tests sharing a server never see each
other's keys. Writes go through the mapping store (the one writer); a write
"behind its back" (raw SQL) is how a test proves an answer came from the cache.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
import time
import uuid as uuidlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import servers
import sqlalchemy as sa
from backends import Backend, SQLiteBackend, SQLiteTemplates
from faults.proxy import TcpProxy
from oslo_config import cfg

from cellrouter import exception
from cellrouter.cells.context import RequestContext
from cellrouter.cells.routing import route_instance
from cellrouter.db.api_schema import host_mappings, instance_mappings
from cellrouter.db.cell_schema import instances, services
from cellrouter.db.database import api_engine
from cellrouter.index import cache_stats
from cellrouter.index.cached_index import CACHED_INDEX, instance_key
from cellrouter.index.cell_mapping import CellMapping
from cellrouter.index.host_mapping import HostMapping
from cellrouter.index.instance_mapping import InstanceMapping
from cellrouter.index.store import STORE
from cellrouter.manage.discovery import discover_hosts
from cellrouter.manage.instance_mapper import map_instances

MakeCells = Callable[..., list[CellMapping]]
MakeInstance = Callable[..., str]

CACHE_BACKENDS = [
    "memory",
    pytest.param("redis", marks=pytest.mark.functional),
    pytest.param("memcached", marks=pytest.mark.functional),
]
SHARED = [p for p in CACHE_BACKENDS if not isinstance(p, str)]
#: [cache]/timeout in these tests: what "within the bound" is measured against
TIMEOUT = 0.3


@pytest.fixture
def backend(tmp_path: Path, sqlite_templates: SQLiteTemplates) -> Backend:
    """SQLite databases: the cache backend is the matrix here."""
    return SQLiteBackend(tmp_path, sqlite_templates)


def _server(name: str) -> str:
    return servers.require_redis() if name == "redis" else servers.require_memcached()


def _url(name: str, address: str) -> str:
    return f"redis://{address}/0" if name == "redis" else address


def configure_cache(conf: cfg.ConfigOpts, name: str, address: str | None, prefix: str) -> None:
    conf.set_override("backend", name, group="cache")
    conf.set_override("key_prefix", prefix, group="cache")
    conf.set_override("timeout", TIMEOUT, group="cache")
    conf.set_override("retry_interval", 0.5, group="cache")
    args = [f"url:{_url(name, address)}"] if address else []
    conf.set_override("backend_argument", args, group="cache")
    CACHED_INDEX.reset()  # build the cache client from the overrides


@pytest.fixture(params=CACHE_BACKENDS)
def cache(request: pytest.FixtureRequest, conf: cfg.ConfigOpts, api_db: str) -> Iterator[str]:
    """The cache backend's name, configured with a key prefix of this test's own."""
    name = request.param
    address = None if name == "memory" else _server(name)
    configure_cache(conf, name, address, f"test-{uuidlib.uuid4().hex[:12]}:")
    yield name
    CACHED_INDEX.reset()


def stats_since(before: cache_stats.CacheStats) -> dict[str, int]:
    now = cache_stats.stats()
    return {name: getattr(now, name) - getattr(before, name) for name in now._fields}


def behind_the_back(statement: sa.Executable) -> None:
    """A write the mapping store does not see (so nothing is invalidated)."""
    with api_engine().begin() as conn:
        conn.execute(statement)


def add_compute_service(cell: CellMapping, host: str) -> None:
    engine = sa.create_engine(cell.database_connection, poolclass=sa.pool.NullPool)
    with engine.begin() as conn:
        conn.execute(sa.insert(services).values(host=host, binary="nova-compute", deleted=0))
    engine.dispose()


class TestMappingCache:
    """Hits, misses and invalidation by every write that changes an answer."""

    def test_second_lookup_is_a_hit(
        self, cache: str, make_cells: MakeCells, make_instance: MakeInstance, admin_ctx: Any
    ) -> None:
        (cell,) = make_cells(1)
        uuid = make_instance(cell)
        before = cache_stats.stats()
        first = InstanceMapping.get_by_instance_uuid(admin_ctx, uuid)
        behind_the_back(sa.delete(instance_mappings))  # only the cache knows it now
        second = InstanceMapping.get_by_instance_uuid(admin_ctx, uuid)
        assert second == first and second.cell_mapping == cell
        assert stats_since(before) | {"refreshes": 0} == {
            "hits": 1,
            "misses": 1,
            "invalidations": 0,
            "errors": 0,
            "refreshes": 0,
        }

    def test_not_found_is_never_cached(
        self, cache: str, make_cells: MakeCells, admin_ctx: Any
    ) -> None:
        (cell,) = make_cells(1)
        uuid = str(uuidlib.uuid4())
        with pytest.raises(exception.InstanceMappingNotFound):
            InstanceMapping.get_by_instance_uuid(admin_ctx, uuid)
        InstanceMapping.create(admin_ctx, instance_uuid=uuid, project_id="p", cell_mapping=cell)
        assert InstanceMapping.get_by_instance_uuid(admin_ctx, uuid).cell_mapping == cell

    def test_a_building_instance_is_visible_the_moment_it_is_mapped(
        self, cache: str, make_cells: MakeCells, admin_ctx: Any
    ) -> None:
        (cell,) = make_cells(1)
        uuid = str(uuidlib.uuid4())
        mapping = InstanceMapping.create(admin_ctx, instance_uuid=uuid, project_id="p")
        assert InstanceMapping.get_by_instance_uuid(admin_ctx, uuid).cell_mapping is None
        # Mapped behind the store's back: no invalidation could help, nothing was cached.
        behind_the_back(
            sa.update(instance_mappings)
            .where(instance_mappings.c.instance_uuid == uuid)
            .values(cell_id=cell.id)
        )
        assert InstanceMapping.get_by_instance_uuid(admin_ctx, uuid).cell_mapping == cell
        assert mapping.cell_mapping is None

    def test_the_cache_holds_what_the_api_database_holds(
        self, cache: str, make_cells: MakeCells, make_instance: MakeInstance, admin_ctx: Any
    ) -> None:
        (cell,) = make_cells(1)
        uuid = make_instance(cell)
        InstanceMapping.get_by_instance_uuid(admin_ctx, uuid)
        region = CACHED_INDEX.cache.region
        assert region is not None
        stored = region.get(instance_key(uuid))
        assert cell.uuid in stored
        assert not [v for v in stored if isinstance(v, str) and "://" in v]  # no URL

    def test_a_cell_url_change_reaches_cached_lookups(
        self, cache: str, make_cells: MakeCells, make_instance: MakeInstance, admin_ctx: Any
    ) -> None:
        cell, other = make_cells(2)
        uuid = make_instance(cell)
        InstanceMapping.get_by_instance_uuid(admin_ctx, uuid)
        moved = cell.update(admin_ctx, database_connection=other.database_connection)
        got = InstanceMapping.get_by_instance_uuid(admin_ctx, uuid).cell_mapping
        assert got == moved and got is not None
        assert got.database_connection == other.database_connection

    # -- every write that changes an answer invalidates it ---------------------

    def test_setting_the_cell(
        self, cache: str, make_cells: MakeCells, make_instance: MakeInstance, admin_ctx: Any
    ) -> None:
        cell, other = make_cells(2)
        uuid = make_instance(cell)
        mapping = InstanceMapping.get_by_instance_uuid(admin_ctx, uuid)
        before = cache_stats.stats()
        mapping.set_cell(admin_ctx, other)
        assert stats_since(before)["invalidations"] == 1
        assert InstanceMapping.get_by_instance_uuid(admin_ctx, uuid).cell_mapping == other

    def test_queued_for_delete(
        self, cache: str, make_cells: MakeCells, make_instance: MakeInstance, admin_ctx: Any
    ) -> None:
        (cell,) = make_cells(1)
        uuid = make_instance(cell)
        InstanceMapping.get_by_instance_uuid(admin_ctx, uuid).set_queued_for_delete(admin_ctx)
        assert InstanceMapping.get_by_instance_uuid(admin_ctx, uuid).queued_for_delete

    def test_destroying_one_and_many(
        self, cache: str, make_cells: MakeCells, make_instance: MakeInstance, admin_ctx: Any
    ) -> None:
        (cell,) = make_cells(1)
        one, *many = [make_instance(cell) for _ in range(4)]
        for uuid in (one, *many):
            InstanceMapping.get_by_instance_uuid(admin_ctx, uuid)
        assert len(InstanceMapping.get_by_instance_uuids(admin_ctx, many)) == 3
        InstanceMapping.get_by_instance_uuid(admin_ctx, one).destroy(admin_ctx)
        InstanceMapping.destroy_many(admin_ctx, many)
        for uuid in (one, *many):
            with pytest.raises(exception.InstanceMappingNotFound):
                InstanceMapping.get_by_instance_uuid(admin_ctx, uuid)
        assert InstanceMapping.get_by_instance_uuids(admin_ctx, many) == []

    def test_deleting_a_host(self, cache: str, make_cells: MakeCells, admin_ctx: Any) -> None:
        (cell,) = make_cells(1)
        HostMapping.create(admin_ctx, host="compute-1", cell_mapping=cell)
        assert HostMapping.get_by_host(admin_ctx, "compute-1").cell_mapping == cell
        HostMapping.get_by_host(admin_ctx, "compute-1").destroy(admin_ctx)
        with pytest.raises(exception.HostMappingNotFound):
            HostMapping.get_by_host(admin_ctx, "compute-1")

    def test_deleting_a_cell_with_force(
        self, cache: str, make_cells: MakeCells, make_instance: MakeInstance, admin_ctx: Any
    ) -> None:
        cell, other = make_cells(2)
        uuid = make_instance(cell)
        HostMapping.create(admin_ctx, host="compute-1", cell_mapping=cell)
        InstanceMapping.get_by_instance_uuid(admin_ctx, uuid)
        HostMapping.get_by_host(admin_ctx, "compute-1")
        STORE.delete_cell(cell, force=True)
        with pytest.raises(exception.InstanceMappingNotFound):
            InstanceMapping.get_by_instance_uuid(admin_ctx, uuid)
        with pytest.raises(exception.HostMappingNotFound):
            HostMapping.get_by_host(admin_ctx, "compute-1")
        with pytest.raises(exception.CellMappingNotFound):
            CellMapping.get_by_uuid(admin_ctx, cell.uuid)
        assert CellMapping.get_all(admin_ctx) == [other]

    def test_map_instances(
        self, cache: str, make_cells: MakeCells, make_instance: MakeInstance, admin_ctx: Any
    ) -> None:
        cell, other = make_cells(2)
        uuid = make_instance(other, mapped=False)
        InstanceMapping.create(admin_ctx, instance_uuid=uuid, project_id="p", cell_mapping=cell)
        assert InstanceMapping.get_by_instance_uuid(admin_ctx, uuid).cell_mapping == cell
        # The mapping row goes away behind the store's back (a restore, a manual fix):
        # map_instances maps the instance where it really is, and that write invalidates.
        behind_the_back(sa.delete(instance_mappings))
        map_instances(admin_ctx, other.uuid)
        assert InstanceMapping.get_by_instance_uuid(admin_ctx, uuid).cell_mapping == other

    def test_discover_hosts(self, cache: str, make_cells: MakeCells, admin_ctx: Any) -> None:
        cell, other = make_cells(2)
        HostMapping.create(admin_ctx, host="compute-1", cell_mapping=cell)
        assert HostMapping.get_by_host(admin_ctx, "compute-1").cell_mapping == cell
        behind_the_back(sa.delete(host_mappings))
        add_compute_service(other, "compute-1")
        discover_hosts(admin_ctx, other.uuid, by_service=True)
        assert HostMapping.get_by_host(admin_ctx, "compute-1").cell_mapping == other

    def test_a_stale_answer_is_caught_where_it_is_used(
        self, cache: str, make_cells: MakeCells, make_instance: MakeInstance, admin_ctx: Any
    ) -> None:
        """An instance moved behind the cache's back: routing finds it anyway."""
        cell, other = make_cells(2)
        uuid = make_instance(cell, host="compute-9")
        assert route_instance(admin_ctx, uuid).cell_uuid == cell.uuid
        row = _move_row(cell, other, uuid)
        behind_the_back(
            sa.update(instance_mappings)
            .where(instance_mappings.c.instance_uuid == uuid)
            .values(cell_id=other.id)
        )
        route = route_instance(admin_ctx, uuid)
        assert (route.cell_uuid, route.host) == (other.uuid, row["host"])
        assert InstanceMapping.get_by_instance_uuid(admin_ctx, uuid).cell_mapping == other


def _move_row(source: CellMapping, target: CellMapping, uuid: str) -> dict[str, Any]:
    engines = [
        sa.create_engine(c.database_connection, poolclass=sa.pool.NullPool)
        for c in (source, target)
    ]
    with engines[0].begin() as conn:
        row = dict(
            conn.execute(sa.select(instances).where(instances.c.uuid == uuid)).one()._mapping
        )
        conn.execute(sa.delete(instances).where(instances.c.uuid == uuid))
    with engines[1].begin() as conn:
        conn.execute(sa.insert(instances).values(row))
    for engine in engines:
        engine.dispose()
    return row


# -- shared backends: two processes, and a backend that fails ----------------------------


def _write_config(path: Path, conf: cfg.ConfigOpts) -> Path:
    args = "\n".join(f"backend_argument = {a}" for a in conf.cache.backend_argument)
    path.write_text(
        textwrap.dedent(
            f"""\
            [api_database]
            connection = {conf.api_database.connection}
            [cache]
            backend = {conf.cache.backend}
            key_prefix = {conf.cache.key_prefix}
            """
        )
        + args
        + "\n"
    )
    return path


def _other_process(config: Path, code: str) -> str:
    """Run ``code`` in a new Python process set up from ``config``; return its stdout."""
    script = (
        "import cellrouter\n"
        f"cellrouter.setup(['--config-file', {str(config)!r}])\n"
        "ctx = cellrouter.get_admin_context()\n" + textwrap.dedent(code)
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def _set_cell_elsewhere(config: Path, instance_uuid: str, cell: CellMapping) -> None:
    """Point the instance's mapping at ``cell`` from another process."""
    _other_process(
        config,
        f"""
        m = cellrouter.InstanceMapping.get_by_instance_uuid(ctx, {instance_uuid!r})
        m.set_cell(ctx, cellrouter.CellMapping.get_by_uuid(ctx, {cell.uuid!r}))
        """,
    )


def _manage(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).with_name("cellrouter-manage")
    return subprocess.run(
        [str(script), "--config-file", str(config), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )


@pytest.mark.parametrize("cache", SHARED, indirect=True)
class TestSharedBetweenProcesses:
    """A write in one process is seen by another on its next lookup."""

    def test_instance_moved_by_another_process(
        self,
        cache: str,
        conf: cfg.ConfigOpts,
        tmp_path: Path,
        make_cells: MakeCells,
        make_instance: MakeInstance,
        admin_ctx: RequestContext,
    ) -> None:
        cell, other = make_cells(2)
        uuid = make_instance(cell)
        assert InstanceMapping.get_by_instance_uuid(admin_ctx, uuid).cell_mapping == cell
        _set_cell_elsewhere(_write_config(tmp_path / "other.conf", conf), uuid, other)
        assert InstanceMapping.get_by_instance_uuid(admin_ctx, uuid).cell_mapping == other

    def test_building_instance_mapped_by_another_process(
        self,
        cache: str,
        conf: cfg.ConfigOpts,
        tmp_path: Path,
        make_cells: MakeCells,
        admin_ctx: RequestContext,
    ) -> None:
        (cell,) = make_cells(1)
        uuid = str(uuidlib.uuid4())
        InstanceMapping.create(admin_ctx, instance_uuid=uuid, project_id="p")
        assert InstanceMapping.get_by_instance_uuid(admin_ctx, uuid).cell_mapping is None
        _set_cell_elsewhere(_write_config(tmp_path / "other.conf", conf), uuid, cell)
        assert InstanceMapping.get_by_instance_uuid(admin_ctx, uuid).cell_mapping == cell

    def test_host_deleted_by_cellrouter_manage(
        self,
        cache: str,
        conf: cfg.ConfigOpts,
        tmp_path: Path,
        make_cells: MakeCells,
        admin_ctx: RequestContext,
    ) -> None:
        (cell,) = make_cells(1)
        HostMapping.create(admin_ctx, host="compute-1", cell_mapping=cell)
        assert HostMapping.get_by_host(admin_ctx, "compute-1").cell_mapping == cell
        config = _write_config(tmp_path / "other.conf", conf)
        run = _manage(
            config, "cell_v2", "delete_host", "--cell_uuid", cell.uuid, "--host", "compute-1"
        )
        assert run.returncode == 0, run.stdout + run.stderr
        with pytest.raises(exception.HostMappingNotFound):
            HostMapping.get_by_host(admin_ctx, "compute-1")


@pytest.mark.parametrize("cache", SHARED, indirect=True)
@pytest.mark.parametrize("mode", ["refuse", "blackhole"])
def test_a_failing_backend_degrades_to_direct_lookups(
    cache: str,
    mode: str,
    conf: cfg.ConfigOpts,
    make_cells: MakeCells,
    make_instance: MakeInstance,
    admin_ctx: RequestContext,
    caplog: pytest.LogCaptureFixture,
) -> None:
    (cell,) = make_cells(1)
    uuids = [make_instance(cell) for _ in range(3)]
    host, _, port = _server(cache).rpartition(":")
    proxy = TcpProxy(host, int(port))
    try:
        configure_cache(conf, cache, "{}:{}".format(*proxy.address), conf.cache.key_prefix)
        for uuid in uuids:
            InstanceMapping.get_by_instance_uuid(admin_ctx, uuid)  # cached through the proxy
        proxy.set_mode(mode)
        before = cache_stats.stats()
        caplog.set_level(logging.WARNING, logger="cellrouter.index.lookup_cache")
        for _ in range(3):
            for uuid in uuids:
                start = time.monotonic()
                got = InstanceMapping.get_by_instance_uuid(admin_ctx, uuid)
                assert time.monotonic() - start < TIMEOUT + 1.0
                assert got.cell_mapping == cell
        warnings = [r for r in caplog.records if r.name == "cellrouter.index.lookup_cache"]
        assert len(warnings) == 1, [r.getMessage() for r in warnings]
        assert "unavailable" in warnings[0].getMessage()
        delta = stats_since(before)
        assert delta["errors"] >= 1 and delta["hits"] == 0

        # A write while the backend is down is kept, and sent once it answers again.
        other = make_cells(1)[0]
        InstanceMapping.get_by_instance_uuid(admin_ctx, uuids[0]).set_cell(admin_ctx, other)
        proxy.set_mode("forward")
        time.sleep(conf.cache.retry_interval + 0.1)
        assert InstanceMapping.get_by_instance_uuid(admin_ctx, uuids[0]).cell_mapping == other
        assert InstanceMapping.get_by_instance_uuid(admin_ctx, uuids[0]).cell_mapping == other
        assert stats_since(before)["hits"] >= 1  # the cache is used again
    finally:
        CACHED_INDEX.reset()
        proxy.close()
